"""Every input a case takes, registered once and keyed by its model's type: the application layer's command name,
the workflow update that carries it, whether a bank's system may send it as a signal (and under which names), and
the permission use case an instance needs (the kind of a hold or an outcome decides who may send it). The
application layer, the console's forms, the workflow's signal handler and the contract's document all read this
table; the roles that may act on each use case are access.permissions's, the four-eyes rules domain/approvals.py's.

Pure: names and types, no I/O."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from pydantic import BaseModel

from domain.models import (
    ApprovalDecisionIn,
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


@dataclass(frozen=True)
class Input:
    model: type[BaseModel]
    command: str  # the application layer's and the command line's name (app.inputs.send_update, starter.py)
    update: str  # the workflow update's name (docs/workflow-contract.md)
    use_case: Callable[[BaseModel], str]  # the permission use case of one instance
    signals: tuple[str, ...] = ()  # the signal names a bank's system may send it under (the update's, and aliases)
    forms: str | None = None  # the prefix of the use cases any of which shows the console's form, when not `use_case`'s


def _fixed(name: str) -> Callable[[BaseModel], str]:
    return lambda _arg: name


def _by_kind(prefix: str) -> Callable[[BaseModel], str]:
    return lambda arg: f"{prefix}.{getattr(arg, 'kind', '')}"  # holds, releases and outcomes: who may, by kind


INPUTS: tuple[Input, ...] = (
    Input(PaymentIn, "pay", "record_payment", _fixed("payment.record"), ("record_payment",)),
    Input(ReversalIn, "reverse", "reverse_payment", _fixed("payment.reverse"), ("reverse_payment",)),
    Input(PromiseIn, "promise", "promise_to_pay", _fixed("promise"), ("promise_to_pay", "record_promise")),
    Input(PlanIn, "plan", "agree_plan", _fixed("plan.agree"), ("agree_plan",)),
    Input(HoldIn, "hold", "place_hold", _by_kind("hold.place"), ("place_hold",), forms="hold.place."),
    Input(ReleaseIn, "release", "release_hold", _by_kind("hold.release"), ("release_hold",), forms="hold.release."),
    Input(OutcomeIn, "outcome", "record_outcome", _by_kind("outcome"), ("record_outcome",), forms="outcome."),
    Input(SuspensionIn, "suspend", "record_suspension", _fixed("limitation.suspend"), ("record_suspension",)),
    Input(CloseIn, "close", "close_case", _fixed("case.close")),
    Input(WriteOffConfirmIn, "confirm-write-off", "confirm_write_off", _fixed("writeoff.confirm")),
    Input(ApprovalDecisionIn, "decide", "decide_approval", _fixed("case.decide")),
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
