"""Payments and their reversals: a payment applied once by its id, allocated, and judged against the promise or plan; a
reversal undoes it, and a case closed as paid reopens for it.

Each input has `check_*` (pure, raises InvalidInput naming the field) and `apply_*` (checks again, then changes
the case); domain/inputs/__init__.py registers them by the input's model."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import TYPE_CHECKING

from domain import legacy
from domain.allocation import allocate
from domain.dates import CLOCK_SKEW
from domain.errors import CLOSED_FIELD, CLOSED_REASON, InvalidInput
from domain.models import (
    PAID_OUTCOMES,
    Balances,
    PaymentIn,
    PaymentRecord,
    PaymentResult,
    ReopenIn,
    ReversalIn,
    UpdateResult,
)
from domain.money import parse_amount
from domain.plans import evaluate_plan
from domain.promises import evaluate_promise

if TYPE_CHECKING:
    from domain.case import Case


def _same_payment(case: Case, key: str, amount: str, currency: str, rec: PaymentRecord) -> None:
    if currency != case.inp.currency:
        raise InvalidInput("currency", f"{currency} does not match the loan's currency {case.inp.currency}")
    if parse_amount(amount, currency, "amount") != rec.amount:
        raise InvalidInput(
            "amount",
            f"{key} was already recorded with {case.money(rec.amount)} on {rec.at:%Y-%m-%d}; the same id with "
            f"{amount} is refused (an id names one payment: send a new id for a new payment)",
        )


def enforcement_key(case: Case, reference: str, amount: str, now: datetime) -> str:
    """The ledger id of an enforcement recovery: the court's `reference` (its case number, shared by several
    distributions), the amount and the day it was recorded. The same result sent again that day is the same
    payment; another amount, or another day, is another distribution."""
    minor = parse_amount(amount, case.inp.currency, "amount")
    key = f"{reference.strip()}|{minor}|{case.clock.today(now).isoformat()}"
    return enforcement_payment_id(case, 0).removesuffix("-0") + f"-r{hashlib.sha256(key.encode()).hexdigest()[:12]}"


def enforcement_payment_id(case: Case, n: int) -> str:
    """The ledger id of the case's n-th enforcement recovery. Payment ids are unique across the whole
    ledger, so it names the case (a digest of its workflow id and opening time, to stay within the id's 64
    characters): `enforcement-1` alone was written for the first loan only and dropped for every other."""
    digest = hashlib.sha256(f"{case.inp.workflow_id}@{case.state.opened_at.isoformat()}".encode()).hexdigest()[:16]
    return f"enforcement-{digest}-{n}"


def check_payment(case: Case, p: PaymentIn, now: datetime) -> int | None:
    """The amount in minor units, or None for a payment id already recorded (a duplicate). The same id with
    another amount or currency is refused: it is a different payment under a reused id, or a corrupted resend, and
    taking it as a duplicate would lose the money silently."""
    if (rec := case.state.payments.get(p.payment_id)) is not None:
        if case.regime.payment_keys_checked:
            _same_payment(case, p.payment_id, p.amount, p.currency, rec)
        return None
    case.refuse_if_closed()
    if p.currency != case.inp.currency:
        raise InvalidInput("currency", f"{p.currency} does not match the loan's currency {case.inp.currency}")
    minor = parse_amount(p.amount, p.currency, "amount")
    if p.paid_at is not None and p.paid_at > now + CLOCK_SKEW:
        raise InvalidInput("paid_at", f"{p.paid_at.isoformat()} is in the future")
    tolerance = parse_amount(case.policy.allocation.overpayment_tolerance, p.currency, "overpayment_tolerance", allow_zero=True)
    outstanding = case.state.balances.total
    if minor > outstanding + tolerance:
        raise InvalidInput(
            "amount",
            f"{p.amount} is more than the outstanding {case.amount(outstanding)}"
            + (f" plus the tolerance {case.amount(tolerance)}" if tolerance else "")
            + "; refund or apply the surplus elsewhere",
        )
    return minor


def apply_payment(case: Case, p: PaymentIn, now: datetime, *, forced: bool = False) -> PaymentResult:
    s = case.state
    if p.payment_id in s.payments:
        rec = s.payments[p.payment_id]
        return _payment_result(case, p.payment_id, rec, duplicate=True)
    minor = check_payment(case, p, now)
    assert minor is not None  # None only for a duplicate, answered above
    allocation, s.balances, surplus = allocate(minor, s.balances, case.policy.allocation.order)
    if surplus:
        allocation["surplus"] = surplus
    s.total_paid += minor
    if not case.regime.legal_clocks:
        legacy.acknowledged(s, now)
    rec = PaymentRecord(amount=minor, allocation=allocation, at=p.paid_at or now)
    s.payments[p.payment_id] = rec
    case.event(now, "payment", f"{p.payment_id}: {case.money(minor)}, outstanding {case.money(s.balances.total)}")
    # a part payment acknowledges the debt (民法典 art. 195(二)): the period restarts from the day it was made,
    # in the borrower's zone, not from when it was recorded
    case.restart_limitation("payment", case.clock.today(p.paid_at or now), now)
    if not forced:
        case.restart_enforcement("part payment", case.clock.today(p.paid_at or now), now)
    _after_payment(case, now)
    return _payment_result(case, p.payment_id, rec)


def _after_payment(case: Case, now: datetime) -> None:
    s = case.state
    if (promise := case.active_promise()) is not None and evaluate_promise(promise, s.total_paid, now) == "kept":
        promise.status = "kept"
        case.event(now, "promise_kept", f"{case.money(promise.amount)} by {promise.date}")
    plan = case.active_plan()
    in_plan = plan is not None
    if plan is not None and evaluate_plan(plan, s.total_paid, now) == "completed":
        plan.status = "completed"
        waived = plan.waived
        case.event(now, "plan_completed", f"{plan.kind}" + (f", interest waived {case.money(waived)}" if waived else ""))
        if s.balances.total == 0:
            case.close("settled", now)
    if s.balances.total == 0 and not s.closed:
        case.close("settled" if in_plan else "recovered" if case.enforcing() else "paid", now)


def check_reversal(case: Case, r: ReversalIn, now: datetime, reopening: bool = False) -> PaymentRecord:
    """The payment to reverse. `reopening`: the case is closed as paid and reopens as a new run for it."""
    s = case.state
    if not r.payment_id:
        raise InvalidInput("payment_id", "is required: the id of the payment to reverse")
    rec = s.payments.get(r.payment_id)
    if rec is None:
        raise InvalidInput("payment_id", f"{r.payment_id} is not a payment of this case")
    if rec.reversed_at is not None:
        raise InvalidInput(
            "payment_id", f"{r.payment_id} was already reversed on {rec.reversed_at:%Y-%m-%d} ({rec.reversal_reason})"
        )
    if not r.reason.strip():
        raise InvalidInput("reason", "is required: why the payment was taken back (returned transfer, failed debit, ...)")
    if r.at is not None and r.at > now + CLOCK_SKEW:
        raise InvalidInput("at", f"{r.at.isoformat()} is in the future")
    if s.closed and not (reopening and s.outcome in PAID_OUTCOMES):
        if s.outcome in PAID_OUTCOMES:
            raise InvalidInput(CLOSED_FIELD, f"{CLOSED_REASON} ({s.outcome}); the reversal reopens it as a new run")
        raise InvalidInput(CLOSED_FIELD, f"{CLOSED_REASON} ({s.outcome}); a reversal does not reopen a case closed so")
    return rec


def apply_reversal(case: Case, r: ReversalIn, now: datetime, reopening: bool = False) -> UpdateResult:
    """Undo the payment's allocation; judge again the promise or plan it had kept, as if it had never come.

    A kept promise whose payment is reversed is broken once its deadline (date + grace) has passed, and open
    again before that: the borrower still has until the deadline the bank gave, as for any promise. A plan it
    completed is active again (or broken, with its waiver restored, if an instalment's deadline has passed).
    The limitation restart the payment caused stands: paying acknowledged the debt (Civil Code art. 195,
    同意履行义务), and a bank's failure to receive the money does not undo the borrower's acknowledgement."""
    rec = check_reversal(case, r, now, reopening)
    s = case.state
    a, b = rec.allocation, s.balances
    s.balances = Balances(
        principal=b.principal + a.get("principal", 0),
        interest=b.interest + a.get("interest", 0),
        fees=b.fees + a.get("fees", 0),
    )
    s.total_paid -= rec.amount
    rec.reversed_at, rec.reversal_reason = r.at or now, r.reason.strip()
    case.event(
        now,
        "payment_reversed",
        f"{r.payment_id}: {case.money(rec.amount)} ({rec.reversal_reason}), "
        f"outstanding {case.money(s.balances.total)}; the limitation restart it caused stands",
    )
    made_before = rec.at  # a payment made before a promise or plan was counted in its paid_before
    if s.promise is not None and s.promise.status != "broken":
        if made_before <= s.promise.made_at:
            s.promise.paid_before = max(0, s.promise.paid_before - rec.amount)
        if s.promise.status == "kept":
            verdict = evaluate_promise(s.promise, s.total_paid, now)
            if verdict != "kept":
                s.promise.status = verdict
                case.event(
                    now,
                    "promise_broken" if verdict == "broken" else "promise_reopened",
                    f"{case.money(s.promise.amount)} by {s.promise.date}: payment {r.payment_id} was reversed",
                )
    if s.plan is not None and s.plan.status in ("active", "completed"):
        if made_before <= s.plan.made_at:
            s.plan.paid_before = max(0, s.plan.paid_before - rec.amount)
        plan_verdict = evaluate_plan(s.plan, s.total_paid, now)
        if plan_verdict != "completed" and s.plan.status == "completed":
            s.plan.status = "active"
            if plan_verdict == "active":
                case.event(now, "plan_reopened", f"{s.plan.kind}: payment {r.payment_id} was reversed")
        if plan_verdict == "broken" and s.plan.status == "active":
            case.break_plan(s.plan, now, f"payment {r.payment_id} was reversed")
    return case.result(f"payment {r.payment_id} reversed; outstanding {case.money(s.balances.total)}")


def reopen(case: Case, ro: ReopenIn, now: datetime) -> None:
    """A new run of a case closed as paid whose payment was reversed: open again, carrying the closed run's id,
    and apply the reversal. Done once (a continue-as-new carries `reopen` along and finds it done)."""
    s = case.state
    if not s.closed or ro.previous_run_id in s.reopened_from:
        return
    check_reversal(case, ro.reversal, now, reopening=True)
    outcome = s.outcome
    s.reopened_from.append(ro.previous_run_id)
    s.closed, s.outcome, s.closed_at = False, None, None
    case.event(now, "reopened", f"closed as {outcome} in run {ro.previous_run_id}; payment {ro.reversal.payment_id} reversed")
    apply_reversal(case, ro.reversal, now, reopening=True)


def _payment_result(case: Case, pid: str, rec: PaymentRecord, duplicate: bool = False) -> PaymentResult:
    return PaymentResult(
        payment_id=pid,
        applied=case.amount(rec.amount),
        allocation={k: case.amount(v) for k, v in rec.allocation.items()},
        outstanding=case.amount(case.state.balances.total),
        duplicate=duplicate,
        status=case.status_name(),
        outcome=case.state.outcome,
    )
