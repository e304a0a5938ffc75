"""The field-visit provider: a visit booked inside one of the windows it is sent (the `visit_outside` fault books
it outside them)."""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from sandbox.gateway.common import Body, Channel, Text, short_id


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


def book_visit(body: VisitRequest, now: dt.datetime, gateway: Any) -> dt.datetime:
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


def _booking(body: VisitRequest, now: dt.datetime, gateway: Any) -> dict:
    return {"visit_id": f"VIS-{short_id()}", "scheduled_for": book_visit(body, now, gateway).isoformat()}


CHANNEL = Channel("visit", "/v1/visits", VisitRequest, "vis", _booking)
