"""The payments and case API for the bank's systems (FastAPI).

Every /v1 route needs `Authorization: Bearer <token>`; a request without a valid token gets
401 and changes nothing. Errors always have one shape: {"error": {"field": ..., "reason": ...}}:

- 401 no or wrong token; 404 unknown loan or no case; 422 bad input (the field and the reason;
  a case's own refusal, e.g. an amount above the balance, comes back the same way);
- 503 with Retry-After: Temporal or the database could not be reached, or the case did not answer in time or is
  recovering from a crash. An input is tried again inside the request first (its attempts are one update, under
  one update id) for up to API_UPDATE_TIMEOUT; only then 503. Retry: inputs are idempotent by payment id, and a
  repeated plan/hold is refused, not applied twice.

Routes: api/routes/ (one module per resource). The logic is in app/, shared with the command line (starter.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Literal

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel, Field
from sqlalchemy.exc import DBAPIError
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError

import console
from access.permissions import Forbidden
from api.deps import ApiError, Backend, tokens_from_env
from api.routes import borrowers, cases, inputs, payments, tasks, webhooks
from app import calendars, errors
from app import inputs as inputs_app
from borrower import pages as borrower_pages
from infra.bodycap import BodyCap
from infra.config import settings

log = structlog.get_logger("api")
BODY_CAP = 64 * 1024  # the largest input (a case with its borrower's details) is under 2 KB


def _shown_path(path: str) -> str:
    """A path as the request log shows it: a borrower link's token never reaches a log (PIPL art. 51)."""
    if not path.lstrip("/").startswith("b/"):  # //b/<token> is routed as /b/<token> too
        return path
    rest = path.lstrip("/")[2:]
    return "/b/…" + (rest[rest.index("/") :] if "/" in rest else "")


class Health(BaseModel):
    status: Literal["ok"]
    temporal: Literal["connected", "connecting"] = Field(description="the API connects at start and retries")
    detail: str | None = Field(default=None, description="why it is not connected yet (the last attempt's error)")


# --------------------------------------------------------------------------- app


def create_app(tokens: list[str] | None = None, client=None, repo=None) -> FastAPI:
    """The API with the console and the borrower's page. `tokens`: the bootstrap admin tokens (API_TOKEN's when None);
    `client` and `repo`: a Temporal client and a repository to use instead of connecting (the tests')."""
    tokens = tokens if tokens is not None else tokens_from_env()
    secrets = [t.encode() for t in tokens]
    backend = Backend(client, repo)
    app = FastAPI(
        title="Loan collections API",
        version="1",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None,
        lifespan=_lifespan(backend, len(secrets)),
        docs_url=None,  # /docs and /redoc come from console/ with local assets (no CDN)
        redoc_url=None,
    )
    _add_error_handlers(app)
    _add_service_routes(app, backend)
    app.add_middleware(BodyCap, cap=BODY_CAP)  # outermost: before routing and the token check

    for r in (cases.router, payments.router, inputs.router, borrowers.router, tasks.router, webhooks.router):
        app.include_router(r)
    console.install(app)  # the console's pages, and /docs and /redoc from local assets
    borrower_pages.install(app)  # the borrower's own page behind each message's link (/b/...)
    app.state.secrets = secrets
    app.state.backend = backend
    return app


def _lifespan(backend: Backend, bootstrap_tokens: int):
    """The app's life: it keeps connecting to Temporal and reads the approved calendars while it serves."""

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        log.info("api started", temporal=settings().temporal_address, task_queue=settings().task_queue)
        log.warning(
            "API_TOKEN is a bootstrap admin token: it may manage operators and tokens only; "
            "operators act with their own tokens (starter.py operators token NAME)",
            bootstrap_tokens=bootstrap_tokens,
        )
        connecting = asyncio.create_task(backend.keep_connecting())
        # the approved database calendars, read every minute (the console's calendar page and `check` show them)
        refreshing = asyncio.create_task(calendars.watch(backend.repo(), settings().calendar_refresh))
        yield
        connecting.cancel()
        refreshing.cancel()
        log.info("api stopped")

    return lifespan


