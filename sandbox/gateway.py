"""The sandbox channel gateway: FastAPI app, SQLite outbox, fault injection, and a test helper.

Contract (every error body is {"error": {"field": ..., "reason": ...}}):

- Auth: /v1/* and /admin/* and /outbox need `Authorization: Bearer <key>` (401 otherwise);
  /outbox.html also takes `?key=`; /health is open.
- POST /v1/<channel> needs `Idempotency-Key` (1..200 chars, 400 otherwise) and a JSON body that
  validates against the channel's model (422 naming the first bad field otherwise).
- The first request with a key is stored and answered 200 {"id", "channel", "idempotency_key",
  "accepted_at", "duplicate": false, ...channel fields}; the same key with the same channel and
  body returns the stored response with "duplicate": true; with anything else, 409.
- Faults (POST /admin/faults) apply to /v1 requests that passed auth and the key check, in this
  order: added latency, 429 burst (with Retry-After), 503 error rate (nothing stored), then the
  request is processed, then the lost-response rate (stored, or duplicate counted, then 502).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import hashlib
import hmac
import html
import json
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any, Literal
from urllib.parse import urlencode

import httpx
import structlog
from fastapi import FastAPI, Query, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError, model_validator
from starlette.exceptions import HTTPException as StarletteHTTPException

log = structlog.get_logger("sandbox.gateway")

DEFAULT_API_KEY = "sandbox-key"
DEFAULT_PORT = 8700
INSTANCE_HEADER = "X-Gateway-Instance"
MEMORY = ":memory:"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


# --------------------------------------------------------------------------- request models


def _matching(pattern: str, message: str) -> AfterValidator:
    rx = re.compile(pattern)

    def check(value: str) -> str:
        if not rx.fullmatch(value):
            raise ValueError(message)
        return value

    return AfterValidator(check)


def _not_blank(value: str) -> str:
    if not value.strip():
        raise ValueError("must not be blank")
    return value


LoanId = Annotated[
    str,
    _matching(
        r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}", "must be a loan id: 1-64 letters, digits or _.:- starting with a letter or digit"
    ),
]
Phone = Annotated[
    str,
    _matching(
        r"\+[1-9]\d{6,14}|1[3-9]\d{9}",
        "must be a phone number in E.164 form (+8613812345678) or an 11-digit mainland mobile number (13812345678)",
    ),
]
Email = Annotated[
    str,
    Field(max_length=254),
    _matching(
        r"[A-Za-z0-9.!#$%&'*+/=?^_`{|}~-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
        r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)+",
        "must be an email address such as name@example.com",
    ),
]
Amount = Annotated[str, _matching(r"(?:0|[1-9]\d{0,15})(?:\.\d{1,3})?", "must be a decimal string such as '1234.56'")]
Currency = Annotated[str, _matching(r"[A-Z]{3}", "must be an ISO 4217 currency code such as CNY")]
IsoDate = Annotated[
    str,
    _matching(r"\d{4}-\d{2}-\d{2}", "must be a date YYYY-MM-DD"),
    AfterValidator(lambda v: dt.date.fromisoformat(v).isoformat()),
]
Language = Literal["zh", "en"]


def Text(max_length: int) -> Any:  # noqa: N802 - a type alias factory
    return Annotated[str, Field(min_length=1, max_length=max_length), AfterValidator(_not_blank)]


class Body(BaseModel):
    model_config = ConfigDict(extra="forbid")
    loan_id: LoanId


class SmsRequest(Body):
    to: Phone
    text: Text(1000)
    language: Language


class EmailRequest(Body):
    to: Email
    subject: Text(300)
    body: Text(100_000)
    language: Language


class LetterRequest(Body):
    kind: Literal["reminder_notice", "overdue_letter", "lawyers_letter", "bureau_notice", "agency_notice"]
    recipient: Text(200)
    address: Text(500)
    content: Text(100_000)
    language: Language


class CallRequest(Body):
    to: Phone
    script: Text(10_000)
    language: Language


class VisitWindow(BaseModel):
    """A span in which the visit may start: [start, end), timezone-aware ISO 8601 times."""

    model_config = ConfigDict(extra="forbid")
    start: dt.datetime
    end: dt.datetime

    @model_validator(mode="after")
    def _aware_and_ordered(self) -> VisitWindow:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("start and end must carry their UTC offset")
        if self.end <= self.start:
            raise ValueError("end must be after start")
        return self


class VisitRequest(Body):
    address: Text(500)
    notes: Annotated[str, Field(max_length=5000)]
    windows: list[VisitWindow] = Field(
        default=[],
        max_length=400,
        description="the dates and hours the visit may take place; the visit is "
        "booked inside one of them (none given: two days from now)",
    )
    replaces: str | None = Field(default=None, max_length=64, description="a visit booked earlier, booked again")


class LawFirmRequest(Body):
    recipient: Text(200)
    address: Text(500)
    amount: Amount
    currency: Currency
    content: Text(100_000)


class CourtRequest(Body):
    kind: Literal["lawsuit", "payment_order", "enforcement"]
    defendant: Text(200)
    address: Text(500)
    amount: Amount
    currency: Currency


class CreditBureauRequest(Body):
    kind: Literal["notice", "report", "correction"]
    amount: Amount
    currency: Currency
    dpd: int = Field(ge=0, strict=True)


class AgencyRequest(Body):
    kind: Literal["place", "recall"]
    amount: Amount
    currency: Currency


CallOutcomeName = Literal["answered", "no_answer", "wrong_number", "promise", "dispute"]


class CallScript(BaseModel):
    model_config = ConfigDict(extra="forbid")
    outcome: CallOutcomeName
    promise_amount: Amount | None = None
    promise_date: IsoDate | None = None

    @model_validator(mode="after")
    def _promise_fields(self) -> CallScript:
        if self.outcome == "promise":
            if self.promise_amount is None or self.promise_date is None:
                raise ValueError("outcome 'promise' needs promise_amount and promise_date")
        elif self.promise_amount is not None or self.promise_date is not None:
            raise ValueError("promise_amount and promise_date go only with outcome 'promise'")
        return self

    def result(self) -> dict[str, str]:
        out = {"outcome": self.outcome}
        if self.outcome == "promise":
            out |= {"promise_amount": self.promise_amount, "promise_date": self.promise_date}
        return out


def play_call(script: list[CallScript] | None) -> dict:
    """The outcome of the next call to a loan: its script played in order, the last entry repeating (the list
    is consumed); answered when it has none. Pure: the simulator's direct engine answers calls with it too."""
    if not script:
        return {"outcome": "answered"}
    step = script.pop(0) if len(script) > 1 else script[0]
    return step.result()


