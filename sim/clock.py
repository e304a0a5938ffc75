"""The simulated clock both engines (sim.run's Temporal run, sim.direct) and the sweep (sim.sweep) share: the start
date, the daily checkpoint at which the borrowers act, and the calendar years the period needs."""

from __future__ import annotations

import sys
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime

from domain.calendar import years_available
from domain.dates import zone

CHECKPOINT_TZ = "Asia/Shanghai"
CHECKPOINT_AT = dtime(11, 0)  # 09:00 in Urumqi, 11:00 in Hong Kong: inside every contact window


def default_start(now: datetime) -> date:
    """1 January of next year: a fixed calendar (holidays, weekends) for a whole year of runs."""
    return date(now.year + 1, 1, 1)


def direct_default_start(now: datetime) -> date:
    """The direct engine's clock need not be in the future: 1 January of next year when its official calendar is
    on file, else 1 January of the latest year that has one (a year without is refused every contact)."""
    nxt = default_start(now)
    years = years_available()
    return nxt if nxt.year in years or not years else date(max(years), 1, 1)


def calendar_gaps(start: date, days: int) -> list[int]:
    """Years of the simulated period with no official holiday calendar: there the gate refuses every contact
    (it fails closed, rule calendar_missing), so the simulation says so up front."""
    have = set(years_available())
    return [y for y in range(start.year, (start + timedelta(days=days)).year + 1) if y not in have]


def warn_calendar(start: date, days: int) -> list[int]:
    gaps = calendar_gaps(start, days)
    if gaps:
        print(
            f"warning: no official holiday calendar for {', '.join(map(str, gaps))} "
            f"(policies/calendars/cn-YYYY.toml): the contact gate refuses every contact then (calendar_missing)",
            file=sys.stderr,
        )
    return gaps


def temporal_refusal(start: date, days: int, now: datetime) -> str | None:
    """Why the real workflows cannot run this period (None: they can). Their clock is the time-skipping test
    server's, which starts at the machine's time and only moves forward, so the period must begin after today; and
    a year of it with no official calendar would have every contact refused (calendar_missing): a run that
    measures nothing, and slowly (each refused send is a gate question and a timer). Both are said before any
    server starts."""
    if checkpoint_anchor(start) <= now:
        return (
            f"{start} is not in the future: the real workflows' clock starts at today's time "
            f"({now:%Y-%m-%d}) and can only move forward (the direct engine runs any year on file)"
        )
    gaps = calendar_gaps(start, days)
    if gaps:
        have = ", ".join(map(str, years_available())) or "none"
        return (
            f"no official holiday calendar for {', '.join(map(str, gaps))} (policies/calendars/cn-YYYY.toml; "
            f"on file: {have}): the contact gate would refuse every contact of the run. The real workflows can only "
            f"run after today ({now:%Y-%m-%d}); add the year's calendar (`starter.py calendars add`), or run "
            f"`--engine direct`, which runs the latest year on file"
        )
    return None


def checkpoint_anchor(start: date) -> datetime:
    """Day 0's checkpoint: 11:00 Beijing time on the start date, in UTC."""
    return datetime.combine(start, CHECKPOINT_AT, tzinfo=zone(CHECKPOINT_TZ)).astimezone(UTC)
