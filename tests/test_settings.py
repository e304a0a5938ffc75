"""Settings (infra/config.py) and the Temporal connection (infra/temporal.py, temporalio.envconfig).

- each process's model refuses a bad value with the variable's name and the reason;
- TLS (mTLS client certificate, CA, server name) and an API key set in the environment reach the
  arguments of Client.connect;
- a real dev server is reached through a profile in a TOML file (TEMPORAL_CONFIG_FILE, TEMPORAL_PROFILE).
"""

from __future__ import annotations

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
