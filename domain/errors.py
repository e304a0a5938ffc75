"""The one error type for bad input: it names the field and the reason."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

MAX_ECHO = 80  # characters of a rejected value shown back in a reason; a 1 MB input is not echoed whole


def shown(value: object, limit: int = MAX_ECHO) -> str:
    """`repr(value)`, cut to `limit` characters with the count of the rest: what a reason may echo of an input."""
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}... ({len(text) - limit} more characters)"


class InvalidInput(ValueError):
    """Raised when an input is rejected; nothing has been changed."""

    def __init__(self, field: str, reason: str) -> None:
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def field_and_reason(errors: Sequence[Mapping[str, Any]], skip: tuple[str, ...] = ()) -> tuple[str, str]:
    """The first pydantic error as (field, reason), in words an operator reads."""
    err = errors[0]
    loc = [str(p) for p in err.get("loc", ()) if str(p) not in skip]
    name = ".".join(loc) or "input"
    kind = err.get("type", "")
    msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
    if kind == "string_type" and loc and loc[-1] == "amount":
        msg = "must be a decimal string such as '1234.56' (not a JSON number: money is never a float)"
    elif kind == "string_pattern_mismatch" and loc and loc[-1].endswith("_id"):
        msg = f"{err.get('input')!r} is not an id (1-64 letters, digits or _.:- starting with a letter or digit)"
    elif kind == "missing":
        msg = "is required"
    elif kind == "extra_forbidden":
        msg = "is not a known field"
    elif not loc and ": " in msg:  # a model-level check names its field: "principal: the loan owes nothing"
        name, msg = msg.split(": ", 1)
    return name, msg


# How a closed case refuses every input (operators keep a payment refused so as unapplied).
CLOSED_FIELD, CLOSED_REASON = "case", "is closed"
