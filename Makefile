# Loan collections on Temporal: the README's commands.
#
#   make demo    virtualenv + install, local stack in the background, demo portfolio, its life, the addresses
#   make test    virtualenv + install, lint and types (make lint), then the whole test suite
#   make lint    ruff (lint and format check) and mypy (the packages in pyproject.toml [tool.mypy] files)
#   make up      the local stack in the foreground (Ctrl-C stops all of it)
#   make down    stop a background stack
#
# Needs only Python 3.11+ (python3); everything else goes into .venv. Ports and paths come from
# the environment: TEMPORAL_ADDRESS (localhost:7233), TEMPORAL_UI_PORT (8233), GATEWAY_PORT (8700),
# API_PORT (8800), CODEC_PORT (8081), WORKER_METRICS_ADDRESS (127.0.0.1:9464), COLLECTIONS_VAR_DIR (var/).

SHELL := /bin/sh
VENV  := .venv
PY    := $(VENV)/bin/python
STAMP := $(VENV)/.installed

# The first interpreter on PATH that is Python 3.11 or newer (override: make PYTHON=/path/to/python3).
ifeq ($(origin PYTHON),undefined)
PYTHON := $(shell for p in python3 python3.14 python3.13 python3.12 python3.11; do \
	if command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; \
	then echo $$p; break; fi; done)
endif

.PHONY: help venv demo up down status lint test worker clean distclean

help:
	@sed -n '3,7p' Makefile | sed 's/^# \{0,1\}//'

venv: $(STAMP)

# Re-installs only when pyproject.toml changes (or the virtualenv is gone or broken).
$(STAMP): pyproject.toml
	@if [ -z "$(PYTHON)" ]; then echo "make: Python 3.11 or newer is needed (python3 on PATH, or make PYTHON=...)" >&2; exit 1; fi
	@if ! $(PY) -c 'import pip' >/dev/null 2>&1; then \
		echo "creating $(VENV) with $(PYTHON) ($$($(PYTHON) -c 'import sys; print(sys.version.split()[0])'))"; \
		rm -rf $(VENV); \
		if $(PYTHON) -m venv $(VENV) >/dev/null 2>&1; then :; \
		elif $(PYTHON) -m venv --without-pip $(VENV) && $(PYTHON) -m pip --python $(PY) install -q pip; then :; \
		else echo "make: could not create $(VENV): this Python has no venv/ensurepip module" \
			"(Debian/Ubuntu: apt install python3-venv)" >&2; rm -rf $(VENV); exit 1; fi; \
	fi
	@echo "installing the project and its dev dependencies into $(VENV) ..."
	$(PY) -m pip install -q --disable-pip-version-check -e '.[dev]'
	@touch $@

demo: venv
	$(PY) -m devstack.stack start
	$(PY) -m devstack.demo
	$(PY) -m console.demo
	$(PY) -m devstack.life start
	@$(PY) -m devstack.stack urls
	@echo "python -m devstack.watch --minutes 30 shows the cases moving; make down to stop"

up: venv
	$(PY) -m devstack.stack up

down:
	@if [ -x $(PY) ]; then $(PY) -m devstack.life stop; $(PY) -m devstack.stack stop; else echo "not running (no $(VENV))"; fi

status: venv
	@$(PY) -m devstack.stack status || true

# Lint and format check (ruff) and types (mypy, its packages from pyproject.toml); make test runs it first.
lint: venv
	$(PY) -m ruff check .
	$(PY) -m ruff format --check .
	$(PY) -m mypy

test: venv lint
	$(PY) -m pytest -q

worker: venv
	$(PY) worker.py

# Stops the stack and removes var/ (the dev server's database: all local cases, and logs) and caches.
clean: down
	rm -rf var .pytest_cache .hypothesis build
	find . -path ./$(VENV) -prune -o -name __pycache__ -type d -exec rm -rf {} +

distclean: clean
	rm -rf $(VENV)
