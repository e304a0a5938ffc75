"""A collections policy: the ladder, allocation and plan limits, as validated data.

One TOML file per product or segment lives in `policies/`. Loading validates it and every
error names the file, the field and the reason. A running case keeps the policy it started
with: the whole content travels in its input.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from domain.errors import InvalidInput

POLICY_DIR = Path(__file__).resolve().parent.parent / "policies"

# What a step can do; each maps to one activity (see activities/contracts.py ACTIVITY_FOR_ACTION).
Action = Literal[
    "sms",
    "email",
    "letter",
    "call",
    "visit",
    "law_firm",
    "bureau_notice",
    "bureau_report",
    "agency_place",
    "lawsuit",
    "payment_order",
    "enforcement",
]
Component = Literal["fees", "interest", "principal"]
# The channels that reach a person; the contact rules (hours, caps) speak of these.
CONTACT_CHANNELS = ("sms", "email", "letter", "call", "visit", "law_firm")
LEGAL_MAX_TERM_MONTHS = 60


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Step(_Strict):
    key: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="stable id of the step (idempotency keys use it)")
    stage: str = Field(pattern=r"^[a-z][a-z0-9_]*$", description="value of the CollectionStage search attribute")
    dpd: int = Field(ge=0, le=3650, description="days past due at which the step starts")
    actions: list[Action] = Field(min_length=1)
    title: str = ""
    letter: str | None = Field(default=None, description="letter template for a 'letter' action")
    await_outcome_days: int | None = Field(
        default=None, ge=1, le=1000, description="wait this long for a visit report or court event"
    )
    min_days_after_previous: int | None = Field(default=None, ge=0, le=365, description="notice period after the previous step")
    mandatory: bool = Field(default=False, description="never skipped when a late case catches up")
    requires: Literal["judgment"] | None = None
    notify_guarantor: bool = Field(default=False, description="also send the step's letters to the loan's guarantor, if any")
    modes: dict[Literal["call", "visit"], Literal["provider", "agent"]] = Field(
        default={},
        description="per action: 'provider' (the gateway places it; the default) or 'agent' (a task for a collector, "
        "domain/tasks.py)",
    )

    @model_validator(mode="after")
    def _modes_name_actions(self) -> Step:
        for action in self.modes:
            if action not in self.actions:
                raise ValueError(f"modes: {action!r} is not one of the step's actions ({', '.join(self.actions)})")
        return self

    @field_validator("actions")
    @classmethod
    def _unique_actions(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("actions must not repeat")
        return v


class PlanLimits(_Strict):
    max_deferral_days: int = Field(default=90, ge=1, le=365)
    max_instalments: int = Field(default=24, ge=2, le=LEGAL_MAX_TERM_MONTHS)
    max_term_months: int = Field(default=LEGAL_MAX_TERM_MONTHS, ge=1, le=LEGAL_MAX_TERM_MONTHS)
    max_interest_waiver_percent: int = Field(default=50, ge=0, le=100)
    waiver_pay_within_days: int = Field(default=30, ge=1, le=365)
    first_instalment_within_days: int = Field(default=31, ge=1, le=365)
    grace_days: int = Field(default=5, ge=0, le=60)
    # 民法典 art. 204 (期间的计算方法依照本法的规定, 但是法律另有规定或者当事人另有约定的除外): the parties may agree that a
    # due date on a rest day stands. False (the law's default, art. 203): a last day on a rest day moves to the next
    # working day. The plan's terms say which (Plan.terms), so the borrower is told what was agreed.
    keep_dates_on_rest_days: bool = False


class PromiseRules(_Strict):
    grace_days: int = Field(default=3, ge=0, le=60)
    max_days_ahead: int = Field(default=14, ge=1, le=365)
    keep_dates_on_rest_days: bool = False  # as PlanLimits: 民法典 art. 204 against art. 203
    self_service_min_percent: int = Field(
        default=10, ge=0, le=100, description="a borrower's own promise (their page, a reply) covers at least this share"
    )


class RiskRules(_Strict):
    """A restructured loan's class (商业银行金融资产风险分类办法 (2023), the restructuring articles; their numbers and
    wording are given in domain/risk.py with what could and could not be verified)."""

    # an agreed plan for a delinquent borrower is a restructuring (重组): the contract is changed in the borrower's favour
    # because of financial difficulty (a collection case is that difficulty); False: plans leave the class to DPD
    plans_are_restructurings: bool = True
    # the observation period (重组观察期): from the first payment day of the changed terms, at least this many months
    # and at least two payment periods
    observation_months: int = Field(default=12, ge=12, le=60)
    observation_periods: int = Field(default=2, ge=2, le=24)
    # during the observation period a restructured asset is at least this class; one that was non-performing before
    # it is not upgraded; a plan broken inside it makes the asset at least `broken_at_least`
    restructured_at_least: Literal["special_mention", "substandard"] = "special_mention"
    broken_at_least: Literal["substandard", "doubtful", "loss"] = "substandard"


class SelfServiceRules(_Strict):
    """The borrower's own page (borrower/, domain/selfservice.py) behind the bank's messages."""

    links: bool = Field(
        default=True,
        description="every SMS, email and letter to the borrower (and guarantor) carries the page's link; false: none does",
    )


class ReplyRules(_Strict):
    """What a borrower's SMS reply does by itself (app/replies.py); any other reply goes to a person's worklist."""

    # a reply that is exactly one of these keywords promises the whole amount due within that many days (at most
    # the promise rules' max_days_ahead); our SMS says so ("回复1：3日内还款")
    promise_keywords: dict[str, int] = Field(default={"1": 3})

    @field_validator("promise_keywords")
    @classmethod
    def _keywords(cls, v: dict[str, int]) -> dict[str, int]:
        for k, days in v.items():
            if not re.fullmatch(r"[0-9A-Za-z]{1,8}", k):
                raise ValueError(f"{k!r}: a keyword is 1-8 letters or digits")
            if not 1 <= days <= 60:
                raise ValueError(f"{k!r}: {days} days is outside 1..60")
        return v


class HoldRules(_Strict):
    max_hardship_days: int = Field(default=180, ge=1, le=730)


def _minutes(text: str) -> int:
    m = re.fullmatch(r"([01][0-9]|2[0-4]):([0-5][0-9])", text)
    if not m or int(m[1]) * 60 + int(m[2]) > 1440:
        raise ValueError(f"{text!r} is not a time of day HH:MM (00:00..24:00)")
    return int(m[1]) * 60 + int(m[2])


MAX_DAILY_CAP = 100
NEW_POLICY = {"new_policy": True}  # validation context of a policy read from its file (not a case's pinned copy)


def _new(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("new_policy"))


def _contact_channel(ch: str) -> None:
    if ch not in CONTACT_CHANNELS:
        raise ValueError(f"{ch} is not a contact channel (one of {', '.join(CONTACT_CHANNELS)})")


class ContactRules(_Strict):
    """When and how often a borrower may be contacted (all loans and channels of one borrower together)."""

    window_start: str = Field(default="08:00", description="local time, HH:MM")
    window_end: str = Field(default="21:00", description="local time, HH:MM; contact must start before it")
    timed_channels: list[str] = ["sms", "email", "call", "visit"]
    public_holidays: bool = Field(
        default=True,
        description="no contact on any rest day of an official break (the "
        "weekend days inside it included), from policies/calendars/; a year without a file "
        "refuses contact (calendar_missing)",
    )
    weekends: bool = Field(
        default=True, description="contact on Saturdays and Sundays; make-up working days (调休) always count as working days"
    )
    window_in_beijing_time: bool = Field(
        default=False,
        description="the window and the rest days hold on Beijing time "
        "(Asia/Shanghai) as well as in the borrower's recorded zone: every borrower of "
        "the policy is treated as a PRC borrower",
    )
    daily_caps: dict[str, Annotated[int, Field(ge=0)]] = {"sms": 2, "email": 2, "call": 3, "visit": 1, "letter": 2, "law_firm": 1}
    call_cap_7d: int = Field(default=7, ge=1, le=50, description="calls in any rolling 7 days")
    no_call_after_conversation_days: int = Field(default=7, ge=0, le=60, description="0 turns the rule off")
    min_minutes_between_contacts: int = Field(default=60, ge=0, le=1440)

    @field_validator("window_start", "window_end")
    @classmethod
    def _hhmm(cls, v: str) -> str:
        _minutes(v)
        return v

    @model_validator(mode="after")
    def _window(self) -> ContactRules:
        if _minutes(self.window_start) >= _minutes(self.window_end):
            raise ValueError(f"window_end: {self.window_end} is not after window_start {self.window_start}")
        return self

    # Checks newer than some running cases' pinned policies run only when a policy is read from its
    # file (parse_policy's context), never when a running case's input is decoded: an old case stays readable.
    @field_validator("timed_channels")
    @classmethod
    def _known_channels(cls, v: list[str], info: ValidationInfo) -> list[str]:
        if _new(info):
            for ch in v:
                _contact_channel(ch)
        return v

    @field_validator("daily_caps")
    @classmethod
    def _caps(cls, v: dict[str, int], info: ValidationInfo) -> dict[str, int]:
        for ch, cap in v.items():
            if _new(info):
                _contact_channel(ch)
                if cap > MAX_DAILY_CAP:
                    raise ValueError(f"{ch}: {cap} is more than {MAX_DAILY_CAP} a day")
        return v

    @property
    def window(self) -> tuple[int, int]:
        return _minutes(self.window_start), _minutes(self.window_end)


NoticeChannel = Literal["letter", "sms", "email"]


class LegalRules(_Strict):
    """The legal clocks' lengths (counted in domain/legal.py, which names each source)."""

    bureau_dispute_answer_days: int = Field(default=20, ge=1, le=60, description="征信业管理条例 art. 25")
    limitation_years: int = Field(default=3, ge=1, le=20, description="民法典 art. 188")
    enforcement_within_years: int = Field(default=2, ge=1, le=10, description="民事诉讼法 (2023) art. 250")
    payment_order_objection_days: int = Field(default=15, ge=1, le=60, description="民事诉讼法 (2023) art. 227")
    bureau_notice_days: int = Field(
        default=14,
        ge=1,
        le=90,
        description="days from the delivered notice to the credit "
        "report (征信业管理条例 art. 15: the borrower is told first; the notice letter says 14)",
    )
    notice_channels: list[NoticeChannel] = Field(
        default=["letter", "sms", "email"],
        min_length=1,
        description="the credit-bureau notice's channels, tried in order while one fails",
    )
    audit_retention_days: int = Field(default=730, ge=730, le=36500, description="audit records kept at least 2 years")

    @field_validator("notice_channels")
    @classmethod
    def _distinct_channels(cls, v: list[str]) -> list[str]:
        if len(set(v)) != len(v):
            raise ValueError("a channel is listed twice")
        return v


