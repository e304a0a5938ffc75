"""Connecting to Temporal: the SDK's environment configuration, the project's data converter.

Where to connect comes from `temporalio.envconfig`, as for the `temporal` CLI, so the same code
reaches the local dev server, a self-hosted cluster with mTLS, or Temporal Cloud:

    TEMPORAL_ADDRESS            host:port (default localhost:7233)
    TEMPORAL_NAMESPACE          (default "default")
    TEMPORAL_API_KEY            an API key (turns TLS on)
    TEMPORAL_TLS                true/false
    TEMPORAL_TLS_CLIENT_CERT_PATH, TEMPORAL_TLS_CLIENT_KEY_PATH   mTLS client certificate and key
    TEMPORAL_TLS_SERVER_CA_CERT_PATH, TEMPORAL_TLS_SERVER_NAME    a private CA, an SNI override
    TEMPORAL_CONFIG_FILE        a TOML file of profiles (default ~/.config/temporalio/temporal.toml)
    TEMPORAL_PROFILE            the profile to use from it (default "default")

Environment variables override the profile's values. Payloads are encrypted (encryption/codec.py).
With tracing on (infra/tracing.py: OTEL_EXPORTER_OTLP_ENDPOINT), the client carries the SDK's OpenTelemetry
interceptor, and so does every worker built on it.
"""

from __future__ import annotations

from temporalio.client import Client
from temporalio.runtime import Runtime

from encryption.codec import data_converter_for
from infra import tracing
from infra.config import connect_config


async def connect(
    address: str | None = None, namespace: str | None = None, runtime: Runtime | None = None, *, profile: str | None = None
) -> Client:
    """A client; `address` and `namespace` override the configuration (the tests' own servers)."""
    config = connect_config(profile=profile)
    if address:
        config["target_host"] = address
    if namespace:
        config["namespace"] = namespace
    return await Client.connect(
        **config,
        data_converter=data_converter_for(config["target_host"]),  # PAYLOAD_KEYS, or the local stack's dev key
        runtime=runtime,  # None: the SDK's default runtime
        interceptors=tracing.interceptors(),  # none when tracing is off
    )