class FaultSettings(BaseModel):
    model_config = ConfigDict(extra="forbid")
    error_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    lost_response_rate: float = Field(default=0.0, ge=0.0, le=1.0)
    latency_ms: int = Field(default=0, ge=0, le=60_000)
    burst_429: int = Field(default=0, ge=0)
    retry_after_s: int = Field(default=1, ge=0, le=3600)
    visit_outside: int = Field(default=0, ge=0, description="book the next N visits outside the windows they were sent")
    seed: int | None = None


# --------------------------------------------------------------------------- channels


@dataclass(frozen=True)
class Channel:
    name: str  # the "channel" value in responses and the outbox
    path: str  # POST path
    model: type[Body]
    prefix: str  # gateway id prefix


CHANNELS: dict[str, Channel] = {
    c.name: c
    for c in [
        Channel("sms", "/v1/sms", SmsRequest, "sms"),
        Channel("email", "/v1/email", EmailRequest, "eml"),
        Channel("letter", "/v1/letters", LetterRequest, "ltr"),
        Channel("call", "/v1/calls", CallRequest, "cal"),
        Channel("visit", "/v1/visits", VisitRequest, "vis"),
        Channel("law_firm", "/v1/law-firm", LawFirmRequest, "law"),
        Channel("court", "/v1/court", CourtRequest, "crt"),
        Channel("credit_bureau", "/v1/credit-bureau", CreditBureauRequest, "cbr"),
        Channel("agency", "/v1/agency", AgencyRequest, "agy"),
    ]
}

_COURT_CODES = {"lawsuit": "民初", "payment_order": "民督", "enforcement": "执"}


