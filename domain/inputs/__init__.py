"""Every input a case takes, registered once and keyed by its model's type: its rule (`check`, pure, raising
InvalidInput that names the field, and `apply`, which changes the case), the application layer's command name, the
workflow update that carries it, whether a bank's system may send it as a signal (and under which names), the
permission use case an instance needs (the kind of a hold or an outcome decides who may send it), and whether it may
need a second person's approval. The workflow's handlers, the application layer, the console's forms, the simulator,
the command line and the contract's document all read this table; the roles that may act on each use case are
access.permissions's, the four-eyes thresholds domain/approvals.py's.

The rules live one module per family: payments (and reversals), promises (and plans), holds (and releases),
outcomes (calls, visits, the court, and the limitation's suspension), closing (and the write-off's confirmation).

Pure: no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from domain import approvals
from domain.inputs import closing, holds, outcomes, payments, promises
from domain.models import (
    ApprovalDecisionIn,
    ApprovalKind,
    CloseIn,
    HoldIn,
    OutcomeIn,
    PaymentIn,
    PlanIn,
    PromiseIn,
    ReleaseIn,
    ReversalIn,
    SuspensionIn,
    WriteOffConfirmIn,
)
from domain.policy import Policy

if TYPE_CHECKING:
    from domain.case import Case


@dataclass(frozen=True)
class Input:
    model: type[BaseModel]
    command: str  # the application layer's and the command line's name (app.inputs.send_update, starter.py)
    update: str  # the workflow update's name (docs/workflow-contract.md)
    use_case: Callable[[BaseModel], str]  # the permission use case of one instance
    check: Callable[[Case, Any, datetime], Any]  # pure; raises InvalidInput naming the field
    apply: Callable[[Case, Any, datetime], Any]  # checks again, changes the case, answers the sender
    signals: tuple[str, ...] = ()  # the signal names a bank's system may send it under (the update's, and aliases)
    forms: str | None = None  # the prefix of the use cases any of which shows the console's form, when not `use_case`'s
    # its four-eyes rule (domain/approvals.py): which approval an instance needs, given the policy and the day;
    # None: one person may always take it
    approval: Callable[[Any, Policy, date], ApprovalKind | None] | None = None
    at_once: bool = False  # its change is published to the search attributes at once (it closes or reopens a case)

    @property
    def four_eyes(self) -> bool:
        """May wait for a second person's approval."""
        return self.approval is not None


def _fixed(name: str) -> Callable[[BaseModel], str]:
    return lambda _arg: name


def _by_kind(prefix: str) -> Callable[[BaseModel], str]:
    return lambda arg: f"{prefix}.{getattr(arg, 'kind', '')}"  # holds, releases and outcomes: who may, by kind


def _no_rule(case: Case, arg: Any, now: datetime) -> Any:
    raise TypeError(f"{type(arg).__name__} is decided by the workflow against its proposal, not applied to a case")


INPUTS: tuple[Input, ...] = (
    Input(
        PaymentIn,
        "pay",
        "record_payment",
        _fixed("payment.record"),
        payments.check_payment,
        payments.apply_payment,
        ("record_payment",),
    ),
    Input(
        ReversalIn,
        "reverse",
        "reverse_payment",
        _fixed("payment.reverse"),
        payments.check_reversal,
        payments.apply_reversal,
        ("reverse_payment",),
        at_once=True,
    ),
    Input(
        PromiseIn,
        "promise",
        "promise_to_pay",
        _fixed("promise"),
        promises.check_promise,
        promises.apply_promise,
        ("promise_to_pay", "record_promise"),
    ),
    Input(
        PlanIn,
        "plan",
        "agree_plan",
        _fixed("plan.agree"),
        promises.check_plan,
        promises.apply_plan,
        ("agree_plan",),
        approval=approvals.plan_approval,
    ),
    Input(
        HoldIn,
        "hold",
        "place_hold",
        _by_kind("hold.place"),
        holds.check_hold,
        holds.apply_hold,
        ("place_hold",),
        forms="hold.place.",
        approval=approvals.closure_approval,
    ),
    Input(
        ReleaseIn,
        "release",
        "release_hold",
        _by_kind("hold.release"),
        holds.check_release,
        holds.apply_release,
        ("release_hold",),
        forms="hold.release.",
        approval=approvals.release_approval,
    ),
    Input(
        OutcomeIn,
        "outcome",
        "record_outcome",
        _by_kind("outcome"),
        outcomes.check_outcome,
        outcomes.apply_outcome,
        ("record_outcome",),
        forms="outcome.",
    ),
    Input(
        SuspensionIn,
        "suspend",
        "record_suspension",
        _fixed("limitation.suspend"),
        outcomes.check_suspension,
        outcomes.apply_suspension,
        ("record_suspension",),
    ),
    Input(
        CloseIn,
        "close",
        "close_case",
        _fixed("case.close"),
        closing.check_close,
        closing.apply_close,
        approval=approvals.close_approval,
        at_once=True,
    ),
    Input(
        WriteOffConfirmIn,
        "confirm-write-off",
        "confirm_write_off",
        _fixed("writeoff.confirm"),
        closing.check_confirm_write_off,
        closing.apply_confirm_write_off,
        approval=approvals.write_off_approval,
        at_once=True,
    ),
    # The decision on a proposal is no rule of the case: the workflow checks it against the proposal waiting
    # (approvals.check_decision), then takes the proposal's own input by this table.
    Input(ApprovalDecisionIn, "decide", "decide_approval", _fixed("case.decide"), _no_rule, _no_rule),
)

BY_TYPE: dict[type[BaseModel], Input] = {i.model: i for i in INPUTS}
BY_COMMAND: dict[str, Input] = {i.command: i for i in INPUTS}
# A signal's name -> its input's model: what a bank's system may signal (CollectionCase.signalled)
SIGNALLED: dict[str, type[BaseModel]] = {name: i.model for i in INPUTS for name in i.signals}


def of(arg: BaseModel) -> Input:
    """The registered input of a model instance (KeyError: not an input of a case)."""
    return BY_TYPE[type(arg)]


def use_case(arg: BaseModel) -> str:
    return of(arg).use_case(arg)


def approval_needed(arg: BaseModel, policy: Policy, today: date) -> ApprovalKind | None:
    """The approval this input needs by its content (its four-eyes rule), or None."""
    rule = of(arg).approval
    return None if rule is None else rule(arg, policy, today)
