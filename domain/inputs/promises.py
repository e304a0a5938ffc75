"""Promises to pay and repayment plans (deferral, instalments, interest waiver): checked against the policy's limits,
counted to the last day the borrower pays by, and each an acknowledgement of the debt.

Each input has `check_*` (pure, raises InvalidInput naming the field) and `apply_*` (checks again, then changes
the case); domain/inputs/__init__.py registers them by the input's model."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from domain import legacy
from domain.dates import utc
from domain.errors import InvalidInput
from domain.models import (
    PlanIn,
    PlanResult,
    PromiseIn,
    UpdateResult,
)
from domain.plans import build_plan, pay_by_terms
from domain.promises import make_promise

if TYPE_CHECKING:
    from domain.case import Case


def check_promise(case: Case, p: PromiseIn, now: datetime) -> None:
    case.refuse_if_closed()
    if case.plan_active():
        raise InvalidInput("case", "a repayment plan is active; a promise cannot replace it")
    if (promise := case.active_promise()) is not None:
        raise InvalidInput("case", f"a promise is already active (due {promise.date})")
    make_promise(
        p.amount,
        p.date,
        case.state.balances.total,
        case.inp.currency,
        case.policy.promise,
        case.clock,
        now,
        case.state.total_paid,
    )


def apply_promise(case: Case, p: PromiseIn, now: datetime) -> UpdateResult:
    check_promise(case, p, now)
    s = case.state
    s.promise = make_promise(
        p.amount, p.date, s.balances.total, case.inp.currency, case.policy.promise, case.clock, now, s.total_paid
    )
    case.count_pay_by(s.promise, p.date, case.policy.promise.grace_days, case.policy.promise.keep_dates_on_rest_days)
    if not case.regime.legal_clocks:
        legacy.acknowledged(s, now)
    case.event(now, "promise", f"{case.money(s.promise.amount)} by {p.date}; ladder paused")
    case.restart_limitation("promise to pay (义务人同意履行义务)", case.clock.today(now), now)  # 民法典 art. 195(二)
    case.restart_enforcement("promise to pay", case.clock.today(now), now)
    moved = f" (its last day {s.promise.moved_from} is a rest day: 民法典 art. 203)" if s.promise.moved_from else ""
    return case.result(
        f"promise recorded: {case.money(s.promise.amount)} by {p.date}; the ladder is paused until "
        f"{utc(s.promise.deadline)}{moved}"
    )


def _build_plan(case: Case, p: PlanIn, now: datetime):
    case.refuse_if_closed()
    if (plan := case.active_plan()) is not None:
        raise InvalidInput("case", f"a {plan.kind} plan is already active")
    return build_plan(p, case.state.balances, case.policy.plans, case.clock, now, case.state.total_paid)


def check_plan(case: Case, p: PlanIn, now: datetime) -> None:
    _build_plan(case, p, now)


def apply_plan(case: Case, p: PlanIn, now: datetime) -> PlanResult:
    s = case.state
    plan = _build_plan(case, p, now)
    if case.promise_active():
        case.event(now, "promise_superseded", "replaced by a repayment plan")
        s.promise = None
    s.balances = s.balances.model_copy(update={"interest": s.balances.interest - plan.waived})
    limits = case.policy.plans
    for inst in plan.schedule:
        case.count_pay_by(inst, inst.due, limits.grace_days, limits.keep_dates_on_rest_days)
    if case.regime.pay_by_counted and case.clock.real_calendar:
        plan.terms = pay_by_terms(limits.grace_days, limits.keep_dates_on_rest_days, case.inp.timezone)
    case.restructure(plan, now)
    s.plan = plan
    case.event(
        now,
        "plan_agreed",
        f"{plan.kind}: {len(plan.schedule)} payment(s), {case.money(plan.total)}, waiver {case.money(plan.waived)}",
    )
    case.restart_limitation("repayment plan agreed (an acknowledgement)", case.clock.today(now), now)  # 民法典 art. 195(二)
    case.restart_enforcement("repayment plan agreed", case.clock.today(now), now)
    return PlanResult(
        message=f"{plan.kind} plan agreed: {case.money(plan.total)} in {len(plan.schedule)} payment(s); the ladder is paused"
        + (f". {plan.terms}" if plan.terms else ""),
        status=case.status_name(),
        outcome=s.outcome,
        total=case.amount(plan.total),
        waived=case.amount(plan.waived),
        schedule=[(i.due, case.amount(i.amount)) for i in plan.schedule],
    )
