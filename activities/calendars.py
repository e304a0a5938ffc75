"""The calendar years a case records (a local activity's answer: domain.case.Case.record_calendars).

What the worker holds now: the approved database years (refreshed every minute, app/calendars.py) over the files.
A year with no calendar in force, or whose file does not load, is left out: the case asks again later."""

from __future__ import annotations

import structlog

from domain import calendar
from domain.errors import InvalidInput
from domain.models import RecordedCalendar

log = structlog.get_logger("calendar")


def in_force_years(years: list[int]) -> list[RecordedCalendar]:
    out = []
    for year in years:
        try:
            c = calendar.year_calendar(year)
        except calendar.CalendarMissing:
            continue
        except InvalidInput as exc:  # a broken file is `starter.py check`'s to report; the case waits for a good one
            log.warning("calendar file does not load", year=year, detail=str(exc))
            continue
        out.append(RecordedCalendar(year=year, rest=sorted(c.rest), working=sorted(c.working), source=c.in_force))
    return out
