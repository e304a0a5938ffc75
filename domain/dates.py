"""Days past due in the borrower's own time zone, and the clock a case runs on.

A DPD begins at local midnight: a loan due on 1 March in Asia/Shanghai is DPD 1 from
2 March 00:00 Shanghai time. A policy may compress days (the demo runs a day in a few
seconds); then DPD advances every `day_seconds` from the moment the case opened.
"""

from __future__ import annotations

import calendar
import functools
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from domain.errors import InvalidInput, shown

DAY = 86400


# Keys that name no place: the machine's own zone and tzdata's placeholder. A borrower's zone is a place.
NOT_A_PLACE = frozenset({"localtime", "Factory", "posixrules"})


@lru_cache(maxsize=1)
def _zone_keys() -> frozenset[str]:
    return frozenset(available_timezones()) - NOT_A_PLACE


@lru_cache(maxsize=512)
def zone(name: str, field: str = "timezone") -> ZoneInfo:
    """The IANA zone `name`, checked against the zone keys tzdata ships: `Asia` (a folder: IsADirectoryError from
    ZoneInfo) and `localtime` or `Factory` (not a place) are refused like any unknown name, naming the field."""
    if not isinstance(name, str) or name not in _zone_keys():
        raise InvalidInput(field, f"unknown IANA time zone {shown(name)} (e.g. Asia/Shanghai)")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError, TypeError, OSError):
        raise InvalidInput(field, f"unknown IANA time zone {shown(name)} (e.g. Asia/Shanghai)") from None


def utc_text(t: datetime, fmt: str = "%Y-%m-%d %H:%M") -> str:
    """A time for a label that says UTC: converted to UTC first (a case's times carry the borrower's offset)."""
    return t.astimezone(UTC).strftime(fmt)


def local_date(now: datetime, tz: str) -> date:
    return now.astimezone(zone(tz)).date()


@lru_cache(maxsize=8192)  # pure (an immutable answer from the zone's rules); a case asks for the same days again and again
def local_midnight(day: date, tz: str) -> datetime:
    """The UTC instant at which `day` begins in `tz`."""
    return datetime.combine(day, time(0), tzinfo=zone(tz)).astimezone(UTC)


def days_past_due(due: date, tz: str, now: datetime) -> int:
    """Calendar days since the due date in the borrower's zone (0 on the due date, negative before)."""
    return (local_date(now, tz) - due).days


@lru_cache(maxsize=8192)  # pure, as local_midnight
def dpd_start(due: date, tz: str, dpd: int) -> datetime:
    """The instant a given DPD begins."""
    return local_midnight(due + timedelta(days=dpd), tz)


def bucket(dpd: int) -> str:
    if dpd <= 0:
        return "current"
    if dpd <= 30:
        return "M1"
    if dpd <= 60:
        return "M2"
    if dpd <= 90:
        return "M3"
    return "M3+"


def end_of_day_plus(day: date, tz: str, grace_days: int) -> datetime:
    """The deadline for something due on `day` with `grace_days` of grace: local midnight after."""
    return local_midnight(day + timedelta(days=1 + grace_days), tz)


def add_months(day: date, months: int) -> date:
    """Same day of month `months` later, clamped to the month's end (31 Jan + 1 = 28/29 Feb)."""
    index = day.month - 1 + months
    year, month = day.year + index // 12, index % 12 + 1
    return date(year, month, min(day.day, calendar.monthrange(year, month)[1]))


@dataclass(frozen=True, slots=True)
class CaseClock:
    """Maps DPD and policy days to instants for one case.

    With day_seconds == 86400 the case runs on the real calendar of the borrower's zone;
    otherwise (demo) days are compressed from `opened_at`, where the case stood at `opened_dpd`.
    """

    due_date: date
    tz: str
    day_seconds: int
    opened_at: datetime
    opened_dpd: int

    @property
    def real_calendar(self) -> bool:
        return self.day_seconds == DAY

    def dpd(self, now: datetime) -> int:
        if self.real_calendar:
            return days_past_due(self.due_date, self.tz, now)
        return self.opened_dpd + int((now - self.opened_at).total_seconds() // self.day_seconds)

    def dpd_instant(self, dpd: int) -> datetime:
        if self.real_calendar:
            return dpd_start(self.due_date, self.tz, dpd)
        return self.opened_at + timedelta(seconds=(dpd - self.opened_dpd) * self.day_seconds)

    def days(self, n: float) -> timedelta:
        return timedelta(seconds=n * self.day_seconds)

    def date_deadline(self, day: date, grace_days: int) -> datetime:
        """Deadline for a calendar date given by a person (promise, instalment) plus policy grace.

        On the real calendar the grace is counted in the borrower's calendar days, so the
        deadline is a local midnight even when a DST change falls within the grace.
        """
        if self.real_calendar:
            return end_of_day_plus(day, self.tz, grace_days)
        return local_midnight(day + timedelta(days=1), self.tz) + self.days(grace_days)

    def today(self, now: datetime) -> date:
        return local_date(now, self.tz)


# A time stamped by a sender may run this far ahead of the workflow's clock before it counts as in the future.
CLOCK_SKEW = timedelta(minutes=5)


@functools.lru_cache(maxsize=4096)  # pure: equal instants in any zone print the same; cases print them again and again
def utc(t: datetime) -> str:
    """An instant for event text: always UTC, marked Z (a +08:00 time printed with Z was eight hours off)."""
    return f"{t.astimezone(UTC):%Y-%m-%d %H:%M}Z"
