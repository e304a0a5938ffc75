"""The gateway's FastAPI app: the providers' routes, the outbox and the admin routes on one Gateway state."""

from __future__ import annotations

import contextlib
import time
import uuid

import structlog
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from infra.config import GatewaySettings, load
from sandbox.gateway.admin import admin_router
from sandbox.gateway.channels import CHANNELS
from sandbox.gateway.common import DEFAULT_API_KEY, INSTANCE_HEADER, ApiError, error_body, first_error
from sandbox.gateway.delivery import delivery_router
from sandbox.gateway.outbox import outbox_router
from sandbox.gateway.payments import payments_router
from sandbox.gateway.state import Gateway
from sandbox.gateway.store import MEMORY

log = structlog.get_logger("sandbox.gateway")


def create_app(api_key: str | None = None, db_path: str | None = None, *, instance: str | None = None) -> FastAPI:
    """The gateway app. api_key defaults to $GATEWAY_API_KEY or "sandbox-key"; db_path to
    $GATEWAY_DB or an in-process (":memory:") store."""
    cfg = load(GatewaySettings)
    api_key = api_key or cfg.api_key or DEFAULT_API_KEY
    db_path = db_path or cfg.db or MEMORY
    instance = instance or cfg.instance or uuid.uuid4().hex
    gw = Gateway(api_key, db_path)

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        log.info("gateway started", db=db_path, instance=instance)
        yield
        gw.store.close()
        log.info("gateway stopped")

    app = FastAPI(title="Sandbox channel gateway", version="1", lifespan=lifespan)
    app.state.gateway = gw
    _answer_errors(app)
    app.middleware("http")(_log_requests)

    @app.get("/health")
    async def health() -> Response:
        return JSONResponse({"status": "ok"}, headers={INSTANCE_HEADER: instance})

    app.include_router(delivery_router(gw, CHANNELS.values()))
    app.include_router(outbox_router(gw))
    app.include_router(admin_router(gw))
    app.include_router(payments_router(gw))  # the payment page and the SMS replies (signed webhooks to the bank)
    return app


def _answer_errors(app: FastAPI) -> None:
    """Every error as {"error": {"field", "reason"}}: the gateway's own, FastAPI's validation, Starlette's 404/405."""

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(error_body(exc.field, exc.reason), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        f, reason = first_error(list(exc.errors()), skip=("query", "body", "path", "header"))
        return JSONResponse(error_body(f, reason), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(error_body(None, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None))


async def _log_requests(request: Request, call_next):
    started = time.perf_counter()
    response = await call_next(request)
    path = request.url.path
    level = log.debug if path == "/health" else log.info
    level(
        "request",
        method=request.method,
        path=path,
        status=response.status_code,
        ms=round((time.perf_counter() - started) * 1000, 1),
        idempotency_key=request.headers.get("idempotency-key"),
    )
    return response
