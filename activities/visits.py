"""When a timed send may go out, and when a home visit may take place: the contact gate's own rules, asked again.

Pure (no I/O): each answer comes from `domain.compliance.decide`, the gate's public entry point, asked with no
holds and no contact history, so that only the rules of time apply (the window on the borrower's clock, rest
days and holidays of the official calendar, a missing calendar year). Whatever the gate learns about days and
hours, these answers learn with it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta

from domain import compliance
from domain.dates import zone
from domain.policy import CONTACT_CHANNELS, ContactRules

VISIT_HORIZON_DAYS = 14  # a visit request offers the allowed dates and hours of today and the next 14 days
_STEP = timedelta(minutes=15)
_MINUTE = timedelta(minutes=1)
_DAY = timedelta(days=1)


@dataclass(frozen=True)
class TimeRefusal:
    """The gate's refusal on time grounds, with the time to ask again (always known)."""

    rule: str
    reason: str
    retry_at: datetime


def time_refusal(channel: str, now: datetime, tz: str, rules: ContactRules) -> TimeRefusal | None:
    """The gate's refusal of a contact through `channel` at `now` on time grounds alone; None if the time is allowed.

    A refusal always carries `retry_at` (the next opening the gate names, or a day later when it names none)."""
    if channel not in CONTACT_CHANNELS:
        return None
    d = compliance.decide(action=channel, channel=channel, loan_id="", now=now, tz=tz, rules=rules, holds=[], history=[])
    if d.allowed:
        return None
    if d.retry_at is None or d.retry_at <= now:
        return TimeRefusal(d.rule, d.reason, now + _DAY)
    return TimeRefusal(d.rule, d.reason, d.retry_at)


def visit_windows(now: datetime, tz: str, rules: ContactRules, days: int = VISIT_HORIZON_DAYS) -> list[tuple[datetime, datetime]]:
    """The spans [start, end) in which a visit may start, as the gate would allow it: from `now` to the end of the
    `days`-th local day after today."""
    local = now.astimezone(zone(tz))
    horizon = datetime.combine(local.date() + timedelta(days=days + 1), time(0), tzinfo=zone(tz))
    out: list[tuple[datetime, datetime]] = []
    t = now
    while t < horizon:
        refused = time_refusal("visit", t, tz, rules)
        if refused is not None:
            t = refused.retry_at
            continue
        u = t  # allowed; walk on in quarter hours, then in minutes, to the first refused minute
        while u + _STEP < horizon and time_refusal("visit", u + _STEP, tz, rules) is None:
            u += _STEP
        while u + _MINUTE < horizon and time_refusal("visit", u + _MINUTE, tz, rules) is None:
            u += _MINUTE
        end = min(u + _MINUTE, horizon)
        out.append((t, end))
        t = end
    return out


def inside(at: datetime, windows: list[tuple[datetime, datetime]]) -> bool:
    return at.tzinfo is not None and any(start <= at < end for start, end in windows)
