"""What every route shares: the backend (Temporal client and system of record), the bearer-token check,
the error shapes, and the timeout on a case's answer."""

from __future__ import annotations

import asyncio
import hmac
from typing import Annotated, Any

from fastapi import Depends, Path, Request, Security
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import BaseModel, Field

from access.permissions import Caller, acting_as, roles_for
from domain.models import ID_PATTERN
from infra.config import ApiSettings, SettingsError, load, settings

DEFAULT_TOKEN = "dev-token"
DEFAULT_PORT = 8800


class ConfigError(Exception):
    """The API refuses to start (e.g. API_REQUIRE_TOKEN=1 and no API_TOKEN)."""


def api_settings(env: dict[str, str] | None = None) -> ApiSettings:
    try:
        return load(ApiSettings, env)
    except SettingsError as exc:
        raise ConfigError(str(exc)) from None


def tokens_from_env(env: dict[str, str] | None = None) -> list[str]:
    """API_TOKEN (comma-separated for rotation); "dev-token" unless API_REQUIRE_TOKEN=1."""
    cfg = api_settings(env)
    tokens = [t.strip() for t in (cfg.tokens or "").split(",") if t.strip()]
    if cfg.require_token:
        if not tokens:
            raise ConfigError("API_REQUIRE_TOKEN=1 but API_TOKEN is not set: refusing to start without a token")
        if DEFAULT_TOKEN in tokens:
            raise ConfigError(f"API_REQUIRE_TOKEN=1 but API_TOKEN is the development token {DEFAULT_TOKEN!r}")
    return tokens or [DEFAULT_TOKEN]


class ErrorDetail(BaseModel):
    field: str | None = Field(description="the input field at fault (null when none)")
    reason: str


class ErrorBody(BaseModel):
    error: ErrorDetail


class ApiError(Exception):
    def __init__(self, status: int, field: str | None, reason: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(reason)
        self.status, self.field, self.reason, self.headers = status, field, reason, headers


def _err(description: str) -> dict[str, Any]:
    return {"model": ErrorBody, "description": description}


E401 = {401: _err("no valid bearer token; nothing was changed")}
E404 = {404: _err("unknown loan, or no (open) case for it; nothing was changed")}
E422 = {422: _err("bad input: the field and the reason; nothing was changed")}
E503 = {503: _err("Temporal unreachable or the case did not answer in time; retry")}
LoanId = Annotated[str, Path(pattern=ID_PATTERN, description="the bank's loan id (the case is loan-<loan_id>)")]


class Backend:
    """The Temporal client (connected on first use) and the system of record."""

    def __init__(self, client=None, repo=None) -> None:
        self._client = client
        self._repo = repo
        self._lock = asyncio.Lock()

    last_error: str | None = None

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def keep_connecting(self, pause: float = 2.0) -> None:
        """At start: connect now, not at the first request, and retry until it works (what /health reports)."""
        while self._client is None:
            try:
                await self.client()
            except ApiError as exc:
                self.last_error = exc.reason
                await asyncio.sleep(pause)
        self.last_error = None

    async def client(self):
        if self._client is None:
            async with self._lock:
                if self._client is None:
                    from infra.temporal import connect

                    try:
                        self._client = await connect()
                    except RuntimeError as exc:
                        raise ApiError(503, None, f"cannot reach Temporal at {settings().temporal_address}: {exc}") from None
        return self._client

    def repo(self):
        if self._repo is None:
            from db.engine import make_engine
            from db.repo import Repo

            self._repo = Repo(make_engine())
        return self._repo


def backend(request: Request) -> Backend:
    """The app's backend (a route dependency)."""
    return request.app.state.backend


bearer = HTTPBearer(
    auto_error=False,
    scheme_name="bearerAuth",
    description="an operator's token (`starter.py operators token NAME`); API_TOKEN is only a "
    "bootstrap admin token, for managing operators",
)
E403 = {403: _err("the operator's roles do not allow this (field: authorization); nothing was changed")}


def _unauthorized() -> ApiError:
    return ApiError(
        401,
        "authorization",
        "a valid bearer token is needed (Authorization: Bearer <token>)",
        headers={"WWW-Authenticate": "Bearer"},
    )


async def authenticated(request: Request, creds: HTTPAuthorizationCredentials | None = Security(bearer)) -> Caller:
    """The operator behind the bearer token (401 otherwise), made the current caller of the use cases.

    API_TOKEN (the bootstrap secrets) is compared with every secret in constant time and gives the
    `bootstrap` admin, which may manage operators and nothing else; any other token is an operator's,
    checked against its hash in the database (access.operators)."""
    cached = getattr(request.state, "caller", None)
    if cached is not None:
        acting_as(cached)
        return cached
    given = creds.credentials if creds and creds.scheme.lower() == "bearer" else ""
    if not given or len(given) > 200:
        raise _unauthorized()
    raw = given.encode()
    if any([hmac.compare_digest(raw, s) for s in request.app.state.secrets]):
        caller = Caller("bootstrap", ["admin"], via="bootstrap")
    else:
        from access.operators import Operators

        be: Backend = request.app.state.backend
        caller = await _with_database(lambda: asyncio.to_thread(Operators(be.repo()).authenticate, given))
        if caller is None:
            raise _unauthorized()
    request.state.caller = caller
    acting_as(caller)
    return caller


async def _with_database(make):
    """A database read the request cannot go on without, tried again while the database is unreachable (a
    restart, a failover) for up to API_UPDATE_TIMEOUT; then 503 with Retry-After."""
    from app import inputs

    seconds = api_settings().update_timeout
    try:
        return await inputs.answered(make, seconds, attempt_timeout=seconds)
    except inputs.Unanswered as exc:
        raise ApiError(
            503, None, f"the database is unreachable: {exc.reason}; retry", {"Retry-After": str(exc.retry_after)}
        ) from None


# kept for the routes that only need a valid token
authorized = authenticated
CallerDep = Annotated[Caller, Depends(authenticated)]


def guard(*use_cases: str) -> dict[str, Any]:
    """Route keyword arguments: the roles that may use it, checked before the body is read into the use
    case (403 otherwise), and stated in the OpenAPI document (x-roles, and in the description). The
    roles come from the one permission table (access.permissions)."""
    roles = roles_for(*use_cases)

    async def permitted(caller: CallerDep) -> None:
        caller.require_any(use_cases)

    return {
        "dependencies": [Depends(permitted)],
        "openapi_extra": {"x-roles": list(roles), "x-use-cases": list(use_cases)},
        "description": f"Roles: {', '.join(roles)}.",
    }


async def answered(make):
    """An input (`make()` makes one attempt of it) answered within API_UPDATE_TIMEOUT: attempts that meet a
    recovering case, a Temporal or database restart, or a lost answer are made again inside this request (the
    same update ids: one input, one update); 503 with Retry-After only when none answered in time."""
    from app import inputs

    seconds = api_settings().update_timeout
    try:
        return await inputs.answered(make, seconds, attempt_timeout=min(10.0, seconds))
    except inputs.Unanswered as exc:
        raise ApiError(
            503,
            None,
            f"the case did not answer within {seconds:.0f}s: {exc.reason}; nothing is known to have changed; "
            "send the same input again (a payment with the same payment_id is applied once)",
            headers={"Retry-After": str(exc.retry_after)},
        ) from None


async def within_timeout(coro):
    seconds = api_settings().update_timeout
    try:
        async with asyncio.timeout(seconds):
            return await coro
    except TimeoutError:
        raise ApiError(
            503,
            None,
            f"the case did not answer within {seconds:.0f}s; retry (a payment with the same payment_id is applied once)",
        ) from None
