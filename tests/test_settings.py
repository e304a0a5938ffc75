"""Settings (infra/config.py) and the Temporal connection (infra/temporal.py, temporalio.envconfig).

- each process's model refuses a bad value with the variable's name and the reason;
- TLS (mTLS client certificate, CA, server name) and an API key set in the environment reach the
  arguments of Client.connect;
- a real dev server is reached through a profile in a TOML file (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE).
"""

from __future__ import annotations

import os

import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client
from temporalio.service import TLSConfig
from temporalio.testing import WorkflowEnvironment

from devstack.binaries import find
from encryption import codec
from infra import temporal
from infra.config import (
    ApiSettings,
    CodecServerSettings,
    GatewaySettings,
    SettingsError,
    StackSettings,
    WorkerSettings,
    load,
)
from tests.workflow_helpers import free_port

TEMPORAL_VARS = (
    "TEMPORAL_ADDRESS",
    "TEMPORAL_NAMESPACE",
    "TEMPORAL_API_KEY",
    "TEMPORAL_TLS",
    "TEMPORAL_PROFILE",
    "TEMPORAL_CONFIG_FILE",
    "TEMPORAL_TLS_CLIENT_CERT_PATH",
    "TEMPORAL_TLS_CLIENT_KEY_PATH",
    "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
    "TEMPORAL_TLS_SERVER_NAME",
    "TEMPORAL_GRPC_META",
)


@pytest.fixture
def clean_temporal_env(monkeypatch, tmp_path):
    for name in TEMPORAL_VARS:
        monkeypatch.delenv(name, raising=False)
    # no profile file from the machine's home directory
    monkeypatch.setenv("TEMPORAL_CONFIG_FILE", str(tmp_path / "none.toml"))
    return monkeypatch


@pytest.mark.parametrize(
    "model, name, value, reason",
    [
        (WorkerSettings, "WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", "1", "greater than or equal to 2"),
        (WorkerSettings, "GATEWAY_TIMEOUT", "soon", "valid number"),
        (WorkerSettings, "WORKER_METRICS_ADDRESS", "9464", "match pattern"),
        (WorkerSettings, "LOG_LEVEL", "loud", "'debug', 'info'"),
        (WorkerSettings, "WORKER_DEPLOYMENT_NAME", "collections.v2", "match pattern"),  # '.' joins name and build id
        (WorkerSettings, "WORKER_BUILD_ID", "build 7", "match pattern"),
        (WorkerSettings, "WORKER_VERSIONING", "maybe", "valid boolean"),
        (ApiSettings, "API_PORT", "eighty", "valid integer"),
        (ApiSettings, "API_REQUIRE_TOKEN", "perhaps", "valid boolean"),
        (CodecServerSettings, "CODEC_PORT", "70000", "less than 65536"),
        (GatewaySettings, "GATEWAY_PORT", "-1", "greater than or equal to 0"),
        (StackSettings, "TEMPORAL_UI_PORT", "ui", "valid integer"),
    ],
)
def test_a_bad_value_is_refused_naming_the_variable(monkeypatch, model, name, value, reason):
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError) as exc:
        load(model)
    assert str(exc.value).startswith(f"{name}: ") and reason in str(exc.value), str(exc.value)
    monkeypatch.delenv(name)
    assert load(model) is not None  # the same model loads without it


def test_secrets_are_not_echoed(monkeypatch):
    with pytest.raises(SettingsError) as exc:
        load(ApiSettings, {"API_PORT": "x", "API_TOKEN": "tok-s3cret", "API_UPDATE_TIMEOUT": "-1"})
    assert "API_PORT" in str(exc.value) and "API_UPDATE_TIMEOUT" in str(exc.value)
    assert "s3cret" not in str(exc.value)


def test_empty_means_the_default_and_values_are_typed(monkeypatch):
    cfg = load(
        WorkerSettings,
        {"WORKER_MAX_CACHED_WORKFLOWS": "", "LOG_LEVEL": "DEBUG", "GATEWAY_TIMEOUT": "2.5", "WORKER_METRICS_ADDRESS": ""},
    )
    assert cfg.max_cached_workflows == 10_000 and cfg.log_level == "debug" and cfg.gateway_timeout == 2.5
    assert cfg.metrics_address == ""  # empty turns the metrics endpoint off
    assert load(ApiSettings, {"API_REQUIRE_TOKEN": "yes", "API_PORT": "9000"}).require_token is True


