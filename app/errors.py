"""Errors every use case raises, and the checks that turn bad input into them.

- `BadInput(field, reason)`: the input was wrong; nothing was changed. CLI exit 2, HTTP 422.
- `NotFound(field, reason)`: no such loan or case; nothing was changed. CLI exit 2, HTTP 404.
- `Busy`: the case is recovering; nothing was changed; send again. CLI exit 1, HTTP 503.
Anything else (Temporal or the database unreachable) propagates: CLI exit 1, HTTP 503/500.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterator
from typing import Any

from pydantic import BaseModel, ValidationError
from temporalio.exceptions import ApplicationError

from domain.errors import CLOSED_FIELD, CLOSED_REASON, InvalidInput, field_and_reason


class BadInput(InvalidInput):
    """Bad input: 'field: reason'; nothing was changed (CLI exit 2, HTTP 422)."""


class NotFound(BadInput):
    """No such loan or case; nothing was changed (CLI exit 2, HTTP 404)."""


class Busy(Exception):
    """The case is open but cannot take input just now (its workflow task is being retried, e.g. after a
    worker crash); nothing was changed; send the same input again (CLI exit 1, HTTP 503)."""


ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}")
KEYWORD_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")
POLICY_NAME_RE = re.compile(r"[a-z][a-z0-9_-]{0,63}")
DECIMAL_RE = re.compile(r"[0-9]{1,15}(\.[0-9]{1,6})?")
DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
# A due date outside these years is a data error (and would overflow the case's date maths).
EARLIEST_DUE, LATEST_DUE = dt.date(2000, 1, 1), dt.date(2099, 12, 31)


def check_id(value: str, field: str = "loan_id") -> str:
    if not isinstance(value, str) or not ID_RE.fullmatch(value):
        raise BadInput(field, f"{value!r} is not an id (1-64 letters, digits or _.:- starting with a letter or digit)")
    return value


def build(model: type[BaseModel], **fields: Any) -> Any:
    """Validate fields into a model; a validation error becomes BadInput naming the field."""
    try:
        return model.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        raise BadInput(*field_and_reason(exc.errors())) from None


def check_date(text: str, field: str) -> dt.date:
    if not DATE_RE.fullmatch(text):
        raise BadInput(field, f"{text!r} is not a date (YYYY-MM-DD)")
    try:
        value = dt.date.fromisoformat(text)
    except ValueError:
        raise BadInput(field, f"{text!r} is not a date (YYYY-MM-DD)") from None
    return value


def _causes(exc: BaseException) -> Iterator[BaseException]:
    cause = exc.__cause__ or getattr(exc, "cause", None)
    seen = 0
    while cause is not None and seen < 20:
        yield cause
        cause = cause.__cause__ or getattr(cause, "cause", None)
        seen += 1


def rejection(exc: BaseException) -> BadInput | None:
    """The workflow validator's (or handler's) refusal as BadInput(field, reason), if it was one."""
    for cause in _causes(exc):
        if isinstance(cause, ApplicationError):
            details = cause.details[0] if cause.details else None
            if isinstance(details, dict) and details.get("field") and details.get("reason"):
                return BadInput(str(details["field"]), str(details["reason"]))
            msg = cause.message or str(cause)
            head, sep, tail = msg.partition(": ")
            if sep and head.replace(".", "_").replace("[", "_").replace("]", "").isidentifier():
                return BadInput(head, tail)
            return BadInput("input", msg)
    return None


def closed_refusal(exc: BadInput) -> bool:
    """The case's refusal of any input because it has closed (domain/case.py Case._open)."""
    return exc.field == CLOSED_FIELD and exc.reason.startswith(CLOSED_REASON)


def no_open_case(loan_id: str) -> NotFound:
    return NotFound("loan_id", f"no open case for loan {loan_id} (closed or never started); nothing was changed")
