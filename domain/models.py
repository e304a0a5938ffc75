"""The shapes that cross the workflow boundary: case input, update inputs, state and results.

Everything here is a pydantic model carried by temporalio's pydantic data converter.
Amounts inside the case are integer minor units of the case currency; amounts typed by
people (update inputs) are decimal strings, parsed strictly by domain.money.
No PII: ids and amounts only.
"""

from __future__ import annotations

import datetime as dt
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from domain.actor import Actor
from domain.dates import zone
from domain.errors import InvalidInput
from domain.money import check_currency
from domain.policy import AgentRules, ContactRules, Policy
from domain.text import clean_text

ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$"
HoldKind = Literal["dispute", "cease_contact", "hardship", "complaint", "bankruptcy", "deceased"]
CaseStatusName = Literal["active", "paused", "closed"]
# How an operator may close a case (close_case), always with a reason
OPERATOR_OUTCOMES: tuple[Outcome, ...] = ("settled_by_agreement", "uncollectable", "sold", "error")
# "written_off" closes only the cases that reached write-off before write-off became an accounting event
# (workflows/versioning.py WRITE_OFF_PROPOSAL); "time_barred": the limitation period has truly run out
Outcome = Literal[
    "paid",
    "settled",
    "written_off",
    "bankrupt",
    "deceased",
    "recovered",
    "time_barred",
    "settled_by_agreement",
    "uncollectable",
    "sold",
    "error",
]
PAID_OUTCOMES = ("paid", "settled", "recovered")  # closed by payments: a reversal reopens the case
WriteOffStatus = Literal["proposed", "confirmed"]
CLOSING_HOLDS: dict[str, Outcome] = {"bankruptcy": "bankrupt", "deceased": "deceased"}


def _clean(value: str, field: str, max_length: int, required: bool = False) -> str:
    """domain.text.clean_text as a pydantic validator's error (NFKC, trimmed, no control/format characters)."""
    try:
        return clean_text(value, field, max_length, required=required)
    except InvalidInput as exc:
        raise ValueError(exc.reason) from None


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Balances(Model):
    principal: int = Field(default=0, ge=0)
    interest: int = Field(default=0, ge=0)
    fees: int = Field(default=0, ge=0)

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.fees


