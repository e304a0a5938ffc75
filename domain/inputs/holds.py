"""Holds and their release: a dispute, a complaint, hardship, and the closing holds (bankruptcy, death); a hold stops
contact, a closing one closes the case.

Each input has `check_*` (pure, raises InvalidInput naming the field) and `apply_*` (checks again, then changes
the case); domain/inputs/__init__.py registers them by the input's model."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from domain import legal
from domain.errors import InvalidInput
from domain.models import (
    CLOSING_HOLDS,
    Hold,
    HoldIn,
    ReleaseIn,
    UpdateResult,
)

if TYPE_CHECKING:
    from domain.case import Case


def check_hold(case: Case, h: HoldIn, now: datetime) -> None:
    case.refuse_if_closed()
    if any(x.kind == h.kind for x in case.state.holds):
        raise InvalidInput("kind", f"the case is already on a {h.kind} hold")
    if h.kind == "hardship":
        today = case.clock.today(now)
        if h.until is None:
            raise InvalidInput("until", "a hardship hold needs its end date")
        if h.until <= today:
            raise InvalidInput("until", f"{h.until} is not after today ({today})")
        limit = case.policy.holds.max_hardship_days
        if (h.until - today).days > limit:
            raise InvalidInput("until", f"{h.until} is more than {limit} days ahead; the policy allows at most {limit}")
    elif h.until is not None:
        raise InvalidInput("until", f"only a hardship hold has an end date, not {h.kind}")
    if h.received_on is not None:
        if h.kind != "dispute":
            raise InvalidInput("received_on", f"only a dispute hold has a received date, not {h.kind}")
        today = case.clock.today(now)
        if h.received_on > today:
            raise InvalidInput("received_on", f"{h.received_on} is in the future (today is {today})")


def apply_hold(case: Case, h: HoldIn, now: datetime) -> UpdateResult:
    check_hold(case, h, now)
    place(case, h, now)
    return case.result(
        f"{h.kind} hold placed" + (f"; case closed as {case.state.outcome}" if case.state.closed else "; contact stopped")
    )


def place(case: Case, h: HoldIn, now: datetime) -> None:
    s = case.state
    if s.closed or any(x.kind == h.kind for x in s.holds):
        return
    until = case.clock.date_deadline(h.until, 0) if h.until else None
    s.holds.append(Hold(kind=h.kind, placed_at=now, until=until, reference=h.reference))
    case.event(now, "hold_placed", h.kind + (f" until {h.until}" if h.until else ""))
    if h.kind == "dispute" and s.bureau_reported:
        days = case.policy.legal.bureau_dispute_answer_days
        if case.regime.legal_clocks and case.clock.real_calendar:
            # 征信业管理条例 art. 25: 20 days from the day the dispute was received (that day not counted), to 24:00
            received = h.received_on or case.clock.today(now)
            s.dispute_answer_due = legal.dispute_answer_due(received, case.inp.timezone, case.policy.legal)
            last = received + timedelta(days=days)
            case.event(
                now,
                "bureau_report_disputed",
                f"credit report flagged as disputed (received {received}); answer "
                f"due by {last}, 24:00 {case.inp.timezone} ({legal.SRC_DISPUTE})",
            )
        else:
            s.dispute_answer_due = now + case.clock.days(days)
            case.event(
                now,
                "bureau_report_disputed",
                f"credit report flagged as disputed; answer due by {s.dispute_answer_due:%Y-%m-%d} (征信业管理条例 art. 25)",
            )
    if h.kind in CLOSING_HOLDS:
        case.close(CLOSING_HOLDS[h.kind], now, h.reference)


def check_release(case: Case, r: ReleaseIn, now: datetime) -> None:
    case.refuse_if_closed()
    if not any(x.kind == r.kind for x in case.state.holds):
        held = ", ".join(x.kind for x in case.state.holds) or "none"
        raise InvalidInput("kind", f"there is no {r.kind} hold on this case (holds: {held})")
    if r.kind == "complaint" and not r.reviewer:
        raise InvalidInput("reviewer", "a complaint hold is released only by a compliance reviewer; name them")


def apply_release(case: Case, r: ReleaseIn, now: datetime) -> UpdateResult:
    check_release(case, r, now)
    s = case.state
    s.holds = [x for x in s.holds if x.kind != r.kind]
    if r.kind == "dispute":
        s.dispute_answer_due = None
    case.event(
        now,
        "hold_released",
        r.kind + (f" by {r.reviewer}" if r.reviewer else "") + (f": {r.resolution}" if r.resolution else ""),
    )
    return case.result(f"{r.kind} hold released")