class Allocation(_Strict):
    order: list[Component] = ["fees", "interest", "principal"]
    overpayment_tolerance: str = Field(default="0", description="accepted above the balance, major units")

    @field_validator("overpayment_tolerance")
    @classmethod
    def _plain_amount(cls, v: str) -> str:
        if not re.fullmatch(r"[0-9]+(\.[0-9]+)?", v):
            raise ValueError(f"{v!r} is not a plain non-negative decimal amount such as '0' or '1.00'")
        return v

    @field_validator("order")
    @classmethod
    def _permutation(cls, v: list[str]) -> list[str]:
        if sorted(v) != ["fees", "interest", "principal"]:
            raise ValueError("must list fees, interest and principal, each exactly once")
        return v


class ApprovalRules(_Strict):
    """Four-eyes: what needs a second person, and how long a proposal waits for one."""

    waiver_percent_over: int = Field(default=20, ge=0, le=100, description="an interest waiver above this share")
    plain_max_instalments: int | None = Field(default=None, ge=1, le=60, description="more instalments need approval")
    plain_max_deferral_days: int | None = Field(default=None, ge=1, le=365, description="a longer deferral needs approval")
    expiry_days: int = Field(default=3, ge=1, le=30, description="an unanswered proposal is dropped after this")


class Urgency(_Strict):
    """A call task's urgency (domain/tasks.py `urgency`): points per month past due, per tenfold of the balance,
    per broken promise, and for a legal clock (limitation, objection window, enforcement) ending within
    `legal_within_days`. A collector's call list is ordered by it, most urgent first."""

    per_month_past_due: float = Field(default=1.0, ge=0, le=100)
    per_tenfold_balance: float = Field(default=1.0, ge=0, le=100)
    per_broken_promise: float = Field(default=2.0, ge=0, le=100)
    legal_clock: float = Field(default=3.0, ge=0, le=100)
    legal_within_days: int = Field(default=30, ge=1, le=365)


