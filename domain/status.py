"""What a case shows: its status for people and tools (the workflow's `status` query, the CLI, the console, the
borrower's page), its next action in words, the legal clocks running, and its risk class. Read only: nothing here
changes the case."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

from domain import legacy, legal, risk
from domain.dates import bucket, utc
from domain.models import (
    CaseStatus,
    LegalClock,
    NextAction,
    UpcomingStep,
)
from domain.plans import plan_arrears

if TYPE_CHECKING:
    from domain.case import Case


def upcoming(case: Case) -> UpcomingStep | None:
    """The step that comes next and when (none while paused, waiting or closed)."""
    idx = case._pending_step()
    if idx is None:
        return None
    step = case.steps[idx]
    return UpcomingStep(key=step.key, stage=step.stage, title=step.title, at=case.step_at(idx))


def next_action(case: Case) -> NextAction:
    s = case.state
    if s.closed:
        return NextAction(what=f"none: closed as {s.outcome}")
    d = case.deadlines()
    reason = case.pause_reason()
    wait = case.enforcement_wait()
    if s.awaiting:
        what = f"awaiting {s.awaiting.kind} outcome for {s.awaiting.step} until {utc(s.awaiting.until)}"
    elif (
        s.next_step < len(case.steps) and case.steps[s.next_step].requires == "judgment" and not case.enforceable() and not reason
    ):
        what = (
            f"awaiting {wait} before {case.steps[s.next_step].key}"
            if wait
            else f"awaiting the judgment before {case.steps[s.next_step].key}"
        )
    elif s.next_step < len(case.steps) and case.notice_undeliverable(s.next_step) and not reason:
        tried = ", ".join(s.bureau_notice_failed)
        what = (
            "notice undeliverable: verify the address"
            f" (the credit-bureau notice failed by {tried}; no report until it is delivered)"
        )
    elif reason:
        what = f"paused, {reason}"
    else:
        what = ""
    if not d:
        return NextAction(what=what or "waiting for an operator")
    at, label = min(d)
    return NextAction(what=(what + "; next: " if what else "") + label, at=at)


def legal_clock_views(case: Case) -> list[LegalClock]:
    if not case.regime.legal_clocks:
        return []
    s = case.state
    last = s.limitation_restarts[-1] if s.limitation_restarts else None
    out = []
    for c in legal.clocks(case.legal_facts(), case.policy.legal):
        restart = last if c.name == "limitation" and last is not None and last.on == case.limitation_start() else None
        out.append(
            LegalClock(
                name=c.name,
                kind=c.kind,
                at=c.at,
                last_day=c.last_day,
                source=c.source,
                note=c.note,
                restarted_on=restart.on if restart else None,
                restart_cause=restart.cause if restart else None,
            )
        )
    if s.dispute_answer_due is not None:
        out.append(LegalClock(name="bureau_dispute_answer", kind="ends", at=s.dispute_answer_due, source=legal.SRC_DISPUTE))
    return out


def legal_days_left(case: Case, now: datetime) -> int | None:
    """Policy days until the nearest legal clock ends (None: none running): a call task's urgency."""
    ends = [c.at for c in legal_clock_views(case) if c.kind == "ends" and c.at is not None]
    if not ends:
        return None
    return max(0, int((min(ends) - now).total_seconds() // case.policy.day_seconds))


def limitation_ends(case: Case) -> datetime | None:
    if not case.regime.legal_clocks:
        return legacy.limitation_ends(legacy.limitation_from(case), case.policy.legal)
    return legal.limitation(case.legal_facts(), case.policy.legal).ends


def risk_class(case: Case, now: datetime) -> risk.RiskClass:
    """The five-class category (domain/risk.py); nothing outstanding is normal."""
    return risk_of(case, now)[0]


def risk_of(case: Case, now: datetime) -> tuple[risk.RiskClass, str]:
    """The class and the article it rests on: by days past due, or for a restructured loan by its changed terms
    and its observation period (domain/risk.py restructured)."""
    s, dpd = case.state, case.dpd(now)
    if not s.balances.total:
        return "normal", "正常: nothing outstanding"
    r = s.restructuring
    if r is None:
        return risk.classify(dpd), risk.basis(dpd)
    rules, today = case.policy.risk, case.clock.today(now)
    plan = s.plan
    if r.broken_on is None and plan is not None and plan.status == "active":
        behind = plan_arrears(plan, s.total_paid, today)
        days = (today - behind[2]).days if behind else 0
    else:
        days = dpd
    return risk.restructured(
        days, r.before, today, r.observation_ends, r.broken_on is not None, rules.restructured_at_least, rules.broken_at_least
    )


def of(case: Case, now: datetime) -> CaseStatus:
    s, dpd = case.state, case.dpd(now)
    b = s.balances
    risk_now = risk_of(case, now)
    return CaseStatus(
        loan_id=case.inp.loan_id,
        workflow_id=case.inp.workflow_id,
        policy=case.policy.name,
        policy_version=case.policy.version,
        segment=case.inp.segment,
        stage=s.stage,
        status=case.status_name(),
        outcome=s.outcome,
        dpd=dpd,
        bucket=bucket(dpd),
        currency=case.inp.currency,
        outstanding={
            "principal": case.amount(b.principal),
            "interest": case.amount(b.interest),
            "fees": case.amount(b.fees),
            "total": case.amount(b.total),
        },
        total_paid=case.amount(s.total_paid),
        holds=s.holds,
        plan=s.plan,
        promise=s.promise,
        awaiting=s.awaiting,
        next_action=next_action(case),
        upcoming=upcoming(case),
        steps_done=s.steps_done,
        decisions=s.decisions,
        limitation_ends=limitation_ends(case),
        time_barred=case.limitation_over(now) if case.regime.barred_stays and not s.closed else None,
        legal_clocks=legal_clock_views(case),
        dispute_answer_due=s.dispute_answer_due,
        risk_class=risk_now[0],
        risk_basis=risk_now[1],
        restructuring=s.restructuring,
        limitation_suspensions=s.limitation_suspensions,
        write_off=s.write_off,
        write_off_proposed_at=s.write_off_proposed_at,
        write_off_deferred=s.write_off_deferred,
        reversed_payments=[pid for pid, p in s.payments.items() if p.reversed_at is not None],
        reopened_from=s.reopened_from,
        calendars=[f"{c.year}: {c.source}" for c in s.calendars],
        contacts=s.contacts,
        events=s.events[-15:],
        as_of=now,
    )