async def test_tls_and_api_key_reach_the_clients_connect_arguments(clean_temporal_env, tmp_path, monkeypatch):
    cert, key, ca = (tmp_path / "client.pem", tmp_path / "client.key", tmp_path / "ca.pem")
    cert.write_bytes(b"-----CLIENT CERT-----")
    key.write_bytes(b"-----CLIENT KEY-----")
    ca.write_bytes(b"-----CA-----")
    for k, v in {
        "TEMPORAL_ADDRESS": "bank.tmprl.cloud:7233",
        "TEMPORAL_NAMESPACE": "collections.a1b2c",
        "TEMPORAL_API_KEY": "api-key-123",
        "TEMPORAL_TLS_CLIENT_CERT_PATH": str(cert),
        "TEMPORAL_TLS_CLIENT_KEY_PATH": str(key),
        "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(ca),
        "TEMPORAL_TLS_SERVER_NAME": "bank.internal",
        **codec.Keyring.parse(codec.new_key_entry("t1")).to_env(),
    }.items():
        monkeypatch.setenv(k, v)
    seen = {}

    async def fake_connect(target_host, **kwargs):
        seen.update(kwargs, target_host=target_host)
        return "client"

    monkeypatch.setattr(Client, "connect", staticmethod(fake_connect))
    assert await temporal.connect() == "client"
    assert seen["target_host"] == "bank.tmprl.cloud:7233"
    assert seen["namespace"] == "collections.a1b2c"
    assert seen["api_key"] == "api-key-123"
    tls = seen["tls"]
    assert isinstance(tls, TLSConfig)
    assert (tls.client_cert, tls.client_private_key, tls.server_root_ca_cert, tls.domain) == (
        b"-----CLIENT CERT-----",
        b"-----CLIENT KEY-----",
        b"-----CA-----",
        "bank.internal",
    )
    assert seen["data_converter"].payload_codec is not None  # payloads stay encrypted on a remote cluster


async def test_an_api_key_alone_turns_tls_on(clean_temporal_env, monkeypatch):
    monkeypatch.setenv("TEMPORAL_API_KEY", "k")
    assert temporal.connect_config()["tls"] is True
    monkeypatch.delenv("TEMPORAL_API_KEY")
    assert "tls" not in temporal.connect_config()
    assert temporal.connect_config()["target_host"] == "localhost:7233"


async def test_a_dev_server_is_reached_through_a_profile(clean_temporal_env, tmp_path):
    port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find("temporal"), namespace="collections-profile", ip="127.0.0.1", port=port, ui=False
    )
    try:
        profiles = tmp_path / "temporal.toml"
        profiles.write_text(
            f'[profile.default]\naddress = "127.0.0.1:1"\n\n'
            f'[profile.bank]\naddress = "127.0.0.1:{port}"\nnamespace = "collections-profile"\n'
        )
        clean_temporal_env.setenv("TEMPORAL_CONFIG_FILE", str(profiles))
        clean_temporal_env.setenv("TEMPORAL_PROFILE", "bank")
        client = await temporal.connect()
        assert client.namespace == "collections-profile"
        assert client.service_client.config.target_host == f"127.0.0.1:{port}"
        info = await client.workflow_service.describe_namespace(DescribeNamespaceRequest(namespace="collections-profile"))
        assert info.namespace_info.name == "collections-profile"
        # an environment variable overrides the profile's value
        clean_temporal_env.setenv("TEMPORAL_NAMESPACE", "other")
        assert temporal.connect_config()["namespace"] == "other"
    finally:
        await env.shutdown()


# ---------------------------------------------------------------- read once, and only in infra/config.py


def test_settings_are_read_once_and_read_again_after_cache_clear(monkeypatch):
    from infra.config import settings

    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", "first")
    first = settings()
    assert first.task_queue == "first" and settings() is first
    monkeypatch.setitem(os.environ, "TEMPORAL_TASK_QUEUE", "second")  # behind the settings' back
    assert settings().task_queue == "first"
    settings.cache_clear()
    assert settings().task_queue == "second"
    monkeypatch.setenv("TEMPORAL_TASK_QUEUE", "third")  # the suite's monkeypatch clears the cache (tests/conftest.py)
    assert settings().task_queue == "third"


