"""The payments and case API for the bank's systems (FastAPI).

Every /v1 route needs `Authorization: Bearer <token>`; a request without a valid token gets
401 and changes nothing. Errors always have one shape: {"error": {"field": ..., "reason": ...}}:

- 401 no or wrong token; 404 unknown loan or no case; 422 bad input (the field and the reason;
  a case's own refusal, e.g. an amount above the balance, comes back the same way);
- 503 Temporal could not be reached, the case did not answer in time or is recovering from a crash (retry: inputs are
  idempotent by payment id, and a repeated plan/hold is refused, not applied twice).

The logic is in infra.operations, shared with the command line (starter.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hmac
import os
import time
from typing import Annotated, Any, Literal

import structlog
from fastapi import APIRouter, Depends, FastAPI, Path, Query, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field
from starlette.exceptions import HTTPException as StarletteHTTPException
from temporalio.service import RPCError, RPCStatusCode

from domain.models import (
    ID_PATTERN, CaseStatus, CloseIn, HoldIn, HoldKind, OutcomeIn, PlanIn, PlanResult, PromiseIn, ReleaseIn,
    UpdateResult, WriteOffConfirmIn,
)
from infra import operations as ops
from infra.config import settings

log = structlog.get_logger("api")

DEFAULT_TOKEN = "dev-token"
DEFAULT_PORT = 8800
UPDATE_TIMEOUT = float(os.environ.get("API_UPDATE_TIMEOUT", "30"))
NO_CONTROL = r"^[^\x00-\x1f\x7f]*$"


class ConfigError(Exception):
    """The API refuses to start (e.g. API_REQUIRE_TOKEN=1 and no API_TOKEN)."""


def tokens_from_env(env: dict[str, str] | None = None) -> list[str]:
    """API_TOKEN (comma-separated for rotation); "dev-token" unless API_REQUIRE_TOKEN=1."""
    env = dict(os.environ) if env is None else env
    tokens = [t.strip() for t in (env.get("API_TOKEN") or "").split(",") if t.strip()]
    if env.get("API_REQUIRE_TOKEN", "").strip().lower() in ("1", "true", "yes"):
        if not tokens:
            raise ConfigError("API_REQUIRE_TOKEN=1 but API_TOKEN is not set: refusing to start without a token")
        if DEFAULT_TOKEN in tokens:
            raise ConfigError(f"API_REQUIRE_TOKEN=1 but API_TOKEN is the development token {DEFAULT_TOKEN!r}")
    return tokens or [DEFAULT_TOKEN]


# --------------------------------------------------------------------------- shapes

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


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Borrower(Model):
    """Contact details: stored in the database only, never in Temporal."""

    name: str = Field(min_length=1, max_length=200, pattern=NO_CONTROL)
    phone: str | None = Field(default=None, max_length=32, pattern=r"^\+?[0-9][0-9 ()-]{4,30}$")
    email: str | None = Field(default=None, max_length=254, pattern=r"^[^@\s]{1,64}@[^@\s]+\.[^@\s]+$")
    address: str | None = Field(default=None, max_length=500, pattern=NO_CONTROL)
    id_number: str | None = Field(default=None, max_length=32, pattern=r"^[0-9A-Za-z]{1,32}$")
    language: Literal["zh", "en"] = "zh"


class StartCase(Model):
    loan_id: str = Field(pattern=ID_PATTERN)
    borrower_id: str = Field(pattern=ID_PATTERN)
    principal: str = Field(description="outstanding principal, decimal string in major units, e.g. '12000.00'")
    interest: str = "0"
    fees: str = "0"
    currency: str = "CNY"
    due_date: dt.date = Field(description="the missed due date (borrower's calendar)")
    timezone: str = "Asia/Shanghai"
    segment: str = Field(default="retail", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    product: str = Field(default="personal_loan", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    guarantor_id: str | None = Field(default=None, pattern=ID_PATTERN)
    policy: str | None = Field(default=None, pattern=r"^[a-z][a-z0-9_-]{0,63}$",
                               description="a policy name; default: the segment's policy if any, else default")
    borrower: Borrower | None = Field(default=None, description="contact details, written to the database before "
                                      "the case opens; may be left out when the borrower is already there")


class PaymentBody(Model):
    payment_id: str = Field(pattern=ID_PATTERN, description="the bank's payment id: sending it again changes nothing")
    amount: str = Field(description="decimal string in major units, e.g. '500.00'")
    currency: str | None = Field(default=None, description="defaults to the loan's currency")
    paid_at: AwareDatetime | None = Field(default=None, description="when it was paid (with UTC offset)")


class ApplyUnappliedBody(Model):
    payment_ids: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(
        default=[], max_length=100, description="only these unapplied payments; empty: all of the loan's")


class ReversalBody(Model):
    reason: str = Field(min_length=1, max_length=200, description="why the payment was taken back (returned transfer, failed debit)")
    at: AwareDatetime | None = Field(default=None, description="when the bank learnt of it (with UTC offset); default now")


class ReleaseBody(Model):
    reviewer: str | None = Field(default=None, max_length=100, description="complaint: the reviewer releasing it")
    resolution: str = Field(default="", max_length=200)


class CaseList(BaseModel):
    query: str = Field(description="the visibility query that was run")
    count: int
    items: list[ops.CaseSummary]


class Health(BaseModel):
    status: Literal["ok"]
    temporal: Literal["connected", "not connected yet"]


# --------------------------------------------------------------------------- backend

class Backend:
    """The Temporal client (connected on first use) and the system of record."""

    def __init__(self, client=None, repo=None) -> None:
        self._client = client
        self._repo = repo
        self._lock = asyncio.Lock()

    @property
    def connected(self) -> bool:
        return self._client is not None

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


# --------------------------------------------------------------------------- app

def create_app(tokens: list[str] | None = None, client=None, repo=None) -> FastAPI:
    tokens = tokens if tokens is not None else tokens_from_env()
    secrets = [t.encode() for t in tokens]
    backend = Backend(client, repo)
    bearer = HTTPBearer(auto_error=False, description="API_TOKEN of the service",
                        scheme_name="bearerAuth")

    async def authorized(creds: HTTPAuthorizationCredentials | None = Security(bearer)) -> None:
        given = (creds.credentials if creds and creds.scheme.lower() == "bearer" else "").encode()
        # compare with every token (constant time each), so timing says nothing about which matched
        if not given or not any([hmac.compare_digest(given, s) for s in secrets]):
            raise ApiError(401, "authorization", "a valid bearer token is needed (Authorization: Bearer <token>)",
                           headers={"WWW-Authenticate": "Bearer"})

    @contextlib.asynccontextmanager
    async def lifespan(_app: FastAPI):
        log.info("api started", temporal=settings().temporal_address, task_queue=settings().task_queue)
        yield
        log.info("api stopped")

    app = FastAPI(
        title="Loan collections API", version="1",
        description=__doc__.split("\n\n", 1)[1] if __doc__ else None, lifespan=lifespan,
    )

    def error(status: int, field: str | None, reason: str, headers: dict[str, str] | None = None) -> JSONResponse:
        return JSONResponse({"error": {"field": field, "reason": reason}}, status_code=status, headers=headers)

    @app.exception_handler(ApiError)
    async def _api_error(_r: Request, exc: ApiError) -> JSONResponse:
        return error(exc.status, exc.field, exc.reason, exc.headers)

    @app.exception_handler(ops.NotFound)
    async def _not_found(_r: Request, exc: ops.NotFound) -> JSONResponse:
        return error(404, exc.field, exc.reason)

    @app.exception_handler(ops.Busy)
    async def _busy(_r: Request, exc: ops.Busy) -> JSONResponse:
        return error(503, None, str(exc), {"Retry-After": "5"})

    @app.exception_handler(ops.BadInput)
    async def _bad_input(_r: Request, exc: ops.BadInput) -> JSONResponse:
        return error(422, exc.field, exc.reason)

    @app.exception_handler(RequestValidationError)
    async def _validation(_r: Request, exc: RequestValidationError) -> JSONResponse:
        errors = list(exc.errors())
        if errors and errors[0].get("type") == "json_invalid":
            return error(422, "body", "is not valid JSON")
        name, reason = ops.field_and_reason(errors, skip=("body", "path", "query", "header"))
        return error(422, "body" if name == "input" else name, reason)

    @app.exception_handler(StarletteHTTPException)
    async def _http(_r: Request, exc: StarletteHTTPException) -> JSONResponse:
        if exc.status_code == 400:  # FastAPI could not read the body (e.g. bytes that are not UTF-8)
            return error(422, "body", "is not valid JSON (UTF-8)")
        return error(exc.status_code, None, str(exc.detail), getattr(exc, "headers", None))

    @app.exception_handler(RPCError)
    async def _rpc(_r: Request, exc: RPCError) -> JSONResponse:
        if exc.status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.RESOURCE_EXHAUSTED):
            return error(503, None, f"Temporal is unavailable: {exc.message}; retry")
        log.error("temporal error", status=exc.status.name if exc.status else None, message=exc.message)
        return error(500, None, "internal error talking to Temporal")

    @app.exception_handler(Exception)
    async def _unexpected(_r: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error", error=type(exc).__name__)
        return error(500, None, "internal error")

    @app.middleware("http")
    async def _log(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        log.info("request", method=request.method, path=request.url.path, status=response.status_code,
                 ms=round((time.perf_counter() - started) * 1000, 1))
        return response

    @app.get("/health", response_model=Health, tags=["service"], summary="Liveness (no token needed)")
    async def health() -> Health:
        return Health(status="ok", temporal="connected" if backend.connected else "not connected yet")

    v1 = APIRouter(prefix="/v1", dependencies=[Depends(authorized)], responses={**E401, **E503})

    async def within_timeout(coro):
        try:
            async with asyncio.timeout(UPDATE_TIMEOUT):
                return await coro
        except TimeoutError:
            raise ApiError(503, None, f"the case did not answer within {UPDATE_TIMEOUT:.0f}s; "
                           "retry (a payment with the same payment_id is applied once)") from None

    @v1.post("/cases", tags=["cases"], summary="Open the case of one delinquent loan (idempotent)",
             status_code=201, response_model=ops.StartResult,
             responses={200: {"model": ops.StartResult, "description": "already running: nothing started"},
                        201: {"description": "case started"}, **E422})
    async def start_case(body: StartCase) -> JSONResponse:
        inp = ops.case_input(loan_id=body.loan_id, borrower_id=body.borrower_id, principal=body.principal,
                             interest=body.interest, fees=body.fees, currency=body.currency, due_date=body.due_date,
                             timezone=body.timezone, segment=body.segment, product=body.product,
                             guarantor_id=body.guarantor_id, policy=body.policy, allow_policy_paths=False)
        contact = ops.Contact(**body.borrower.model_dump()) if body.borrower else None
        result = await ops.open_case(await backend.client(), backend.repo(), inp, contact, settings().task_queue,
                                     require_borrower=True)
        return JSONResponse(result.model_dump(mode="json"), status_code=201 if result.started else 200)

    @v1.get("/cases", tags=["cases"], summary="List cases by their search attributes", response_model=CaseList,
            responses={**E422})
    async def list_cases(
        stage: Annotated[str | None, Query(pattern=r"^[a-z][a-z0-9_]{0,39}$", description="e.g. litigation")] = None,
        status: Annotated[Literal["active", "paused", "closed"] | None, Query()] = None,
        on_hold: Annotated[bool | None, Query()] = None,
        min_amount: Annotated[str | None, Query(pattern=r"^[0-9]{1,15}(\.[0-9]{1,6})?$",
                                                description="outstanding at least this (major units)")] = None,
        segment: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
        policy: Annotated[str | None, Query(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = None,
        query: Annotated[str | None, Query(max_length=2000, description="raw Temporal visibility query, ANDed")] = None,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    ) -> CaseList:
        q = ops.visibility_query(stage=stage, status=status, on_hold=on_hold, min_amount=min_amount,
                                 segment=segment, policy=policy, query=query)
        items = await ops.list_cases(await backend.client(), q, limit)
        return CaseList(query=q, count=len(items), items=items)

    @v1.get("/loans/{loan_id}", tags=["cases"], summary="The loan's case: stage, status, balances, next action",
            response_model=CaseStatus, responses={**E404, **E422})
    async def status(loan_id: LoanId) -> CaseStatus:
        return await within_timeout(ops.case_status(await backend.client(), loan_id))

    @v1.post("/loans/{loan_id}/payments", tags=["inputs"], response_model=ops.PaymentOutcome,
             summary="A payment notification (idempotent by payment_id)",
             responses={200: {"description": "applied to the open case (or a duplicate of an applied one)"},
                        202: {"model": ops.PaymentOutcome,
                              "description": "no open case: kept in the ledger as unapplied"},
                        **E404, **E422})
    async def payment(loan_id: LoanId, body: PaymentBody) -> JSONResponse:
        outcome = await within_timeout(ops.record_payment(
            await backend.client(), backend.repo(), loan_id, payment_id=body.payment_id, amount=body.amount,
            currency=body.currency, paid_at=body.paid_at))
        return JSONResponse(outcome.model_dump(mode="json"), status_code=200 if outcome.status == "applied" else 202)

    @v1.post("/loans/{loan_id}/payments/apply-unapplied", tags=["inputs"], response_model=list[ops.PaymentOutcome],
             summary="Apply the loan's unapplied payments to its open case (never done automatically: the case's "
                     "opening balance may already count them)", responses={**E404, **E422})
    async def apply_unapplied(loan_id: LoanId, body: ApplyUnappliedBody) -> Any:
        return await within_timeout(ops.apply_unapplied(await backend.client(), backend.repo(), loan_id,
                                                        body.payment_ids or None))

    @v1.post("/loans/{loan_id}/payments/{payment_id}/reversal", tags=["inputs"], response_model=ops.ReversalOutcome,
             summary="Reverse a payment (returned transfer, failed debit): the balance comes back; a case closed as "
                     "paid by it reopens as a new run", responses={**E404, **E422})
    async def reversal(loan_id: LoanId, payment_id: Annotated[str, Path(pattern=ID_PATTERN)], body: ReversalBody) -> Any:
        return await within_timeout(ops.reverse_payment(await backend.client(), loan_id, payment_id=payment_id,
                                                        reason=body.reason, at=body.at))

    @v1.post("/loans/{loan_id}/closure", tags=["inputs"], response_model=UpdateResult,
             summary="Close a case by an operator's decision, with a reason (settled_by_agreement, uncollectable, "
                     "sold, error)", responses={**E404, **E422})
    async def close(loan_id: LoanId, body: CloseIn) -> Any:
        return await update(loan_id, "close", body)

    @v1.post("/loans/{loan_id}/write-off/confirmation", tags=["inputs"], response_model=UpdateResult,
             summary="Confirm a proposed write-off (核销): an accounting event, the case stays open",
             responses={**E404, **E422})
    async def confirm_write_off(loan_id: LoanId, body: WriteOffConfirmIn) -> Any:
        return await update(loan_id, "confirm-write-off", body)

    async def update(loan_id: str, command: str, arg: BaseModel):
        return await within_timeout(ops.send_update(await backend.client(), loan_id, command, arg))

    @v1.post("/loans/{loan_id}/promises", tags=["inputs"], response_model=UpdateResult,
             summary="A promise to pay: pauses the ladder until the date plus grace", responses={**E404, **E422})
    async def promise(loan_id: LoanId, body: PromiseIn) -> Any:
        return await update(loan_id, "promise", body)

    @v1.post("/loans/{loan_id}/plans", tags=["inputs"], response_model=PlanResult,
             summary="Agree a repayment plan (deferral, instalments, interest waiver)", responses={**E404, **E422})
    async def plan(loan_id: LoanId, body: PlanIn) -> Any:
        return await update(loan_id, "plan", body)

    @v1.post("/loans/{loan_id}/holds", tags=["inputs"], response_model=UpdateResult,
             summary="Place a hold (dispute, cease_contact, hardship, complaint, bankruptcy, deceased)",
             responses={**E404, **E422})
    async def hold(loan_id: LoanId, body: HoldIn) -> Any:
        return await within_timeout(ops.place_hold(await backend.client(), backend.repo(), loan_id, body))

    @v1.post("/loans/{loan_id}/holds/{kind}/release", tags=["inputs"], response_model=UpdateResult,
             summary="Release a hold (a complaint needs a reviewer)", responses={**E404, **E422})
    async def release(loan_id: LoanId, kind: HoldKind, body: ReleaseBody) -> Any:
        return await update(loan_id, "release", ops.build(ReleaseIn, kind=kind, **body.model_dump()))

    @v1.post("/loans/{loan_id}/outcomes", tags=["inputs"], response_model=UpdateResult,
             summary="A call or visit outcome, or a court event", responses={**E404, **E422})
    async def outcome(loan_id: LoanId, body: OutcomeIn) -> Any:
        return await update(loan_id, "outcome", body)

    app.include_router(v1)
    app.state.backend = backend
    return app