class AgentRules(_Strict):
    """Agent mode (domain/tasks.py): how long a task may wait, how often it is re-queued, how visits are booked."""

    call_due_hours: int = Field(
        default=8, ge=1, le=1440, description="a call task is worked within this (policy hours); then re-queued"
    )
    call_await_days: int = Field(
        default=3, ge=1, le=365, description="the case waits this long for a call task's outcome, then moves on"
    )
    visit_due_days: int = Field(default=2, ge=1, le=30, description="a visit not reported this long after its slot is re-queued")
    max_requeues: int = Field(default=2, ge=0, le=10, description="re-queues before the task waits out its timeout")
    visit_slot_minutes: int = Field(default=120, ge=30, le=480)
    urgency: Urgency = Urgency()


class RetentionRules(_Strict):
    """How long a borrower's contact details stay once their cases are closed (the retention job, workflows/jobs.py).

    PIPL (个人信息保护法) art. 19: personal information is kept no longer than its purpose needs; art. 47(1)(1)-(2):
    once the purpose is achieved or the retention period is over, it is deleted. A closed case's purpose is not over
    at closure: the borrower may still complain about, or sue over, how the case was collected, and the bank must
    answer with the record. The default keeps the contact details for that: three years after the last case of
    the person closed, the limitation period of such a claim (民法典 art. 188, counted as arts. 201-202 count it).
    Not the Anti-Money Laundering Law's record keeping (反洗钱法 2006 art. 19: customer identity records kept at least
    five years after the relationship ends; the 2024 revision makes it ten): that binds the bank's customer records
    in its core systems, not this copy kept for collections, which would otherwise outlive its purpose.
    A bank whose own record-keeping rule asks for longer names it here, with its source. Amounts, payments and
    the audit trail are never erased."""

    years: int = Field(default=3, ge=1, le=30, description="years after the last case of a person closed")
    source: str = Field(
        default="民法典 art. 188 (3-year limitation of a claim about the collection); PIPL arts. 19, 47 (then erased)",
        min_length=1,
        description="the rule the period comes from (law and article, or the bank's own rule)",
    )


