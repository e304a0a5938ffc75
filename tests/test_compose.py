"""docker-compose.yml, checked without a Docker engine: the Compose Specification's JSON schema
(tests/data/compose-spec.json, vendored: see compose-spec.README.md), every command that runs project
code names a module or file that exists, and the production topology is all there.
"""

from __future__ import annotations

import ast
import importlib
import re
import shlex
from pathlib import Path

import jsonschema
import pytest
import yaml

from infra.config import ROOT
from workflows.search import CLI_TYPES

COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).parent / "data" / "compose-spec.json"
PROJECT_IMAGE = "loan-collections"
PROJECT_PACKAGES = {p.parent.name for p in ROOT.glob("*/__init__.py")} | {p.stem for p in ROOT.glob("*.py")}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


@pytest.fixture(scope="module")
def services(compose) -> dict:
    return compose["services"]


def test_the_file_is_valid_against_the_compose_specification(compose):
    schema = yaml.safe_load(SCHEMA.read_text())  # JSON is YAML
    validator = jsonschema.validators.validator_for(schema)
    validator.check_schema(schema)
    errors = sorted(validator(schema).iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors)


def test_the_schema_check_catches_mistakes(compose):
    """The schema really is applied: a misspelt key, a wrong type and an unknown condition fail."""
    schema = yaml.safe_load(SCHEMA.read_text())
    validator = jsonschema.validators.validator_for(schema)(schema)
    for path, value in (
        (("services", "worker", "comand"), ["python", "worker.py"]),
        (("services", "worker", "deploy", "replicas"), {"count": 2}),
        (("services", "worker", "depends_on", "temporal", "condition"), "service_ready"),
    ):
        broken = yaml.safe_load(COMPOSE.read_text())
        node = broken
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
        assert not validator.is_valid(broken), path


def runs_project_code(service: dict) -> bool:
    return "build" in service or str(service.get("image", "")).split(":")[0] == PROJECT_IMAGE


def argv(value) -> list[str]:
    return list(value) if isinstance(value, list) else shlex.split(value)


def python_targets(args: list[str]) -> list[tuple[str, str]]:
    """(kind, target) for a `python ...` command line: ("module", "db.engine"), ("file", "worker.py"), ("code", "...")."""
    if not args or Path(args[0]).name not in ("python", "python3"):
        return []
    rest = [a for a in args[1:] if a not in ("-u", "-B", "-O")]
    if rest[:1] == ["-m"]:
        return [("module", rest[1])]
    if rest[:1] == ["-c"]:
        return [("code", rest[1])]
    return [("file", rest[0])] if rest else []


def module_exists(name: str) -> bool:
    parts = name.split(".")
    base = ROOT.joinpath(*parts)
    return base.with_suffix(".py").is_file() or (base / "__main__.py").is_file()


def check_code(code: str) -> list[str]:
    """Project imports in `python -c` code: the module exists and has the names imported from it."""
    problems = []
    for node in ast.walk(ast.parse(code)):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] in PROJECT_PACKAGES:
            module = importlib.import_module(node.module)
            problems += [f"{node.module}.{a.name} does not exist" for a in node.names if not hasattr(module, a.name)]
        elif isinstance(node, ast.Import):
            for a in node.names:
                if a.name.split(".")[0] in PROJECT_PACKAGES:
                    importlib.import_module(a.name)
    return problems


def test_every_command_that_runs_project_code_exists(services):
    checked = 0
    for name, svc in services.items():
        if not runs_project_code(svc):
            continue
        build = svc.get("build")
        if build:
            dockerfile = (
                ROOT
                / (build.get("context", ".") if isinstance(build, dict) else build)
                / (build.get("dockerfile", "Dockerfile") if isinstance(build, dict) else "Dockerfile")
            )
            assert dockerfile.is_file(), f"{name}: {dockerfile} is missing"
        lines = [argv(svc[k]) for k in ("entrypoint", "command") if k in svc]
        test = (svc.get("healthcheck") or {}).get("test")
        if isinstance(test, list) and test[:1] in (["CMD"],):
            lines.append(test[1:])
        elif isinstance(test, list) and test[:1] == ["CMD-SHELL"]:
            lines.append(shlex.split(test[1]))
        assert "command" in svc or "entrypoint" in svc, f"{name}: runs the project image without a command"
        for line in lines:
            for kind, target in python_targets(line):
                checked += 1
                if kind == "module":
                    assert module_exists(target), f"{name}: python -m {target}: no such module in the project"
                elif kind == "file":
                    assert (ROOT / target).is_file(), f"{name}: python {target}: no such file in the project"
                else:
                    assert not check_code(target), f"{name}: {check_code(target)}"
    assert checked >= 4


def test_the_dockerfile_default_command_exists():
    cmd = re.search(r"^CMD\s+(\[.*\])", (ROOT / "Dockerfile").read_text(), re.M)
    assert cmd, "Dockerfile has no exec-form CMD"
    for kind, target in python_targets(ast.literal_eval(cmd.group(1))):
        assert kind == "file" and (ROOT / target).is_file()


def env_of(svc: dict) -> dict:
    env = svc.get("environment") or {}
    return env if isinstance(env, dict) else dict(e.split("=", 1) for e in env)


