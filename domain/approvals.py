"""Four-eyes (maker-checker). Pure: what needs a second person, the proposal, and who may
decide it. The roles that may approve each kind are in access.permissions.TWO_PERSON (checked by the application
layer); here: the checker is never the maker, and a proposal waits at most the policy's approval.expiry_days.

Decisions that take two different people:
- a plan with an interest waiver over approval.waiver_percent_over (default: any waiver over 20%), or beyond
  the plain limits (approval.plain_max_instalments, approval.plain_max_deferral_days), up to the hard ones
  (plans.*, checked as before);
- closing a case for bankruptcy or death (and so the borrower's other cases);
- an operator's explicit closure, and a write-off confirmation;
- releasing a complaint hold.
"""

from __future__ import annotations

from datetime import date, datetime, timedelta

from domain.actor import Actor
from domain.errors import InvalidInput
from domain.models import (
    CLOSING_HOLDS,
    ApprovalKind,
    CloseIn,
    HoldIn,
    PendingApproval,
    PlanIn,
    ReleaseIn,
    WriteOffConfirmIn,
)
from domain.policy import Policy


def plan_reason(p: PlanIn, policy: Policy) -> str | None:
    """Why this plan needs a second person, or None."""
    a = policy.approval
    if p.kind == "interest_waiver" and p.waiver_percent > a.waiver_percent_over:
        return f"a waiver of {p.waiver_percent}% is over {a.waiver_percent_over}%"
    if p.kind == "instalments" and a.plain_max_instalments is not None and (p.instalments or 0) > a.plain_max_instalments:
        return f"{p.instalments} instalments are over the plain limit of {a.plain_max_instalments}"
    if p.kind == "deferral" and a.plain_max_deferral_days is not None and p.until is not None:
        return None  # the deferral's length is checked against the due date by the workflow (needs the clock)
    return None


def deferral_reason(p: PlanIn, policy: Policy, today) -> str | None:
    a = policy.approval
    if p.kind == "deferral" and a.plain_max_deferral_days is not None and p.until is not None:
        days = (p.until - today).days
        if days > a.plain_max_deferral_days:
            return f"a deferral of {days} days is over the plain limit of {a.plain_max_deferral_days}"
    return None


# Each input's four-eyes rule (domain/inputs registers one per input that may need a second person): the kind of
# approval this instance needs, or None when one person may take it.


def plan_approval(p: PlanIn, policy: Policy, today: date) -> ApprovalKind | None:
    """A waiver, instalments or a deferral beyond the policy's plain limits."""
    return "plan" if plan_reason(p, policy) or deferral_reason(p, policy, today) else None


def closure_approval(h: HoldIn, policy: Policy, today: date) -> ApprovalKind | None:
    """A bankruptcy or a death closes every case of the borrower: not on one person's word."""
    return "closure" if h.kind in CLOSING_HOLDS and not h.approved else None


def release_approval(r: ReleaseIn, policy: Policy, today: date) -> ApprovalKind | None:
    """A complaint is released by a second person, not by whoever it was about."""
    return "release" if r.kind == "complaint" else None


def close_approval(c: CloseIn, policy: Policy, today: date) -> ApprovalKind | None:
    return "close"


def write_off_approval(c: WriteOffConfirmIn, policy: Policy, today: date) -> ApprovalKind | None:
    return "write_off"


def summary_of(kind: str, arg) -> str:
    if kind == "plan":
        return (
            f"plan {arg.kind}"
            + (f" waiving {arg.waiver_percent}%" if arg.kind == "interest_waiver" else "")
            + (f" in {arg.instalments} instalments" if arg.kind == "instalments" else "")
            + (f" until {arg.until}" if arg.kind == "deferral" else "")
        )
    if kind == "closure":
        return f"close the borrower's cases: {arg.kind}"
    if kind == "release":
        return "release the complaint hold"
    if kind == "close":
        return f"close the case as {arg.outcome}"
    return "confirm the write-off"


def propose(
    kind: ApprovalKind, arg, maker: Actor, now: datetime, policy: Policy, current: PendingApproval | None
) -> PendingApproval:
    if current is not None:
        raise InvalidInput(
            "approval",
            f"a proposal is already waiting ({current.summary}, by {current.maker.operator_id}"
            f" at {current.at:%Y-%m-%d %H:%M} UTC): approve or reject it first",
        )
    field = {"plan": "plan", "closure": "hold", "release": "release", "close": "close", "write_off": "confirm"}[kind]
    return PendingApproval(
        kind=kind,
        summary=summary_of(kind, arg),
        maker=maker,
        at=now,
        expires_at=now + timedelta(days=policy.approval.expiry_days),
        **{field: arg},
    )


def check_decision(pending: PendingApproval | None, checker: Actor | None, now: datetime) -> PendingApproval:
    if pending is None:
        raise InvalidInput("approval", "nothing is waiting for approval in this case")
    if checker is None:
        raise InvalidInput("actor", "an approval or rejection needs the operator who decides")
    if pending.expires_at <= now:
        raise InvalidInput("approval", f"the proposal expired at {pending.expires_at:%Y-%m-%d %H:%M} UTC")
    if checker.operator_id == pending.maker.operator_id:
        raise InvalidInput("authorization", "the maker of a proposal cannot approve or reject it: a second person must")
    return pending


def payload(pending: PendingApproval):
    return pending.plan or pending.hold or pending.release or pending.close or pending.confirm


def approved_input(pending: PendingApproval, checker: Actor):
    """The proposal's input as its approver takes it: a release names the approver as its reviewer."""
    arg = payload(pending)
    if pending.kind == "release":
        return arg.model_copy(update={"reviewer": checker.operator_id})
    return arg