def _error(status: int, field: str | None, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
    """Every error the API answers has this one shape: {"error": {"field": ..., "reason": ...}}."""
    return JSONResponse({"error": {"field": field, "reason": reason}}, status_code=status, headers=headers)


def _add_error_handlers(app: FastAPI) -> None:
    """Each kind of failure to its status: bad input 422, not found 404, a dependency away 503 with Retry-After (the
    caller may retry: nothing was changed), anything else 500 without its details."""

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return _error(exc.status, exc.field, exc.reason, exc.headers)

    @app.exception_handler(Forbidden)
    async def _forbidden(_r: Request, exc: Forbidden) -> JSONResponse:
        return _error(403, "authorization", exc.reason)

    @app.exception_handler(errors.NotFound)
    async def _not_found(_r: Request, exc: errors.NotFound) -> JSONResponse:
        return _error(404, exc.field, exc.reason)

    @app.exception_handler(errors.Busy)
    async def _busy(_r: Request, exc: errors.Busy) -> JSONResponse:
        return _error(503, None, str(exc), {"Retry-After": "5"})

    @app.exception_handler(errors.BadInput)
    async def _bad_input(_r: Request, exc: errors.BadInput) -> JSONResponse:
        return _error(422, exc.field, exc.reason)

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errs = list(exc.errors())
        if errs and errs[0].get("type") == "json_invalid":
            return _error(422, "body", "is not valid JSON")
        name, reason = errors.field_and_reason(errs, skip=("body", "path", "query", "header"))
        return _error(422, "body" if name == "input" else name, reason)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not read the body (e.g. bytes that are not UTF-8)
            return _error(422, "body", "is not valid JSON (UTF-8)")
        return _error(exc.status_code, None, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RPCError)
    async def _rpc(_r: Request, exc: RPCError) -> JSONResponse:
        if inputs_app.transient(exc):
            return _error(503, None, f"Temporal is unavailable: {exc.message}; retry", {"Retry-After": "2"})
        log.error("temporal error", status=exc.status.name if exc.status else None, message=exc.message)
        return _error(500, None, "internal error talking to Temporal")

    @app.exception_handler(DBAPIError)
    async def _database(_r: Request, exc: DBAPIError) -> JSONResponse:
        if inputs_app.transient(exc):  # restarting, failing over, a dropped connection: nothing was changed
            log.warning("database unreachable", error=type(exc.orig).__name__)
            return _error(503, None, "the database is unreachable; nothing was changed; retry", {"Retry-After": "5"})
        log.exception("database error", error=type(exc.orig).__name__)
        return _error(500, None, "internal error")

    @app.exception_handler(inputs_app.Unanswered)
    async def _unanswered(_r: Request, exc: inputs_app.Unanswered) -> JSONResponse:
        return _error(503, None, f"{exc.reason}; retry", {"Retry-After": str(exc.retry_after)})

    @app.exception_handler(Exception)
    async def _unexpected(_r: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", error=type(exc).__name__)
        return _error(500, None, "internal error")


def _add_service_routes(app: FastAPI, backend: Backend) -> None:
    """The request log, /health and /metrics: what the platform needs, with no token."""

    @app.middleware("http")
    async def _log(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        log.info(
            "request",
            method=request.method,
            path=_shown_path(request.url.path),
            status=response.status_code,
            ms=round((time.perf_counter() - started) * 1000, 1),
        )
        return response

    @app.get("/health", response_model=Health, tags=["service"], summary="Liveness (no token needed)")
    async def health() -> Health:
        if backend.connected:
            return Health(status="ok", temporal="connected")
        return Health(status="ok", temporal="connecting", detail=backend.last_error)

    @app.get("/metrics", include_in_schema=False)
    async def metrics_text() -> Response:
        """The API's counters in Prometheus' text format (no token: counts only, no case data)."""
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)