def commands(services: dict) -> dict[str, str]:
    return {n: " ".join(argv(s.get("command", []))) for n, s in services.items()}


def test_the_production_topology_is_all_there(services):
    cmds = commands(services)
    by_cmd = lambda needle: [n for n, c in cmds.items() if needle in c]  # noqa: E731

    # Temporal on PostgreSQL, its search attributes registered, its UI
    temporal = [n for n, s in services.items() if str(s.get("image", "")).startswith("temporalio/auto-setup") and "ports" in s]
    assert temporal, "no Temporal server"
    assert env_of(services[temporal[0]])["DB"].startswith("postgres")
    setup = [s for s in services.values() if "search-attribute create" in " ".join(argv(s.get("command", [])))]
    assert setup, "nothing registers the search attributes"
    script = " ".join(argv(setup[0]["command"]))
    for key, typ in CLI_TYPES.items():
        assert f"{key.name}={typ}" in script, f"search attribute {key.name}={typ} not registered"
    ui = [s for s in services.values() if str(s.get("image", "")).startswith("temporalio/ui")]
    assert ui, "no Temporal UI"

    # the application: database, migration, gateway, workers (N replicas on one task queue)
    assert any(
        str(s.get("image", "")).startswith("postgres") and env_of(s).get("POSTGRES_DB") == "collections"
        for s in services.values()
    )
    assert by_cmd("db.engine") and by_cmd("sandbox")
    [worker] = by_cmd("worker.py")
    w = services[worker]
    assert "container_name" not in w and "ports" not in w, "a worker must be able to run as N replicas"
    assert env_of(w)["TEMPORAL_TASK_QUEUE"] == "collections"
    if (ROOT / "api" / "__init__.py").exists():
        assert by_cmd("api"), "the payments and case API (api/) is not in docker-compose.yml"

    # every long-running service has a health check
    for name, svc in services.items():
        if svc.get("restart") != "no":
            assert "healthcheck" in svc, f"{name} has no health check"


def test_the_ui_shows_payloads_through_the_authenticated_codec_server(services):
    [codec] = [n for n, c in commands(services).items() if "encryption.codec_server" in c]
    port = re.search(r"--port\s+(\d+)", commands(services)[codec]).group(1)
    assert any(str(p).endswith(f":{port}") for p in services[codec]["ports"])
    env = env_of(services[codec])
    assert env["CODEC_TOKEN"].startswith("${CODEC_TOKEN:?"), "the codec server must not start without a token"
    [ui] = [s for s in services.values() if str(s.get("image", "")).startswith("temporalio/ui")]
    ui_env = env_of(ui)
    assert ui_env["TEMPORAL_CODEC_ENDPOINT"] == f"http://localhost:{port}"
    assert ui_env["TEMPORAL_CODEC_INCLUDE_CREDENTIALS"] == "true"  # the session cookie from /login
    assert ui_env["TEMPORAL_DISABLE_WRITE_ACTIONS"] == "true"  # operators act through the API/CLI
    assert env["DATABASE_URL"].startswith("postgresql://"), "operator tokens are checked against the app database"
    ui_origin = f"http://localhost:{ui['ports'][0].split(':')[0]}"
    assert ui_origin in env["CODEC_CORS_ORIGINS"].split(",")
    # every process that reads or writes payloads has the same keys, and refuses to start without them
    for name, svc in services.items():
        cmd = commands(services)[name]
        if runs_project_code(svc) and any(m in cmd for m in ("worker.py", "encryption.codec_server", "api")):
            keys = env_of(svc)
            assert keys.get("PAYLOAD_KEYS", "").startswith("${PAYLOAD_KEYS:?"), name
            assert keys.get("PAYLOAD_KEY_ID", "").startswith("${PAYLOAD_KEY_ID:?"), name


def test_the_workers_build_is_made_current_once_they_poll(services):
    """Worker Versioning: a versioned worker gets no tasks until its build is current, so a one-shot makes it so
    after the workers are healthy (polling), for the same deployment; the server has worker deployments on."""
    cmds = commands(services)
    [worker] = [n for n, c in cmds.items() if "worker.py" in c]
    [current] = [n for n, c in cmds.items() if c.startswith("python -m infra.deployments current")]
    svc = services[current]
    assert svc["depends_on"][worker]["condition"] == "service_healthy" and svc["restart"] == "no"
    for key in ("WORKER_DEPLOYMENT_NAME", "WORKER_BUILD_ID", "TEMPORAL_ADDRESS"):
        assert env_of(svc)[key] == env_of(services[worker])[key], key
    [temporal] = [s for s in services.values() if str(s.get("image", "")).startswith("temporalio/auto-setup") and "ports" in s]
    path = env_of(temporal)["DYNAMIC_CONFIG_FILE_PATH"]
    [mount] = [v for v in temporal["volumes"] if v.split(":")[1] == f"/etc/temporal/{path}"]
    config = yaml.safe_load((ROOT / mount.split(":")[0]).read_text())
    for key in ("system.enableDeploymentVersions", "frontend.workerVersioningWorkflowAPIs"):
        assert config[key] == [{"value": True}], key