class Policy(_Strict):
    name: str = Field(pattern=r"^[a-z][a-z0-9_-]*$")
    version: str = Field(min_length=1)
    description: str = ""
    day_seconds: int = Field(default=86400, ge=1, le=86400, description="86400 = real calendar; less compresses days (demo)")
    min_gap_days: int = Field(default=2, ge=0, le=90, description="least time between two steps")
    write_off_dpd: int = Field(default=720, ge=1, le=3650)
    steps: list[Step] = Field(min_length=1)
    allocation: Allocation = Allocation()
    plans: PlanLimits = PlanLimits()
    promise: PromiseRules = PromiseRules()
    holds: HoldRules = HoldRules()
    risk: RiskRules = RiskRules()
    replies: ReplyRules = ReplyRules()
    selfservice: SelfServiceRules = SelfServiceRules()
    contact: ContactRules = ContactRules()
    legal: LegalRules = LegalRules()
    approval: ApprovalRules = ApprovalRules()
    agent: AgentRules = AgentRules()
    retention: RetentionRules = RetentionRules()

    @model_validator(mode="after")
    def _ladder(self) -> Policy:
        keys = [s.key for s in self.steps]
        for i, s in enumerate(self.steps):
            if keys.count(s.key) > 1:
                raise ValueError(f"steps[{i}].key: {s.key!r} is used by more than one step")
            if i and s.dpd < self.steps[i - 1].dpd:
                raise ValueError(
                    f"steps[{i}].dpd: {s.dpd} is earlier than the step before it ({self.steps[i - 1].dpd}); steps run in order"
                )
            if "letter" in s.actions and not s.letter:
                raise ValueError(f"steps[{i}].letter: a step with a 'letter' action names its letter template")
            if s.requires == "judgment" and not any(a in p.actions for p in self.steps[:i] for a in ("lawsuit", "payment_order")):
                raise ValueError(f"steps[{i}].requires: needs a judgment but no earlier step files a lawsuit or payment order")
            if s.dpd >= self.write_off_dpd:
                raise ValueError(f"steps[{i}].dpd: {s.dpd} is not before write_off_dpd {self.write_off_dpd}")
        return self

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.model_dump(mode="json"), sort_keys=True).encode()).hexdigest()[:12]

    def step_index(self, key: str) -> int:
        return [s.key for s in self.steps].index(key)