class CaseInput(Model):
    """What starts a case. The policy content is pinned here so a running case keeps its strategy."""

    loan_id: str = Field(pattern=ID_PATTERN)
    borrower_id: str = Field(pattern=ID_PATTERN)
    currency: str
    principal: int = Field(ge=0, description="outstanding principal, minor units")
    interest: int = Field(default=0, ge=0)
    fees: int = Field(default=0, ge=0)
    due_date: dt.date
    timezone: str = "Asia/Shanghai"
    segment: str = Field(default="retail", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    product: str = Field(default="personal_loan", pattern=r"^[A-Za-z0-9_-]{1,32}$")
    guarantor_id: str | None = Field(default=None, pattern=ID_PATTERN)
    policy: Policy
    history_limit: int | None = Field(default=None, ge=50, description="continue-as-new past this many events (tests)")
    rejections_recorded: int | None = Field(
        default=None, ge=1, description="refused signals recorded one by one per run (default 100; tests set fewer)"
    )
    state: CaseState | None = None
    reopen: ReopenIn | None = Field(default=None, description="a closed run reopened by a payment reversal")

    @field_validator("currency")
    @classmethod
    def _currency(cls, v: str) -> str:
        check_currency(v)
        return v

    @field_validator("timezone")
    @classmethod
    def _tz(cls, v: str) -> str:
        try:
            zone(v)
        except ValueError as exc:
            raise ValueError(str(exc).split(": ", 1)[1]) from None
        return v

    @model_validator(mode="after")
    def _owes_something(self) -> CaseInput:
        if self.principal + self.interest + self.fees <= 0:
            raise ValueError("principal: the loan owes nothing (principal + interest + fees must be above zero)")
        return self

    @property
    def workflow_id(self) -> str:
        return workflow_id(self.loan_id)


def workflow_id(loan_id: str) -> str:
    return f"loan-{loan_id}"


# ---- update inputs (typed by people or sent by the bank's systems) ----


class PaymentIn(Model):
    actor: SkipJsonSchema[Actor | None] = Field(
        default=None, description="set by the application layer from the authenticated operator; never taken from a client"
    )
    payment_id: str = Field(pattern=ID_PATTERN)
    amount: str = Field(description="decimal string in major units, e.g. '1234.56'")
    currency: str
    paid_at: AwareDatetime | None = None


class PromiseIn(Model):
    actor: SkipJsonSchema[Actor | None] = Field(
        default=None, description="set by the application layer from the authenticated operator; never taken from a client"
    )
    amount: str
    date: dt.date


class PlanIn(Model):
    actor: SkipJsonSchema[Actor | None] = Field(
        default=None, description="set by the application layer from the authenticated operator; never taken from a client"
    )
    kind: Literal["deferral", "instalments", "interest_waiver"]
    until: dt.date | None = Field(default=None, description="deferral: the new due date for the whole balance")
    instalments: int | None = Field(default=None, description="instalments: how many")
    first_due: dt.date | None = Field(default=None, description="instalments: date of the first")
    interval_months: int = Field(default=1, ge=1, le=12)
    waiver_percent: int = Field(default=0, description="share of the outstanding interest waived on completion")
    pay_by: dt.date | None = Field(default=None, description="interest_waiver: pay the rest by this date")

    @field_validator("instalments", "interval_months", "waiver_percent", mode="before")
    @classmethod
    def _not_a_boolean(cls, v):
        # JSON true is not 1: pydantic's lax mode would take `"waiver_percent": true` as 1%
        if isinstance(v, bool):
            raise ValueError("must be a whole number, not true/false")
        return v


class HoldIn(Model):
    approved: SkipJsonSchema[bool] = Field(
        default=False, description="set by the application layer only: a closure already approved in the borrower's other case"
    )
    actor: SkipJsonSchema[Actor | None] = Field(
        default=None, description="set by the application layer from the authenticated operator; never taken from a client"
    )
    kind: HoldKind
    until: dt.date | None = Field(default=None, description="hardship: the end date")
    reference: str = Field(default="", max_length=200)
    received_on: dt.date | None = Field(
        default=None,
        description="dispute: the day the dispute was received "
        "(the credit-report answer is due within 20 days of it, 征信业管理条例 art. 25)",
    )

    @field_validator("reference")
    @classmethod
    def _clean_reference(cls, v: str) -> str:
        return _clean(v, "reference", 200)


class ReleaseIn(Model):
    actor: SkipJsonSchema[Actor | None] = Field(
        default=None, description="set by the application layer from the authenticated operator; never taken from a client"
    )
    kind: HoldKind
    reviewer: str | None = Field(default=None, max_length=100, description="complaint: the compliance reviewer releasing it")
    resolution: str = Field(default="", max_length=200)

    @field_validator("reviewer")
    @classmethod
    def _clean_reviewer(cls, v: str | None) -> str | None:
        # a reviewer of whitespace, a zero-width space or an RTL mark names nobody: refused
        return None if v is None else _clean(v, "reviewer", 100, required=True)

    @field_validator("resolution")
    @classmethod
    def _clean_resolution(cls, v: str) -> str:
        return _clean(v, "resolution", 200)


class CloseIn(Model):
    """An operator closes a case (closed_by_operator): the outcome and the reason are required."""

    actor: SkipJsonSchema[Actor | None] = Field(
        default=None, description="set by the application layer from the authenticated operator; never taken from a client"
    )
    outcome: str = Field(description="one of " + ", ".join(OPERATOR_OUTCOMES))
    reason: str = Field(default="", max_length=500)
    operator: str = Field(default="", max_length=100)


class WriteOffConfirmIn(Model):
    """An operator confirms a proposed write-off (核销): an accounting event, the case stays open (账销案存)."""

    actor: SkipJsonSchema[Actor | None] = Field(
        default=None, description="set by the application layer from the authenticated operator; never taken from a client"
    )
    approver: str = Field(default="", max_length=100)
    reference: str = Field(default="", max_length=200, description="the write-off approval's number")


SuspensionCause = Literal[
    "force_majeure", "no_legal_representative", "no_heir_or_administrator", "creditor_controlled", "other_obstacle"
]
# 民法典 art. 194's obstacles, as the article lists them
SUSPENSION_CAUSES: dict[str, str] = {
    "force_majeure": "(一) 不可抗力 (force majeure)",
    "no_legal_representative": "(二) 无民事行为能力人或者限制民事行为能力人没有法定代理人, 或者法定代理人死亡、丧失民事行为能力、"
    "丧失代理权 (no legal representative)",
    "no_heir_or_administrator": "(三) 继承开始后未确定继承人或者遗产管理人 (no heir or estate administrator yet)",
    "creditor_controlled": "(四) 权利人被义务人或者其他人控制 (the creditor under another's control)",
    "other_obstacle": "(五) 其他导致权利人不能行使请求权的障碍 (another obstacle)",
}


class SuspensionIn(Model):
    """An obstacle that suspends the limitation period (民法典 art. 194), recorded by the legal team. The same
    reference again replaces the earlier record (a corrected end date, an obstacle that lasted longer)."""

    actor: SkipJsonSchema[Actor | None] = Field(
        default=None, description="set by the application layer from the authenticated operator; never taken from a client"
    )
    cause: SuspensionCause = Field(description="the obstacle, as 民法典 art. 194 lists them")
    starts_on: dt.date = Field(description="the day the obstacle began")
    ends_on: dt.date = Field(description="the day it ended (or is expected to end; record it again to correct)")
    reference: str = Field(min_length=1, max_length=100, description="the document it rests on (a notice, a certificate)")
    note: str = Field(default="", max_length=200)


class Suspension(Model):
    cause: SuspensionCause
    starts_on: dt.date
    ends_on: dt.date
    reference: str
    recorded_at: datetime


class ReversalIn(Model):
    """A payment taken back (returned transfer, failed debit), by its payment id."""

    actor: SkipJsonSchema[Actor | None] = Field(
        default=None, description="set by the application layer from the authenticated operator; never taken from a client"
    )
    payment_id: str = Field(default="", max_length=64)
    reason: str = Field(default="", max_length=200)
    at: AwareDatetime | None = Field(default=None, description="when the bank learnt of it (default: now)")


class ReopenIn(Model):
    """A case closed as paid whose payment was reversed opens again as a new run of the same workflow id."""

    previous_run_id: str
    reversal: ReversalIn


CALL_OUTCOMES = ("answered", "no_answer", "wrong_number", "promise", "dispute", "refused_to_pay")
VISIT_OUTCOMES = ("met_borrower", "not_home", "refused", "moved", "promise", "dispute")
COURT_EVENTS = (
    "lawsuit_filed",
    "payment_order_issued",
    "payment_order_served",
    "objection_filed",
    "judgment",
    "enforcement_result",
    "enforcement_closed",
)


class OutcomeIn(Model):
    actor: SkipJsonSchema[Actor | None] = Field(
        default=None, description="set by the application layer from the authenticated operator; never taken from a client"
    )
    kind: Literal["call", "visit", "court"]
    outcome: str
    amount: str | None = Field(default=None, description="promise amount, or amount recovered by enforcement")
    date: dt.date | None = Field(default=None, description="promise date")
    reference: str = Field(default="", max_length=100, description="court case number, visit report id, ...")
    effective_on: dt.date | None = Field(default=None, description="judgment: the day it took effect")
    performance_ends: dt.date | None = Field(default=None, description="judgment: the last day of its performance period")
    served_on: dt.date | None = Field(default=None, description="payment order: the day it was served on the borrower")
    task_id: int | None = Field(default=None, ge=1, description="the collector's task this outcome reports (agent mode)")

    @field_validator("reference")
    @classmethod
    def _clean_reference(cls, v: str) -> str:
        return _clean(v, "reference", 100)


ApprovalKind = Literal["plan", "closure", "release", "close", "write_off"]


class PendingApproval(Model):
    """A decision that takes two people, proposed by its maker and waiting for a checker (four-eyes)."""

    kind: ApprovalKind
    summary: str
    maker: Actor
    at: datetime
    expires_at: datetime
    plan: PlanIn | None = None
    hold: HoldIn | None = None
    release: ReleaseIn | None = None
    close: CloseIn | None = None
    confirm: WriteOffConfirmIn | None = None


class ApprovalDecisionIn(Model):
    decision: Literal["approve", "reject"]
    note: str = Field(default="", max_length=200)
    actor: SkipJsonSchema[Actor | None] = Field(default=None, description="set by the application layer")

    @field_validator("note")
    @classmethod
    def _clean_note(cls, v: str) -> str:
        return _clean(v, "note", 200)


# ---- state ----


class Event(Model):
    at: datetime
    kind: str
    detail: str = ""
    actor: str | None = Field(default=None, description="who, for a human step: operator id:role (never a name)")
    seq: int = Field(default=0, description="position in the case's audit trail, from 1")


class Hold(Model):
    kind: HoldKind
    placed_at: datetime
    until: datetime | None = None
    reference: str = ""


class PayBy(Model):
    """When a date a borrower pays by (a promise's, an instalment's) runs out: 24:00 of its last day, the date plus
    the grace days, a last day on a rest day moved to the next working day (民法典 art. 203) unless the terms keep the
    dates (art. 204). Set by Case.count_pay_by; a run from before it has only `deadline`, counted in plain days."""

    deadline: datetime
    last_day: dt.date | None = Field(default=None, description="the last day to pay (24:00 that day, the borrower's zone)")
    moved_from: dt.date | None = Field(default=None, description="the last day before a rest day moved it (art. 203)")
    waits_for_year: int | None = Field(
        default=None,
        description="the calendar of this year is not recorded yet: `deadline` is the earliest it can be, and it is "
        "not final (nothing breaks on it) until the year is known",
    )


class Promise(PayBy):
    amount: int
    date: dt.date
    made_at: datetime
    paid_before: int = Field(description="total paid on the case when the promise was made")
    status: Literal["active", "kept", "broken"] = "active"


class Instalment(PayBy):
    due: dt.date
    amount: int


class Plan(Model):
    kind: Literal["deferral", "instalments", "interest_waiver"]
    made_at: datetime
    schedule: list[Instalment]
    total: int = Field(description="what the borrower pays under the plan")
    waived: int = Field(default=0, description="interest forgiven when the plan completes")
    paid_before: int
    status: Literal["active", "completed", "broken"] = "active"
    terms: str = Field(default="", description="how its dates are counted, as the borrower is told (民法典 art. 203/204)")


class Restructuring(Model):
    """A plan agreed for a delinquent borrower changes the contract in their favour: a restructuring (重组)."""

    on: dt.date
    before: Literal["normal", "special_mention", "substandard", "doubtful", "loss"]
    observation_ends: dt.date
    broken_on: dt.date | None = None


class Awaiting(Model):
    step: str
    kind: Literal["visit", "court", "call"]
    until: datetime
    task_id: int | None = Field(default=None, description="agent mode: the collector's task (domain/tasks.py)")
    task_due: datetime | None = Field(default=None, description="the task is re-queued if not worked by then")
    requeues: int = 0


class TaskInfo(Model):
    """A task opened (or re-queued) for the collections floor, as the activity returns it (no PII)."""

    task_id: int
    action: Literal["call", "visit"]
    team: str
    assignee: str | None
    due_at: datetime
    slot_start: datetime | None = None
    slot_end: datetime | None = None


class TaskOpen(Model):
    """What the task activity needs to open, re-queue or close a case's task."""

    workflow_id: str
    case_key: str
    loan_id: str
    borrower_id: str
    step: str
    action: Literal["call", "visit"]
    now: datetime
    dpd: int = 0
    outstanding_minor: int = 0
    segment: str = ""
    task_id: int | None = None
    requeues: int = Field(default=0, description="re-queue: the task's count after this one")
    rules: ContactRules | None = None
    day_seconds: int = 86400
    agent: AgentRules | None = None
    broken_promises: int = Field(default=0, description="promises the borrower has broken on this case")
    legal_days_left: int | None = Field(default=None, description="policy days until the nearest legal clock ends")


class TaskEnd(Model):
    task_id: int
    status: Literal["done", "expired", "cancelled"]
    at: datetime


class GateRecord(Model):
    """One decision of the contact gate or a legal clock, as the case keeps it for `status`."""

    at: datetime
    step: str
    action: str
    allowed: bool
    rule: str
    reason: str = ""
    retry_at: datetime | None = None
    final: bool = False


class LimitationRestart(Model):
    """One interruption of the limitation period (民法典 art. 195): the new period counts from `on`, not counted."""

    cause: str
    on: dt.date
    recorded_at: datetime


class LegalClock(Model):
    """A legal clock as `status` shows it: what it is, when it ends or opens, and its source."""

    name: str
    kind: Literal["ends", "opens"]
    at: datetime | None = Field(default=None, description="the instant it ends/opens (24:00 of the last day); None if unknown")
    last_day: dt.date | None = None
    source: str
    note: str = ""
    restarted_on: dt.date | None = None
    restart_cause: str | None = None


class PaymentRecord(Model):
    amount: int
    allocation: dict[str, int]
    at: datetime
    reversed_at: datetime | None = None
    reversal_reason: str = ""


class RecordedCalendar(Model):
    """One year of the official calendar as a case run recorded it (a local activity's answer, so in its history):
    the run's legal clocks count with this, and a replay sees the same days whatever the files or database hold now."""

    year: int
    rest: list[dt.date] = Field(default=[], description="rest days inside the year's breaks")
    working: list[dt.date] = Field(default=[], description="make-up working days (Saturdays and Sundays)")
    source: str = Field(description="which calendar it was: 'file cn-YYYY.toml' or 'database, approved by X at T'")


class CaseState(Model):
    opened_at: datetime
    opened_dpd: int
    original: Balances
    balances: Balances
    total_paid: int = 0
    stage: str = "new"
    closed: bool = False
    outcome: Outcome | None = None
    closed_at: datetime | None = None
    next_step: int = 0
    last_step_at: datetime | None = None
    catch_up_to: int | None = None
    steps_done: list[str] = []
    awaiting: Awaiting | None = None
    lawsuit_filed: bool = False
    visit_scheduled: bool = False
    opened_task: TaskInfo | None = Field(default=None, description="agent mode: the running step's task, awaited when it ends")
    task_ends: list[TaskEnd] = Field(default=[], description="agent tasks ended here, on their way to the database")
    judgment_at: datetime | None = None
    holds: list[Hold] = []
    promise: Promise | None = None
    plan: Plan | None = None
    payments: dict[str, PaymentRecord] = {}
    contacts: dict[str, int] = {}
    events: list[Event] = []
    step_actions_done: list[str] = Field(default=[], description="actions of the current step already settled")
    deferred_until: datetime | None = Field(default=None, description="the gate deferred the current step until then")
    decisions: list[GateRecord] = []
    limitation_from: datetime | None = Field(default=None, description="start of the limitation period (Civil Code art. 188/195)")
    payment_order_at: datetime | None = None
    objection: bool = False
    bureau_reported: bool = False
    agency_recalled: bool = False
    dispute_answer_due: datetime | None = None
    # the legal clocks' facts (domain.legal); a case started before them keeps the fields above
    limitation_start: dt.date | None = Field(default=None, description="day the limitation period counts from (not counted)")
    limitation_restarts: list[LimitationRestart] = []
    limitation_suspensions: list[Suspension] = Field(default=[], description="obstacles recorded (民法典 art. 194)")
    restructuring: Restructuring | None = Field(
        default=None, description="the loan restructured by an agreed plan (商业银行金融资产风险分类办法 2023; domain/risk.py)"
    )
    enforcement_restarted_on: dt.date | None = Field(
        default=None, description="the day the period to apply for enforcement was last interrupted (执行程序解释 art. 28)"
    )
    judgment_effective_on: dt.date | None = None
    performance_ends: dt.date | None = None
    payment_order_served_on: dt.date | None = None
    bureau_notice_delivered_at: datetime | None = None
    bureau_notice_failed: list[str] = Field(default=[], description="notice channels that failed, in order")
    event_seq: int = 0
    audited_seq: int = Field(default=0, description="events up to this seq are in the database's audit trail")
    pending: PendingApproval | None = Field(default=None, description="a proposal waiting for a second person")
    runs: int = 1
    write_off: WriteOffStatus | None = Field(
        default=None, description="核销: proposed at the write-off DPD, confirmed by an operator"
    )
    write_off_proposed_at: datetime | None = None
    write_off_deferred: str | None = Field(default=None, description="what defers the write-off proposal (hold, promise, plan)")
    write_off_confirmed_at: datetime | None = None
    time_bar_check: datetime | None = Field(default=None, description="when to ask again whether the limitation ran out")
    reopened_from: list[str] = Field(default=[], description="run ids of the closed runs this case reopened from")
    calendars: list[RecordedCalendar] = Field(
        default=[], description="the calendar years this run's legal clocks count with (recorded, never changed in a run)"
    )
    calendar_asked_at: datetime | None = Field(default=None, description="when the run last asked for calendar years")


CaseInput.model_rebuild()


# ---- results ----


class PaymentResult(Model):
    payment_id: str
    applied: str
    allocation: dict[str, str]
    outstanding: str
    duplicate: bool = False
    status: CaseStatusName
    outcome: Outcome | None = None


class UpdateResult(Model):
    accepted: bool = True
    message: str
    status: CaseStatusName
    outcome: Outcome | None = None


class PlanResult(UpdateResult):
    total: str
    waived: str
    schedule: list[tuple[dt.date, str]]


class NextAction(Model):
    what: str
    at: datetime | None = None


class UpcomingStep(Model):
    """The ladder's next step and when it falls due, as the borrower's page says it ("if nothing is paid by ...")."""

    key: str
    stage: str
    title: str
    at: datetime


class CaseStatus(Model):
    loan_id: str
    workflow_id: str
    policy: str
    policy_version: str
    segment: str
    stage: str
    status: CaseStatusName
    outcome: Outcome | None
    dpd: int
    bucket: str
    currency: str
    outstanding: dict[str, str]
    total_paid: str
    holds: list[Hold]
    plan: Plan | None
    promise: Promise | None
    awaiting: Awaiting | None
    next_action: NextAction
    upcoming: UpcomingStep | None = Field(default=None, description="the next step of the ladder and when it is due")
    decisions: list[GateRecord] = []
    limitation_ends: datetime | None = None
    time_barred: str | None = Field(
        default=None,
        description="the limitation period has run out: only voluntary repayment requests, no legal step (民法典 art. 192)",
    )
    legal_clocks: list[LegalClock] = []
    dispute_answer_due: datetime | None = None
    risk_class: str = Field(default="normal", description="商业银行金融资产风险分类办法 (2023): normal ... loss")
    risk_basis: str = ""
    restructuring: Restructuring | None = None
    limitation_suspensions: list[Suspension] = []
    write_off: WriteOffStatus | None = None
    write_off_proposed_at: datetime | None = None
    write_off_deferred: str | None = None
    reversed_payments: list[str] = []
    reopened_from: list[str] = []
    calendars: list[str] = Field(default=[], description="the calendar years the case's legal clocks count with, and which")
    steps_done: list[str]
    contacts: dict[str, int]
    events: list[Event]
    as_of: datetime
    pending_approval: PendingApproval | None = None
    names: dict[str, str] = Field(
        default={},
        description="operators' display names by id, from the database (filled "
        "by the application layer; never in workflow history)",
    )
    live: bool = Field(default=True, description="False: the case's query failed; this is the database's projection")
    unreadable: str | None = Field(default=None, description="why the live state could not be read (live False)")


class ContactResult(Model):
    """What one channel action of a step came back with (from its activity)."""

    action: str
    channel: str
    status: Literal["delivered", "failed", "refused"] = "delivered"
    outcome: str | None = Field(default=None, description="call: answered / no_answer / wrong_number / promise / dispute")
    reason: str | None = None
    reference: str | None = None
    promise_amount: str | None = None
    promise_date: dt.date | None = None
