"""Settings: every environment variable the processes read, typed, in one place (pydantic-settings).

One model per process; each takes the shared ones (`Common`) and its own:

    WorkerSettings        worker.py                  WORKER_*, GATEWAY_URL/_API_KEY/_TIMEOUT/_MAX_CONNECTIONS
    ApiSettings           python -m api              API_*
    CodecServerSettings   python -m encryption.codec_server   CODEC_*
    GatewaySettings       python -m sandbox          GATEWAY_*
    StackSettings         python -m devstack.stack   the ports of the local stack
    CliSettings           starter.py                 COLLECTIONS_TOKEN, COLLECTIONS_LOCAL_ADMIN
    SimSettings           starter.py simulate        SIM_LOG_LEVEL
    BenchSettings         python -m bench            CHAOS_DIR
    PayloadKeySettings    every process that encrypts or decrypts payloads (encryption/codec.py): PAYLOAD_KEYS, PAYLOAD_KEY_ID

`settings()` (the worker's, which the CLI and the tools share) is read once per process and kept; whatever changes
the environment afterwards calls `settings.cache_clear()` (starter.py's use of a running stack does; the tests'
monkeypatch.setenv does, through tests/conftest.py). `load(Model)` reads the environment anew at each call: each
process calls it once, at start.

A bad value stops the process with a `SettingsError` that names the variable and the reason
("API_PORT: Input should be a valid integer"). An empty variable counts as unset (its default),
except WORKER_METRICS_ADDRESS, where empty turns the metrics endpoint off (and OTEL_EXPORTER_OTLP_ENDPOINT,
where unset and empty alike leave tracing off).

The Temporal connection (address, namespace, API key, TLS, profiles in a TOML file) is not a model here:
it is the SDK's environment configuration (temporalio.envconfig), read by `connect_config` below, so that
the same profiles and TEMPORAL_* variables work as for the `temporal` CLI; infra/temporal.py connects with it.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

from pydantic import AfterValidator, BeforeValidator, Field, ValidationError
from pydantic_core import PydanticUseDefault
from pydantic_settings import BaseSettings, SettingsConfigDict
from temporalio.envconfig import ClientConfigProfile, ClientConnectConfig

ROOT = Path(__file__).resolve().parent.parent


class SettingsError(ValueError):
    """A bad environment variable: 'NAME: reason'."""


def _blank_is_default(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise PydanticUseDefault()
    return value


def _lower(value: Any) -> Any:
    return value.strip().lower() if isinstance(value, str) else value


def _strip(value: Any) -> Any:
    return value.strip() if isinstance(value, str) else value


def _on_if(*words: str) -> BeforeValidator:
    """A switch that is on only when set to one of `words` (after stripping), off for any other value."""
    return BeforeValidator(lambda value: value.strip() in words if isinstance(value, str) else value)


def _off_if(*words: str) -> BeforeValidator:
    """A switch that is off only when set to one of `words` (after stripping), on for any other value."""
    return BeforeValidator(lambda value: value.strip() not in words if isinstance(value, str) else value)


Str = Annotated[str, BeforeValidator(_blank_is_default)]
Int = Annotated[int, BeforeValidator(_blank_is_default)]
Float = Annotated[float, BeforeValidator(_blank_is_default)]
Flag = Annotated[bool, BeforeValidator(_blank_is_default)]
Port = Annotated[int, Field(gt=0, lt=65536), BeforeValidator(_blank_is_default)]
ListenPort = Annotated[int, Field(ge=0, lt=65536), BeforeValidator(_blank_is_default)]  # 0: any free port
LogLevel = Annotated[
    Literal["debug", "info", "warning", "error", "critical"], BeforeValidator(_lower), BeforeValidator(_blank_is_default)
]
# Values never echoed in an error message (a database URL may hold a password).
SECRET = ("TOKEN", "KEY", "DATABASE_URL", "PAYLOAD")


def _http_url(value: str | None) -> str | None:
    if value is not None and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", value):
        raise ValueError("must be an http:// or https:// URL, e.g. http://localhost:4318 (the collector's OTLP/HTTP base)")
    return value


def env(name: str, default: Any = None, **constraints: Any) -> Any:
    return Field(default, validation_alias=name, **constraints)


class _Env(BaseSettings):
    model_config = SettingsConfigDict(extra="ignore", frozen=True, case_sensitive=True)


class Common(_Env):
    var_dir: Annotated[Path, BeforeValidator(_blank_is_default)] = env("COLLECTIONS_VAR_DIR", ROOT / "var")
    task_queue: Str = env("TEMPORAL_TASK_QUEUE", "collections", min_length=1)
    log_format: Annotated[Literal["auto", "json", "console"], BeforeValidator(_lower), BeforeValidator(_blank_is_default)] = env(
        "LOG_FORMAT", "auto"
    )
    log_level: LogLevel = env("LOG_LEVEL", "info")
    database_url: Str | None = env("DATABASE_URL")
    teams_file: Annotated[Path | None, BeforeValidator(_blank_is_default)] = env(
        "COLLECTIONS_TEAMS_FILE", None, description="agent mode's teams (default policies/teams/default.toml)"
    )
    # Tracing (infra/tracing.py): spans go over OTLP/HTTP to <endpoint>/v1/traces; unset or empty: tracing is off.
    tracing_endpoint: Annotated[str | None, BeforeValidator(_blank_is_default), AfterValidator(_http_url)] = env(
        "OTEL_EXPORTER_OTLP_ENDPOINT", None, description="the OpenTelemetry collector's OTLP/HTTP base URL"
    )
    calendar_refresh: Float = env(
        "COLLECTIONS_CALENDAR_REFRESH",
        60.0,
        gt=0,
        description="seconds between two reads of the approved database calendars (app/calendars.py)",
    )
    # Another folder of calendar files than policies/calendars/, for the test suite and the benchmarks only: their
    # time-skipping clock runs years ahead, into years whose notice is not out, and they put test-only stand-ins
    # for those there. Production never sets it. The entry points hand it to domain/calendar.py (use_folder).
    calendar_dir: Annotated[Path | None, BeforeValidator(_blank_is_default)] = env(
        "COLLECTIONS_CALENDAR_DIR", None, description="the calendar files' folder (default policies/calendars)"
    )
    # Set by devstack/stack.py for its children: demo policies (compressed days) are accepted only there. Only
    # 1, true and yes turn it on; any other value leaves it off, as a process outside the stack must be.
    dev_stack: Annotated[bool, _on_if("1", "true", "yes")] = env("COLLECTIONS_DEV_STACK", False)
    # The borrower's page (borrower/): the address its links start with, and the secret their tokens are made with
    # (base64, at least 32 bytes; unset: the local stack's own, var/link-secret, for a Temporal on this machine).
    public_url: Annotated[str, BeforeValidator(_blank_is_default), AfterValidator(_http_url)] = env(
        "COLLECTIONS_PUBLIC_URL", "http://127.0.0.1:8800", description="the borrower page's public base URL"
    )
    link_secret: Annotated[str | None, BeforeValidator(_blank_is_default)] = env(
        "COLLECTIONS_LINK_SECRET", None, description="base64 secret of the borrower links (HMAC key)"
    )
    # The gateway's webhooks (domain/webhooks.py) are signed with this; unset: derived from GATEWAY_API_KEY, which the
    # worker, the API and the sandbox gateway already share.
    webhook_secret: Annotated[str | None, BeforeValidator(_blank_is_default)] = env(
        "GATEWAY_WEBHOOK_SECRET", None, description="the secret the gateway signs its webhooks with"
    )

    @property
    def temporal_address(self) -> str:
        return connect_config()["target_host"]

    @property
    def temporal_namespace(self) -> str:
        return connect_config()["namespace"]


class WorkerSettings(Common):
    max_cached_workflows: Int = env("WORKER_MAX_CACHED_WORKFLOWS", 10_000, ge=0)
    max_concurrent_activities: Int = env("WORKER_MAX_CONCURRENT_ACTIVITIES", 200, ge=1)
    max_concurrent_workflow_tasks: Int = env("WORKER_MAX_CONCURRENT_WORKFLOW_TASKS", 100, ge=2)
    metrics_address: str = env(
        "WORKER_METRICS_ADDRESS", "127.0.0.1:9464", pattern=r"^$|^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):[0-9]{1,5}$"
    )
    gateway_url: Str = env("GATEWAY_URL", "http://127.0.0.1:8700", pattern=r"^https?://")
    gateway_api_key: Str = env("GATEWAY_API_KEY", "sandbox-key")
    gateway_timeout: Float = env("GATEWAY_TIMEOUT", 10.0, gt=0)
    gateway_max_connections: Int = env("GATEWAY_MAX_CONNECTIONS", 16, ge=1)
    # Worker Versioning (infra/deployments.py, docs/operations.md "Rolling out a new worker build"). Off: the worker polls
    # unversioned, for a server without worker deployments (before Temporal 1.28) or one that has them disabled.
    versioning: Flag = env("WORKER_VERSIONING", True)
    deployment_name: Str = env("WORKER_DEPLOYMENT_NAME", "collections", min_length=1, max_length=255, pattern=r"^[^\s.]+$")
    # unset: derived from the worker's sources (infra.deployments.source_build_id); CI may set its own (a release tag)
    build_id: Str | None = env("WORKER_BUILD_ID", None, min_length=1, max_length=255, pattern=r"^[^\s]+$")


class ApiSettings(Common):
    host: Str = env("API_HOST", "127.0.0.1")
    port: ListenPort = env("API_PORT", 8800)
    tokens: Str | None = env("API_TOKEN", None, description="bearer tokens, comma-separated for rotation")
    require_token: Flag = env("API_REQUIRE_TOKEN", False)
    update_timeout: Float = env("API_UPDATE_TIMEOUT", 30.0, gt=0)


class CodecServerSettings(Common):
    host: Str = env("CODEC_HOST", "127.0.0.1")
    port: ListenPort = env("CODEC_PORT", 8081)
    token: Str | None = env("CODEC_TOKEN")
    dev: Flag = env("CODEC_DEV", False)
    cors_origins: Str | None = env("CODEC_CORS_ORIGINS")
    cookie_secure: Flag = env("CODEC_COOKIE_SECURE", False)
    server_log_level: LogLevel = env("CODEC_LOG_LEVEL", "info")
    ui_port: Port = env("TEMPORAL_UI_PORT", 8233)


class GatewaySettings(Common):
    host: Str = env("GATEWAY_HOST", "127.0.0.1")
    port: ListenPort = env("GATEWAY_PORT", 8700)
    db: Str | None = env("GATEWAY_DB")
    server_log_level: LogLevel = env("GATEWAY_LOG_LEVEL", "info")
    api_key: Str | None = env("GATEWAY_API_KEY")
    instance: Str | None = env("GATEWAY_INSTANCE")


class StackSettings(WorkerSettings):
    ui_port: Port = env("TEMPORAL_UI_PORT", 8233)
    gateway_port: Port | None = env("GATEWAY_PORT")
    api_port: Port = env("API_PORT", 8800)
    api_token: Str | None = env("API_TOKEN")
    codec_port: Port = env("CODEC_PORT", 8081)
    codec_token: Str | None = env("CODEC_TOKEN")
    codec_cors_origins: Str | None = env("CODEC_CORS_ORIGINS")


DEFAULT_TEMPORAL_ADDRESS = "localhost:7233"
DEFAULT_TEMPORAL_NAMESPACE = "default"


def connect_config(environ: Mapping[str, str] | None = None, *, profile: str | None = None) -> ClientConnectConfig:
    """Client.connect's arguments from the profile file and the TEMPORAL_* variables (or `environ` alone)."""
    prof = ClientConfigProfile.load(profile=profile, override_env_vars=environ)
    config = prof.to_client_connect_config()
    config.setdefault("target_host", DEFAULT_TEMPORAL_ADDRESS)
    config.setdefault("namespace", DEFAULT_TEMPORAL_NAMESPACE)
    return config


