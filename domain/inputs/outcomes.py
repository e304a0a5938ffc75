"""Outcomes of calls and visits, the court's events (filing, payment order, judgment, enforcement), and the legal team's
record of an obstacle that suspends the limitation period.

Each input has `check_*` (pure, raises InvalidInput naming the field) and `apply_*` (checks again, then changes
the case); domain/inputs/__init__.py registers them by the input's model."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from domain import legal
from domain.dates import local_date
from domain.errors import InvalidInput
from domain.inputs import holds, payments, promises
from domain.models import (
    CALL_OUTCOMES,
    COURT_EVENTS,
    SUSPENSION_CAUSES,
    VISIT_OUTCOMES,
    HoldIn,
    OutcomeIn,
    PaymentIn,
    PromiseIn,
    Suspension,
    SuspensionIn,
    UpdateResult,
)
from domain.money import parse_amount

if TYPE_CHECKING:
    from domain.case import Case


def check_outcome(case: Case, o: OutcomeIn, now: datetime) -> None:
    case.refuse_if_closed()
    s = case.state
    allowed = {"call": CALL_OUTCOMES, "visit": VISIT_OUTCOMES, "court": COURT_EVENTS}[o.kind]
    if o.outcome not in allowed:
        raise InvalidInput("outcome", f"{o.outcome!r} is not a {o.kind} outcome (one of: {', '.join(allowed)})")
    if o.kind == "visit" and not s.visit_scheduled:
        raise InvalidInput("kind", "no home visit has been scheduled for this case")
    if o.task_id is not None and not (s.awaiting and s.awaiting.task_id == o.task_id and s.awaiting.kind == o.kind):
        raise InvalidInput("task_id", f"task {o.task_id} is not this case's open {o.kind} task")
    _check_court_dates(case, o, now)
    if o.kind == "court":
        if not s.lawsuit_filed:
            raise InvalidInput("kind", "no lawsuit or payment order has been filed for this case")
        if o.outcome == "judgment" and s.judgment_at is not None and not _supplies_judgment_dates(case, o):
            raise InvalidInput(
                "outcome",
                f"a judgment was already recorded on {s.judgment_at:%Y-%m-%d}"
                + (" (it may be sent again only to supply effective_on and performance_ends)" if case.enforcement_wait() else ""),
            )
        if o.outcome in ("enforcement_result", "enforcement_closed") and not case.enforcing():
            raise InvalidInput("outcome", "enforcement has not been applied for on this case")
        if o.outcome == "enforcement_result":
            if o.amount is None:
                raise InvalidInput("amount", "an enforcement result carries the amount recovered")
            minor = parse_amount(o.amount, case.inp.currency, "amount")
            resent = case.regime.payment_keys_checked and o.reference
            if resent and payments.enforcement_key(case, o.reference, o.amount, now) in s.payments:
                return  # resent the same day: the same payment, applied once (apply_outcome answers so)
            if minor > s.balances.total:
                raise InvalidInput("amount", f"{o.amount} is more than the outstanding {case.amount(s.balances.total)}")
    if o.outcome == "promise":
        if o.amount is None or o.date is None:
            raise InvalidInput("amount" if o.amount is None else "date", "a promise outcome carries the promised amount and date")
        promises.check_promise(case, PromiseIn(amount=o.amount, date=o.date), now)


def _supplies_judgment_dates(case: Case, o: OutcomeIn) -> bool:
    s = case.state
    return (
        case.regime.legal_clocks
        and s.judgment_at is not None
        and s.performance_ends is None
        and o.effective_on is not None
        and o.performance_ends is not None
    )


def _check_court_dates(case: Case, o: OutcomeIn, now: datetime) -> None:
    """The dates the legal clocks count from: each on the outcome it belongs to, none in the future but the end of
    a performance period, and in order."""
    today = case.clock.today(now)
    for name in ("effective_on", "performance_ends"):
        if getattr(o, name) is not None and (o.kind, o.outcome) != ("court", "judgment"):
            raise InvalidInput(name, f"only a court judgment carries {name}, not a {o.kind} {o.outcome}")
    if o.served_on is not None and (o.kind != "court" or o.outcome not in ("payment_order_issued", "payment_order_served")):
        raise InvalidInput(
            "served_on",
            f"only a payment order (payment_order_issued or payment_order_served) carries served_on, not a {o.kind} {o.outcome}",
        )
    if (o.effective_on is None) != (o.performance_ends is None):
        missing = "effective_on" if o.effective_on is None else "performance_ends"
        raise InvalidInput(
            missing,
            "a judgment's dates come together: effective_on (the day it took effect) and "
            "performance_ends (the last day of its performance period)",
        )
    if o.effective_on is not None:
        if o.effective_on > today:
            raise InvalidInput("effective_on", f"{o.effective_on} is in the future (today is {today})")
        if o.performance_ends is not None and o.performance_ends < o.effective_on:  # set together (above)
            raise InvalidInput("performance_ends", f"{o.performance_ends} is before effective_on {o.effective_on}")
    if o.outcome == "payment_order_served" and o.served_on is None:
        raise InvalidInput("served_on", "payment_order_served carries the day the order was served (served_on)")
    if o.served_on is not None:
        if o.served_on > today:
            raise InvalidInput("served_on", f"{o.served_on} is in the future (today is {today})")
        s = case.state
        if case.regime.legal_clocks and s.payment_order_served_on is not None:
            raise InvalidInput("served_on", f"the payment order's service on {s.payment_order_served_on} is already recorded")
        issued = local_date(s.payment_order_at, case.inp.timezone) if s.payment_order_at else None
        if issued is not None and o.served_on < issued:
            raise InvalidInput("served_on", f"{o.served_on} is before the order was recorded as issued ({issued})")


def apply_outcome(case: Case, o: OutcomeIn, now: datetime) -> UpdateResult:
    check_outcome(case, o, now)
    s = case.state
    case.event(
        now,
        f"{o.kind}_outcome",
        o.outcome
        + (f" {o.reference}" if o.reference else "")
        + (f" effective {o.effective_on}, performance period to {o.performance_ends}" if o.effective_on else "")
        + (f" served {o.served_on}" if o.served_on else "")
        + (f" [task {o.task_id}]" if o.task_id else ""),
    )
    if s.awaiting and s.awaiting.kind == o.kind and (o.kind == "visit" or o.outcome in ("judgment", "enforcement_closed")):
        case.end_task("done", now)
        s.awaiting = None
    elif s.awaiting and s.awaiting.kind == "call" == o.kind and s.awaiting.task_id is not None:
        case.end_task("done", now)
        s.awaiting = None
    if o.outcome == "judgment":
        if s.judgment_at is None:
            s.judgment_at = now
        if case.regime.legal_clocks and o.effective_on is not None:
            s.judgment_effective_on, s.performance_ends = o.effective_on, o.performance_ends
    if o.outcome == "payment_order_issued" and not case.regime.legal_clocks:
        s.payment_order_at = now
    elif o.outcome in ("payment_order_issued", "payment_order_served") and s.payment_order_at is None:
        s.payment_order_at = now
    if o.served_on is not None and case.regime.legal_clocks:
        s.payment_order_served_on = o.served_on
    if o.outcome == "lawsuit_filed":
        case.restart_limitation("lawsuit filed", case.clock.today(now), now, demand=True)  # 民法典 art. 195(三)
    if o.outcome == "objection_filed":
        s.objection = True
    if o.outcome == "enforcement_result" and o.amount is not None:  # (check_outcome required the amount)
        if case.regime.payment_keys_checked and o.reference:
            pid = payments.enforcement_key(case, o.reference, o.amount, now)
            if pid in s.payments:
                return case.result(f"enforcement result {o.reference} was already recorded; nothing applied again")
        else:
            n = 1
            while payments.enforcement_payment_id(case, n) in s.payments:  # never collide with an id already in the ledger
                n += 1
            pid = payments.enforcement_payment_id(case, n)
        # recovered by the court's force, not paid by the debtor: no agreement to perform (执行程序解释 art. 28)
        payments.apply_payment(case, PaymentIn(payment_id=pid, amount=o.amount, currency=case.inp.currency), now, forced=True)
    if o.outcome == "promise" and o.amount is not None and o.date is not None:  # (check_outcome required both)
        promises.apply_promise(case, PromiseIn(amount=o.amount, date=o.date), now)
    elif o.outcome == "dispute":
        holds.place(case, HoldIn(kind="dispute", reference=f"{o.kind} outcome"), now)
    return case.result(f"{o.kind} outcome {o.outcome} recorded")


def check_suspension(case: Case, x: SuspensionIn, now: datetime) -> None:
    case.refuse_if_closed()
    if not case.regime.legal_clocks:
        raise InvalidInput("case", "this case counts its limitation period as before the legal clocks; not recordable")
    today = case.clock.today(now)
    if x.starts_on > today:
        raise InvalidInput("starts_on", f"{x.starts_on} is after today ({today}): record an obstacle once it has begun")
    if x.ends_on < x.starts_on:
        raise InvalidInput("ends_on", f"{x.ends_on} is before starts_on ({x.starts_on})")
    if not x.reference.strip():
        raise InvalidInput("reference", "is required: the document the obstacle rests on")


def apply_suspension(case: Case, x: SuspensionIn, now: datetime) -> UpdateResult:
    """民法典 art. 194: an obstacle in the period's last six months suspends it; the period then ends no earlier than
    six months after the obstacle ends. One that ended before the last six months began is recorded, with no
    effect. The same reference replaces its earlier record."""
    check_suspension(case, x, now)
    s, tz = case.state, case.inp.timezone
    before = legal.limitation(case.legal_facts(), case.policy.legal)
    s.limitation_suspensions = [o for o in s.limitation_suspensions if o.reference != x.reference]
    s.limitation_suspensions.append(
        Suspension(cause=x.cause, starts_on=x.starts_on, ends_on=x.ends_on, reference=x.reference, recorded_at=now)
    )
    after = legal.limitation(case.legal_facts(), case.policy.legal)
    what = f"{SUSPENSION_CAUSES[x.cause]} from {x.starts_on} to {x.ends_on} ({x.reference})"
    if after.earliest == before.earliest:
        plain = legal.period(case.limitation_start(), tz, years=case.policy.legal.limitation_years, cal=case.calendar_view())
        why = (
            "it ended before the period's last six months began"
            if not legal.in_last_six_months(plain, x.starts_on, x.ends_on)
            else "the period already ends later"
        )
        case.event(now, "limitation_suspension_no_effect", f"{what}: no effect, {why} ({legal.SRC_SUSPENSION})")
        return case.result(f"obstacle recorded with no effect on the limitation period: {why}; {after.describe(tz)}")
    if after.earliest < before.earliest:  # a corrected record that ends sooner, or no longer in the last six months
        case.event(now, "limitation_suspension_shortened", f"{what} ({legal.SRC_SUSPENSION}): now {after.describe(tz)}")
        return case.result(f"suspension corrected: the limitation period now ends sooner: {after.describe(tz)}")
    case.event(now, "limitation_suspended", f"{what} ({legal.SRC_SUSPENSION}): {after.describe(tz)}")
    return case.result(f"limitation period suspended (民法典 art. 194): {after.describe(tz)}")