# One decoded copy of each policy content per process (`shared`), at most this many contents
SHARED_POLICIES = 64
_shared: dict[tuple, list[Policy]] = {}


def shared(policy: Policy) -> Policy:
    """The process's one copy of a policy with this content: a case's pinned policy, decoded from its input, is
    swapped for it, so that a worker's cached cases hold each policy once, not once each (about 25 KiB of objects).
    Equal content is equal fields (==) and the same fields set (the version check reads `model_fields_set`); the
    models are frozen, so the copy cannot change under another case."""
    copies = _shared.setdefault((policy.name, policy.version, frozenset(policy.model_fields_set)), [])
    for found in copies:
        if found == policy:
            return found
    if sum(map(len, _shared.values())) < SHARED_POLICIES:
        copies.append(policy)
    return policy


def _first_error(source: str, exc: ValidationError) -> InvalidInput:
    err = exc.errors()[0]
    loc = ".".join(f"[{p}]" if isinstance(p, int) else str(p) for p in err["loc"]).replace(".[", "[")
    msg = err["msg"].removeprefix("Value error, ")
    head, sep, tail = msg.partition(": ")
    if sep and re.fullmatch(r"[a-z_][a-z0-9_]*(\.[a-z0-9_]+|\[[0-9]+\])*", head):  # a rule naming its own field
        loc, msg = (f"{loc}.{head}" if loc else head), tail
    return InvalidInput(f"{source}: {loc or 'policy'}", msg)


def parse_policy(data: dict, source: str = "policy") -> Policy:
    try:
        return Policy.model_validate(data, context=NEW_POLICY)
    except ValidationError as exc:
        raise _first_error(source, exc) from None


def load_policy_file(path: str | Path) -> Policy:
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InvalidInput(str(path), "no such policy file") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InvalidInput(str(path), f"not valid TOML: {exc}") from None
    except OSError as exc:  # a directory, no permission, ...
        raise InvalidInput(str(path), f"cannot read the policy file: {exc.strerror or exc}") from None
    return parse_policy(data, str(path))


def load_policy(name_or_path: str) -> Policy:
    """A policy by name (policies/NAME.toml) or by path to a TOML file."""
    if name_or_path.endswith(".toml") or "/" in name_or_path:
        return load_policy_file(name_or_path)
    path = POLICY_DIR / f"{name_or_path}.toml"
    if not path.exists():
        known = ", ".join(sorted(p.stem for p in POLICY_DIR.glob("*.toml")))
        raise InvalidInput("policy", f"no policy named {name_or_path!r} (known: {known})")
    return load_policy_file(path)