class CliSettings(WorkerSettings):
    token: Annotated[str | None, BeforeValidator(_strip), BeforeValidator(_blank_is_default)] = env(
        "COLLECTIONS_TOKEN", None, description="the operator's token the commands act with (or --token)"
    )
    # Without a token, on a Temporal on loopback (the local dev stack), the CLI acts as the local admin; 0 turns
    # that off (any other value leaves it on).
    local_admin: Annotated[bool, _off_if("0")] = env("COLLECTIONS_LOCAL_ADMIN", True)


class SimSettings(Common):
    sim_log_level: LogLevel = env("SIM_LOG_LEVEL", "error", description="the simulator's log level (it logs a lot)")


class BenchSettings(Common):
    chaos_dir: Annotated[Path | None, BeforeValidator(_blank_is_default)] = env(
        "CHAOS_DIR", None, description="where the chaos run makes its working folder (default: the system's temp folder)"
    )


class ScreenshotSettings(Common):
    chromium: Str = env("CHROMIUM", "/usr/bin/chromium", description="the browser the console's screenshots are taken with")
    api_port: Port = env("API_PORT", 8800)


class PayloadKeySettings(_Env):
    """Only the payload keys: a process that needs the codec is not stopped by another variable's bad value."""

    keys: Str | None = env("PAYLOAD_KEYS", None, description="id1:base64key,id2:base64key (encryption/codec.py)")
    key_id: Str | None = env("PAYLOAD_KEY_ID", None, description="the id of the key that encrypts")


S = TypeVar("S", bound=_Env)


def load(model: type[S], environ: dict[str, str] | None = None) -> S:
    """The model from the environment (or from `environ` alone); a bad value raises SettingsError naming it."""
    try:
        if environ is None:
            return model()
        names = {f.validation_alias for f in model.model_fields.values()}
        return model.model_validate({k: v for k, v in environ.items() if k in names})
    except ValidationError as exc:
        raise SettingsError(describe(exc)) from None


def describe(exc: ValidationError) -> str:
    out = []
    for err in exc.errors():
        name = ".".join(str(p) for p in err.get("loc", ())) or "settings"
        shown = "" if any(s in name for s in SECRET) else f" (got {err.get('input')!r})"
        out.append(f"{name}: {err.get('msg', 'invalid')}{shown}")
    return "; ".join(out)


@functools.cache
def settings() -> WorkerSettings:
    """The worker's settings (the CLI and the tools share them: task queue, logging, paths), read once per process;
    `settings.cache_clear()` reads them anew at the next call."""
    return load(WorkerSettings)


def var_dir() -> Path:
    """COLLECTIONS_VAR_DIR (default var/ in the checkout), read at call time."""
    return load(Common).var_dir.resolve()