def _short_id() -> str:
    return uuid.uuid4().hex[:12].upper()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    def __init__(self, status: int, field: str | None, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.field, self.reason, self.headers = status, field, reason, headers or {}


def _error_body(field: str | None, reason: str) -> dict:
    return {"error": {"field": field, "reason": reason}}


def _first_error(errors: list[dict], skip: tuple[str, ...] = ()) -> tuple[str, str]:
    err = errors[0]
    loc = [str(p) for p in err.get("loc", ()) if str(p) not in skip]
    msg = err.get("msg", "invalid")
    if err.get("type") == "value_error":
        msg = msg.removeprefix("Value error, ")
    return (".".join(loc) or "body"), msg


def _parse(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(422, "body", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "body", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        f, reason = _first_error(exc.errors())
        raise ApiError(422, f, reason) from None


# --------------------------------------------------------------------------- storage

_SCHEMA = """
CREATE TABLE IF NOT EXISTS deliveries (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    id              TEXT NOT NULL UNIQUE,
    channel         TEXT NOT NULL,
    loan_id         TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    fingerprint     TEXT NOT NULL,
    body            TEXT NOT NULL,
    response        TEXT NOT NULL,
    accepted_at     TEXT NOT NULL,
    presented       INTEGER NOT NULL DEFAULT 1
);
CREATE INDEX IF NOT EXISTS deliveries_loan ON deliveries (loan_id, seq);
CREATE INDEX IF NOT EXISTS deliveries_channel ON deliveries (channel, seq);
"""


class Store:
    """The outbox: one row per accepted idempotency key. SQLite, one connection, one lock."""

    def __init__(self, path: str | None):
        self.path = path or MEMORY
        if self.path != MEMORY:
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.row_factory = sqlite3.Row
        if self.path != MEMORY:
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")
            self._db.execute("PRAGMA busy_timeout=5000")
        self._db.executescript(_SCHEMA)

    def record(
        self, channel: str, loan_id: str, key: str, fingerprint: str, body: dict, make_response: Callable[[], dict]
    ) -> tuple[str, dict | None]:
        """("accepted", response) | ("duplicate", stored response) | ("conflict", None)."""
        with self._lock:
            row = self._db.execute("SELECT fingerprint, response FROM deliveries WHERE idempotency_key = ?", (key,)).fetchone()
            if row is not None:
                if row["fingerprint"] != fingerprint:
                    return "conflict", None
                self._db.execute("UPDATE deliveries SET presented = presented + 1 WHERE idempotency_key = ?", (key,))
                return "duplicate", json.loads(row["response"])
            response = make_response()
            self._db.execute(
                "INSERT INTO deliveries (id, channel, loan_id, idempotency_key, fingerprint, body, response,"
                " accepted_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    response["id"],
                    channel,
                    loan_id,
                    key,
                    fingerprint,
                    json.dumps(body, ensure_ascii=False),
                    json.dumps(response, ensure_ascii=False),
                    response["accepted_at"],
                ),
            )
            return "accepted", response

    def items(
        self,
        *,
        loan_id: str | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
        limit: int = 1000,
        newest_first: bool = False,
        before: int | None = None,
    ) -> list[dict]:
        """Deliveries in acceptance order; `before` (a seq) pages back from there, newest first."""
        where, args = [], []
        if before is not None:
            where.append("seq < ?")
            args.append(before)
        for column, value in (("loan_id", loan_id), ("channel", channel), ("idempotency_key", idempotency_key)):
            if value:
                where.append(f"{column} = ?")
                args.append(value)
        sql = "SELECT * FROM deliveries"
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += f" ORDER BY seq {'DESC' if newest_first else 'ASC'} LIMIT ?"
        with self._lock:
            rows = self._db.execute(sql, (*args, limit)).fetchall()
        return [
            {
                "id": r["id"],
                "seq": r["seq"],
                "channel": r["channel"],
                "loan_id": r["loan_id"],
                "idempotency_key": r["idempotency_key"],
                "accepted_at": r["accepted_at"],
                "body": json.loads(r["body"]),
                "response": json.loads(r["response"]),
                "presented": r["presented"],
            }
            for r in rows
        ]

    def clear(self) -> None:
        with self._lock:
            self._db.execute("DELETE FROM deliveries")

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- gateway state


@dataclass
class Stats:
    requests: int = 0
    accepted: int = 0
    duplicates: int = 0
    rejected: int = 0
    faults: dict[str, int] = field(default_factory=lambda: {"503": 0, "502": 0, "429": 0})

    def as_dict(self) -> dict:
        return {
            "requests": self.requests,
            "accepted": self.accepted,
            "duplicates": self.duplicates,
            "rejected": self.rejected,
            "faults": dict(self.faults),
        }


class Gateway:
    def __init__(self, api_key: str, db_path: str | None):
        self.api_key = api_key
        self.store = Store(db_path)
        self.stats = Stats()
        self.faults = FaultSettings()
        self.burst_left = 0
        self.visits_outside_left = 0
        self.rng = random.Random()
        self.call_scripts: dict[str, list[CallScript]] = {}

    def set_faults(self, settings: FaultSettings) -> None:
        self.faults = settings
        self.burst_left = settings.burst_429
        self.visits_outside_left = settings.visit_outside
        self.rng = random.Random(settings.seed)

    def faults_view(self) -> dict:
        return self.faults.model_dump() | {"burst_429": self.burst_left, "visit_outside": self.visits_outside_left}

    def roll(self, rate: float) -> bool:
        return rate > 0 and self.rng.random() < rate

    def next_call_result(self, loan_id: str) -> dict:
        return play_call(self.call_scripts.get(loan_id))

    def reset(self) -> None:
        self.store.clear()
        self.stats = Stats()
        self.set_faults(FaultSettings())
        self.call_scripts.clear()

    def check_key(self, request: Request, *, allow_query: bool = False) -> None:
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() == "bearer" and token.strip():
            presented = token.strip()
        elif allow_query and request.query_params.get("key"):
            presented = request.query_params["key"]
        elif header:
            raise ApiError(401, "authorization", "expected 'Authorization: Bearer <api key>'")
        else:
            raise ApiError(
                401,
                "authorization",
                "missing API key: send 'Authorization: Bearer <api key>'" + (" or ?key=" if allow_query else ""),
            )
        if not hmac.compare_digest(presented.encode(), self.api_key.encode()):
            raise ApiError(401, "authorization", "wrong API key")


def _channel_fields(channel: Channel, body: BaseModel, now: dt.datetime, gateway: Gateway) -> dict:
    if channel.name == "call":
        return gateway.next_call_result(body.loan_id)
    if channel.name == "visit":
        return {"visit_id": f"VIS-{_short_id()}", "scheduled_for": _book_visit(body, now, gateway).isoformat()}
    if channel.name == "law_firm":
        return {"matter_id": f"LF-{now:%Y}-{_short_id()}"}
    if channel.name == "court":
        return {"case_number": f"({now:%Y})沪0115{_COURT_CODES[body.kind]}{uuid.uuid4().int % 100000:05d}号"}
    if channel.name == "credit_bureau":
        return {"reference": f"CB-{now:%Y%m%d}-{_short_id()}"}
    if channel.name == "agency":
        return {"placement_id": f"AG-{_short_id()}"}
    return {}


def _book_visit(body: VisitRequest, now: dt.datetime, gateway: Gateway) -> dt.datetime:
    """The first window still open, an hour in (or half way, if shorter); with the `visit_outside` fault, an hour
    after that window's end instead. No windows: two days from now, as a provider that is told nothing would."""
    if not body.windows:
        return now + dt.timedelta(days=2)
    window = next((w for w in body.windows if w.end > now), body.windows[-1])
    start = max(window.start, now) if window.end > now else window.start
    if gateway.visits_outside_left > 0:
        gateway.visits_outside_left -= 1
        return window.end + dt.timedelta(hours=1)
    return start + min(dt.timedelta(hours=1), (window.end - start) / 2)


# --------------------------------------------------------------------------- the app


def create_app(api_key: str | None = None, db_path: str | None = None, *, instance: str | None = None) -> FastAPI:
    """The gateway app. api_key defaults to $GATEWAY_API_KEY or "sandbox-key"; db_path to
    $GATEWAY_DB or an in-process (":memory:") store."""
    from infra.config import GatewaySettings, load

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

    @app.exception_handler(ApiError)
    async def _api_error(_request: Request, exc: ApiError) -> JSONResponse:
        return JSONResponse(_error_body(exc.field, exc.reason), status_code=exc.status, headers=exc.headers)

    @app.exception_handler(RequestValidationError)
    async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONResponse:
        f, reason = _first_error(list(exc.errors()), skip=("query", "body", "path", "header"))
        return JSONResponse(_error_body(f, reason), status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_request: Request, exc: StarletteHTTPException) -> JSONResponse:
        return JSONResponse(
            _error_body(None, str(exc.detail)), status_code=exc.status_code, headers=getattr(exc, "headers", None)
        )

    @app.middleware("http")
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

    @app.get("/health")
    async def health() -> Response:
        return JSONResponse({"status": "ok"}, headers={INSTANCE_HEADER: instance})

    def add_channel(channel: Channel) -> None:
        async def deliver(request: Request) -> JSONResponse:
            gw.stats.requests += 1
            try:
                return await _deliver(request, channel)
            except ApiError as exc:
                if exc.status in (400, 401, 409, 422):
                    gw.stats.rejected += 1
                raise

        deliver.__name__ = f"deliver_{channel.name}"
        app.add_api_route(
            channel.path,
            deliver,
            methods=["POST"],
            name=f"deliver_{channel.name}",
            summary=f"Deliver through the {channel.name} channel",
            openapi_extra={
                "requestBody": {"required": True, "content": {"application/json": {"schema": channel.model.model_json_schema()}}}
            },
        )

    async def _deliver(request: Request, channel: Channel) -> JSONResponse:
        gw.check_key(request)
        key = request.headers.get("idempotency-key")
        if key is None or not key.strip():
            raise ApiError(400, "Idempotency-Key", "header Idempotency-Key is required (1-200 characters)")
        if len(key) > 200:
            raise ApiError(400, "Idempotency-Key", f"header Idempotency-Key is {len(key)} characters; at most 200")

        faults = gw.faults
        if faults.latency_ms:
            await asyncio.sleep(faults.latency_ms / 1000)
        if gw.burst_left > 0:
            gw.burst_left -= 1
            gw.stats.faults["429"] += 1
            raise ApiError(429, None, "rate limited (injected fault)", headers={"Retry-After": str(faults.retry_after_s)})
        if gw.roll(faults.error_rate):
            gw.stats.faults["503"] += 1
            raise ApiError(503, None, "service unavailable (injected fault); nothing was delivered")

        body_model = _parse(channel.model, await request.body())
        body = body_model.model_dump(mode="json", exclude_unset=True)  # as sent: defaults not added
        fingerprint = hashlib.sha256(_dumps({"channel": channel.name, "body": body}).encode()).hexdigest()

        def make_response() -> dict:
            now = _now()
            return {
                "id": f"{channel.prefix}_{uuid.uuid4().hex[:20]}",
                "channel": channel.name,
                "idempotency_key": key,
                "accepted_at": now.isoformat(),
                "duplicate": False,
                "loan_id": body_model.loan_id,
                **_channel_fields(channel, body_model, now, gw),
            }

        status, response = gw.store.record(channel.name, body_model.loan_id, key, fingerprint, body, make_response)
        if status == "conflict":
            raise ApiError(409, "Idempotency-Key", "reused with a different request")
        if status == "duplicate":
            gw.stats.duplicates += 1
            response["duplicate"] = True
        else:
            gw.stats.accepted += 1
        if gw.roll(faults.lost_response_rate):
            gw.stats.faults["502"] += 1
            raise ApiError(502, None, "bad gateway (injected fault): the request was processed but the response was lost")
        return JSONResponse(response)

    for ch in CHANNELS.values():
        add_channel(ch)

    # ---------------------------------------------------------------- outbox

    def _check_channel(channel: str | None) -> None:
        if channel and channel not in CHANNELS:
            raise ApiError(422, "channel", f"unknown channel; one of {', '.join(CHANNELS)}")

    @app.get("/outbox")
    async def outbox(
        request: Request,
        loan_id: str | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
    ) -> JSONResponse:
        gw.check_key(request)
        _check_channel(channel)
        items = [
            {k: v for k, v in i.items() if k != "seq"}  # seq: the HTML page's paging cursor only
            for i in gw.store.items(loan_id=loan_id, channel=channel, idempotency_key=idempotency_key, limit=limit)
        ]
        return JSONResponse({"items": items, "count": len(items)})

    @app.get("/outbox.html", response_class=HTMLResponse)
    async def outbox_page(
        request: Request,
        loan_id: str | None = None,
        channel: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 200,
        before: Annotated[int | None, Query(ge=1, description="older than this seq (paging)")] = None,
    ) -> HTMLResponse:
        gw.check_key(request, allow_query=True)
        _check_channel(channel)
        items = gw.store.items(loan_id=loan_id, channel=channel, limit=limit + 1, newest_first=True, before=before)
        older = items[limit - 1]["seq"] if len(items) > limit else None  # one more row read: is there a next page
        return HTMLResponse(
            _render_page(
                items[:limit],
                loan_id=loan_id,
                channel=channel,
                key=request.query_params.get("key"),
                stats=gw.stats.as_dict(),
                limit=limit,
                before=before,
                older=older,
            )
        )

    # ---------------------------------------------------------------- admin

    @app.get("/admin/faults")
    async def get_faults(request: Request) -> dict:
        gw.check_key(request)
        return gw.faults_view()

    @app.post("/admin/faults")
    async def post_faults(request: Request) -> dict:
        gw.check_key(request)
        gw.set_faults(_parse(FaultSettings, await request.body()))
        log.info("faults set", **gw.faults_view())
        return gw.faults_view()

    @app.delete("/admin/faults")
    async def delete_faults(request: Request) -> dict:
        gw.check_key(request)
        gw.set_faults(FaultSettings())
        return gw.faults_view()

    @app.get("/admin/stats")
    async def stats(request: Request) -> dict:
        gw.check_key(request)
        return gw.stats.as_dict()

    def _scripts_view() -> dict:
        return {loan: [s.model_dump(exclude_none=True) for s in steps] for loan, steps in gw.call_scripts.items()}

    @app.post("/admin/call-outcomes")
    async def post_call_outcomes(request: Request) -> dict:
        """{"<loan_id>": {outcome...} | [{outcome...}, ...] (played in order, the last one repeats) | null}"""
        gw.check_key(request)
        raw = await request.body()
        try:
            data = json.loads(raw) if raw else None
        except ValueError as exc:
            raise ApiError(422, "body", f"not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise ApiError(422, "body", "must be a JSON object keyed by loan id")
        parsed: dict[str, list[CallScript] | None] = {}
        for loan_id, spec in data.items():
            if spec is None:
                parsed[loan_id] = None
                continue
            steps = spec if isinstance(spec, list) else [spec]
            if not steps:
                raise ApiError(422, loan_id, "an empty list; give at least one outcome or null to clear")
            out = []
            for i, step in enumerate(steps):
                try:
                    out.append(CallScript.model_validate(step))
                except ValidationError as exc:
                    f, reason = _first_error(exc.errors())
                    prefix = f"{loan_id}.{i}" if isinstance(spec, list) else loan_id
                    raise ApiError(422, prefix if f == "body" else f"{prefix}.{f}", reason) from None
            parsed[loan_id] = out
        for loan_id, steps in parsed.items():
            if steps is None:
                gw.call_scripts.pop(loan_id, None)
            else:
                gw.call_scripts[loan_id] = steps
        return _scripts_view()

    @app.get("/admin/call-outcomes")
    async def get_call_outcomes(request: Request) -> dict:
        gw.check_key(request)
        return _scripts_view()

    @app.delete("/admin/call-outcomes")
    async def delete_call_outcomes(request: Request) -> dict:
        gw.check_key(request)
        gw.call_scripts.clear()
        return {}

    @app.post("/admin/reset")
    async def reset(request: Request) -> dict:
        """Clears the outbox and the stats, and also the faults and the call scripts."""
        gw.check_key(request)
        gw.reset()
        log.info("gateway reset")
        return {"status": "reset"}

    return app


# --------------------------------------------------------------------------- HTML outbox page

_SUMMARY_FIELDS = (
    "kind",
    "to",
    "recipient",
    "defendant",
    "subject",
    "text",
    "outcome",
    "promise_amount",
    "promise_date",
    "scheduled_for",
    "amount",
    "currency",
    "dpd",
    "matter_id",
    "case_number",
    "reference",
    "placement_id",
    "visit_id",
)

_CSS = """
body{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;text-align:left}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}pre{white-space:pre-wrap;margin:0;font-size:.8rem;max-width:60rem}
.ch{font-weight:600}.dup{color:#a60}form{margin:.5rem 0 1rem}small{color:#666}
"""


def _render_page(
    items: list[dict],
    *,
    loan_id: str | None,
    channel: str | None,
    key: str | None,
    stats: dict,
    limit: int = 200,
    before: int | None = None,
    older: int | None = None,
) -> str:
    e = lambda v: html.escape("" if v is None else str(v), quote=True)  # noqa: E731

    def link(**params: str | None) -> str:
        q = {k: v for k, v in params.items() if v}
        if key:
            q["key"] = key
        return "/outbox.html" + ("?" + urlencode(q) if q else "")

    rows = []
    for it in items:
        merged = {**it["body"], **it["response"]}
        summary = "<br>".join(f"<b>{e(k)}</b>: {e(merged[k])}" for k in _SUMMARY_FIELDS if k in merged)
        rows.append(
            "<tr>"
            f"<td>{e(it['accepted_at'])}</td>"
            f'<td class=ch><a href="{e(link(channel=it["channel"], loan_id=loan_id))}">{e(it["channel"])}</a></td>'
            f'<td><a href="{e(link(loan_id=it["loan_id"], channel=channel))}">{e(it["loan_id"])}</a></td>'
            f"<td>{summary}</td>"
            f"<td><small>{e(it['id'])}<br>{e(it['idempotency_key'])}</small></td>"
            f"<td{' class=dup' if it['presented'] > 1 else ''}>{e(it['presented'])}</td>"
            "<td><details><summary>request / response</summary>"
            f"<pre>{e(json.dumps(it['body'], ensure_ascii=False, indent=2))}</pre>"
            f"<hr><pre>{e(json.dumps(it['response'], ensure_ascii=False, indent=2))}</pre></details></td>"
            "</tr>"
        )
    options = "".join(f'<option value="{e(c)}"{" selected" if c == channel else ""}>{e(c)}</option>' for c in CHANNELS)
    filters = " · ".join(f"{e(k)} = {e(v)}" for k, v in (("loan", loan_id), ("channel", channel)) if v)
    return (
        "<!doctype html><html lang=zh-CN><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>Sandbox gateway outbox</title><style>{_CSS}</style></head><body>"
        "<h1>Sandbox gateway outbox</h1>"
        f"<p><small>{len(items)} deliveries shown, newest first{' (an older page)' if before else ''}"
        f"{(' · ' + filters) if filters else ''} · "
        f"requests {e(stats['requests'])}, accepted {e(stats['accepted'])}, duplicates {e(stats['duplicates'])}, "
        f"rejected {e(stats['rejected'])}, faults {e(stats['faults'])}</small></p>"
        "<form method=get action=/outbox.html>"
        f'<label>loan <input name=loan_id value="{e(loan_id)}"></label> '
        f'<label>channel <select name=channel><option value="">all</option>{options}</select></label> '
        + (f'<input type=hidden name=key value="{e(key)}">' if key else "")
        + f'<button>filter</button> <a href="{e(link())}">clear</a></form>'
        "<table><thead><tr><th>accepted at (UTC)</th><th>channel</th><th>loan</th><th>summary</th>"
        "<th>gateway id / idempotency key</th><th>presented</th><th>detail</th></tr></thead><tbody>"
        + ("".join(rows) or "<tr><td colspan=7>no deliveries</td></tr>")
        + "</tbody></table>"
        + "<p class=pages>"
        + (f'<a href="{e(link(loan_id=loan_id, channel=channel))}">newest</a> ' if before else "")
        + (
            f'<a rel=next href="{e(link(loan_id=loan_id, channel=channel, before=str(older), limit=str(limit)))}">'
            f"older {limit} →</a>"
            if older
            else ""
        )
        + "</p></body></html>"
    )


# --------------------------------------------------------------------------- test helper


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


class GatewayStartError(RuntimeError):
    pass


class RunningGateway:
    """A gateway in a subprocess (`python -m sandbox`) on a loopback port.

    db_path=None puts the outbox in a temporary SQLite file (removed by close()), so stop()/start()
    keeps it; pass ":memory:" for a store that dies with the process. The port is chosen on the
    first start() and kept across restarts.
    """

    def __init__(
        self,
        api_key: str = DEFAULT_API_KEY,
        db_path: str | os.PathLike | None = None,
        port: int | None = None,
        host: str = "127.0.0.1",
        env: dict[str, str] | None = None,
        startup_timeout: float = 30.0,
    ):
        self.api_key = api_key
        self.host = host
        self.port = port
        self._fixed_port = port is not None
        self._env = dict(env or {})
        self.startup_timeout = startup_timeout
        self._tmpdir = tempfile.TemporaryDirectory(prefix="sandbox-gateway-")
        self.db_path = str(db_path) if db_path is not None else str(Path(self._tmpdir.name) / "outbox.sqlite3")
        self.log_path = Path(self._tmpdir.name) / "gateway.log"
        self.process: subprocess.Popen | None = None
        self._log_file = None

    # -- addresses
    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError("gateway not started")
        return f"http://{self.host}:{self.port}"

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"}

    @property
    def outbox_page(self) -> str:
        return f"{self.url}/outbox.html?{urlencode({'key': self.api_key})}"

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    # -- lifecycle
    def start(self) -> RunningGateway:
        if self.running:
            return self
        attempts = 1 if (self._fixed_port or self.port is not None) else 3
        for attempt in range(attempts):
            if self.port is None or (attempt and not self._fixed_port):
                self.port = free_port(self.host)
            try:
                self._spawn()
                return self
            except GatewayStartError:
                if attempt == attempts - 1:
                    raise
                self.port = None
        return self

    def _spawn(self) -> None:
        instance = uuid.uuid4().hex
        env = (
            os.environ.copy()
            | self._env
            | {
                "GATEWAY_API_KEY": self.api_key,
                "GATEWAY_DB": self.db_path,
                "GATEWAY_PORT": str(self.port),
                "GATEWAY_INSTANCE": instance,
                "PYTHONUNBUFFERED": "1",
                "PYTHONPATH": os.pathsep.join(p for p in (str(PROJECT_ROOT), os.environ.get("PYTHONPATH")) if p),
            }
        )
        self._log_file = open(self.log_path, "ab")  # noqa: SIM115 - closed in stop()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "sandbox",
                "--host",
                self.host,
                "--port",
                str(self.port),
                "--exit-with-parent",
                str(os.getpid()),
            ],
            cwd=str(PROJECT_ROOT),
            env=env,
            stdout=self._log_file,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + self.startup_timeout
        with httpx.Client(timeout=1.0) as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    self._cleanup_process()
                    raise GatewayStartError(f"gateway exited with {self.process.returncode}:\n{self.logs()[-3000:]}")
                try:
                    r = client.get(f"{self.url}/health")
                    if r.status_code == 200 and r.headers.get(INSTANCE_HEADER) == instance:
                        return
                except httpx.HTTPError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise GatewayStartError(f"gateway not healthy after {self.startup_timeout}s:\n{self.logs()[-3000:]}")

    def stop(self, timeout: float = 10.0) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout)
        self._cleanup_process()

    def kill(self) -> None:
        """Stop abruptly (SIGKILL), as a crash would."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)
        self._cleanup_process()

    def restart(self) -> RunningGateway:
        self.stop()
        return self.start()

    def _cleanup_process(self) -> None:
        if self._log_file is not None:
            self._log_file.close()
            self._log_file = None

    def close(self) -> None:
        self.stop()
        self._tmpdir.cleanup()

    def logs(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def __enter__(self) -> RunningGateway:
        try:
            return self.start()
        except BaseException:
            self.close()
            raise

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conveniences (sync httpx, authenticated)
    def client(self, **kwargs: Any) -> httpx.Client:
        kwargs.setdefault("timeout", 10.0)
        return httpx.Client(base_url=self.url, headers=self.headers | kwargs.pop("headers", {}), **kwargs)

    def _call(self, method: str, path: str, **kwargs: Any) -> Any:
        with self.client() as c:
            r = c.request(method, path, **kwargs)
            r.raise_for_status()
            return r.json()

    def set_faults(self, **settings: Any) -> dict:
        return self._call("POST", "/admin/faults", json=settings)

    def clear_faults(self) -> dict:
        return self._call("DELETE", "/admin/faults")

    def script_calls(self, outcomes: dict[str, Any]) -> dict:
        return self._call("POST", "/admin/call-outcomes", json=outcomes)

    def stats(self) -> dict:
        return self._call("GET", "/admin/stats")

    def reset(self) -> dict:
        return self._call("POST", "/admin/reset")

    def outbox(self, **filters: Any) -> list[dict]:
        return self._call("GET", "/outbox", params={k: v for k, v in filters.items() if v is not None})["items"]


@contextlib.contextmanager
def running_gateway(
    api_key: str = DEFAULT_API_KEY, db_path: str | os.PathLike | None = None, port: int | None = None, **kwargs: Any
) -> Iterator[RunningGateway]:
    """`with running_gateway(api_key="k") as gw:` → gw.url, gw.api_key, gw.headers, gw.stop()/gw.start()."""
    with RunningGateway(api_key=api_key, db_path=db_path, port=port, **kwargs) as gw:
        yield gw


def start_in_subprocess(
    port: int | None = None, api_key: str = DEFAULT_API_KEY, db_path: str | None = MEMORY
) -> tuple[str, subprocess.Popen]:
    """Start `python -m sandbox` on `port` (a free loopback port if None), wait for /health, and
    return (url, process). The caller stops it with process.terminate(); process.wait()."""
    gw = RunningGateway(api_key=api_key, db_path=db_path, port=port)
    gw.start()
    assert gw.process is not None
    return gw.url, gw.process
