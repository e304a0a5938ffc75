"""What every provider of the gateway shares: the field types of the request bodies, the channel record, and the
errors (every error body is {"error": {"field": ..., "reason": ...}})."""

from __future__ import annotations

import datetime as dt
import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

DEFAULT_API_KEY = "sandbox-key"
INSTANCE_HEADER = "X-Gateway-Instance"  # /health answers with the instance id, so a start knows it reached its own

# --------------------------------------------------------------------------- field types


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


# --------------------------------------------------------------------------- channels


def _no_fields(body: Any, now: dt.datetime, gateway: Any) -> dict:
    return {}


@dataclass(frozen=True)
class Channel:
    name: str  # the "channel" value in responses and the outbox
    path: str  # POST path
    model: type[Body]
    prefix: str  # gateway id prefix
    # what the provider adds to its answer (a case number, a visit's time): (the validated body, the time of
    # acceptance, the Gateway, whose state a call or a visit reads) -> fields
    fields: Callable[[Any, dt.datetime, Any], dict] = _no_fields


def short_id() -> str:
    return uuid.uuid4().hex[:12].upper()


def utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def dumps(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, separators=(",", ":"))


# --------------------------------------------------------------------------- errors


class ApiError(Exception):
    def __init__(self, status: int, field: str | None, reason: str, headers: dict[str, str] | None = None):
        super().__init__(reason)
        self.status, self.field, self.reason, self.headers = status, field, reason, headers or {}


def error_body(field: str | None, reason: str) -> dict:
    return {"error": {"field": field, "reason": reason}}


def first_error(errors: list[dict], skip: tuple[str, ...] = ()) -> tuple[str, str]:
    err = errors[0]
    loc = [str(p) for p in err.get("loc", ()) if str(p) not in skip]
    msg = err.get("msg", "invalid")
    if err.get("type") == "value_error":
        msg = msg.removeprefix("Value error, ")
    return (".".join(loc) or "body"), msg


def parse(model: type[BaseModel], raw: bytes) -> BaseModel:
    try:
        data = json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError(422, "body", f"not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ApiError(422, "body", "must be a JSON object")
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        f, reason = first_error(exc.errors())
        raise ApiError(422, f, reason) from None