@pytest.mark.parametrize(
    "model, field, environ, expected",
    [
        ("Common", "dev_stack", {}, False),
        ("Common", "dev_stack", {"COLLECTIONS_DEV_STACK": " 1"}, True),
        ("Common", "dev_stack", {"COLLECTIONS_DEV_STACK": "yes"}, True),
        ("Common", "dev_stack", {"COLLECTIONS_DEV_STACK": "True"}, False),  # only 1, true, yes: as devstack/stack.py sets it
        ("Common", "dev_stack", {"COLLECTIONS_DEV_STACK": "0"}, False),
        ("Common", "calendar_dir", {"COLLECTIONS_CALENDAR_DIR": ""}, None),
        ("CliSettings", "local_admin", {}, True),
        ("CliSettings", "local_admin", {"COLLECTIONS_LOCAL_ADMIN": " 0 "}, False),
        ("CliSettings", "local_admin", {"COLLECTIONS_LOCAL_ADMIN": "no"}, True),  # only 0 turns it off
        ("CliSettings", "token", {"COLLECTIONS_TOKEN": "  tok-1 "}, "tok-1"),
        ("CliSettings", "token", {"COLLECTIONS_TOKEN": "   "}, None),
        ("SimSettings", "sim_log_level", {}, "error"),
        ("SimSettings", "sim_log_level", {"SIM_LOG_LEVEL": "WARNING"}, "warning"),
        ("PayloadKeySettings", "keys", {"PAYLOAD_KEYS": ""}, None),
    ],
)
def test_the_variables_moved_here_keep_their_meaning(model, field, environ, expected):
    from infra import config

    assert getattr(load(getattr(config, model), environ), field) == expected


def test_the_keyring_comes_from_the_settings(monkeypatch):
    entry = codec.new_key_entry("k-settings")
    monkeypatch.setenv("PAYLOAD_KEYS", entry)
    monkeypatch.setenv("PAYLOAD_KEY_ID", "k-settings")
    ring = codec.Keyring.from_env()
    assert ring is not None and ring.current == "k-settings"
    assert codec.Keyring.from_env({"PAYLOAD_KEYS": " "}) is None
    monkeypatch.setenv("PAYLOAD_KEYS", "")
    assert codec.Keyring.from_env() is None


# Reads of the environment left outside infra/config.py, each with its reason.
ENV_READS_LEFT: set[str] = set()  # none: every read goes through a settings model
NOT_SETTINGS = {"PYTHONPATH"}  # the interpreter's, passed on to a child process, not one of ours


def environment_reads(path, source: str) -> list[str]:
    """`os.getenv(...)`, `os.environ.get(...)`, `os.environ[...]` (read) and `... in os.environ` in a file."""
    import ast

    def is_environ(node) -> bool:
        return isinstance(node, ast.Attribute) and node.attr == "environ" and isinstance(node.value, ast.Name)

    found = []
    for node in ast.walk(ast.parse(source)):
        name = None
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute):
            if node.func.attr == "getenv" or (node.func.attr == "get" and is_environ(node.func.value)):
                arg = node.args[0] if node.args else None
                name = arg.value if isinstance(arg, ast.Constant) else "?"
        elif isinstance(node, ast.Subscript) and is_environ(node.value) and isinstance(node.ctx, ast.Load):
            name = node.slice.value if isinstance(node.slice, ast.Constant) else "?"
        elif isinstance(node, ast.Compare) and any(is_environ(c) for c in node.comparators):
            name = node.left.value if isinstance(node.left, ast.Constant) else "?"
        if name is not None and name not in NOT_SETTINGS:
            found.append(f"{path}:{node.lineno}: {name}")
    return found


def test_the_environment_is_read_only_in_infra_config():
    from pathlib import Path

    from tests.test_imports import project_files

    root = Path(__file__).resolve().parent.parent
    found = []
    for f in project_files(root).values():
        rel = f.relative_to(root).as_posix()
        if rel != "infra/config.py" and rel not in ENV_READS_LEFT:
            found += environment_reads(rel, f.read_text(encoding="utf-8"))
    assert not found, "environment variables read outside infra/config.py (add them to a settings model):\n" + "\n".join(found)


def test_an_environment_read_is_caught():
    src = 'import os\na = os.environ.get("X")\nb = os.getenv("Y")\nc = os.environ["Z"]\nd = "W" in os.environ\n'
    src += 'env = {**os.environ, "PYTHONPATH": os.environ.get("PYTHONPATH")}\nos.environ["V"] = "1"\n'
    assert environment_reads("m.py", src) == ["m.py:2: X", "m.py:3: Y", "m.py:4: Z", "m.py:5: W"]
