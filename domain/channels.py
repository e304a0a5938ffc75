"""The channel registry: one row per action a case can take through a channel provider.

The single source for what used to be spread over parallel dicts and copies: which activity runs the
action (its name, recorded in every running case's history, so a name never changes), the gateway
channel and path it goes to, the borrower record field it cannot go without, whether a loan's
guarantor may receive it, and the message templates it renders (activities/templates/<lang>/<name>.j2).

Pure data, no I/O: the workflow (in its sandbox), the activities, the bench stubs and the domain all
read it. tests/test_channels.py checks it against the policy's `Action` literal, the templates on
disk and the sandbox gateway's paths.

Adding a channel: a row here (and its action in `domain.policy.Action` if steps name it), its
templates, its request body in activities/messages.py, and a test.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, cast, get_args

from domain.policy import Action

# Actions no step names: the case takes them itself when it closes (undo a credit report, recall an agency).
ClosingAction = Literal["bureau_correction", "agency_recall"]
ContactField = Literal["phone", "email", "address"]
# The credit-bureau notice by the next channel the policy names when the letter failed (domain.legal.NOTICE_ACTIONS).
NoticeAction = Literal["bureau_notice_sms", "bureau_notice_email"]
# A step's action addressed to the loan's guarantor (the rows with guarantor=True).
GuarantorAction = Literal["letter@guarantor", "law_firm@guarantor"]
# What a ChannelRequest's `action` may be.
ActionName = Action | ClosingAction | NoticeAction | GuarantorAction
ACTION_NAMES: frozenset[str] = frozenset(a for part in get_args(ActionName) for a in get_args(part))


def action_name(value: str) -> ActionName:
    """`value` as an ActionName (a step's actions are composed as text: `letter@guarantor`); ValueError names one
    that is none, as the request's validation would."""
    if value not in ACTION_NAMES:
        raise ValueError(f"{value!r} is not an action a channel request may carry (domain/channels.py ActionName)")
    return cast(ActionName, value)  # checked against the Literal's own values just above


# Activity names: recorded in the history of every running case. Never rename one; add a new one.
SEND_SMS = "send_sms"
SEND_EMAIL = "send_email"
SEND_LETTER = "send_letter"
PLACE_CALL = "place_call"
SCHEDULE_FIELD_VISIT = "schedule_field_visit"
INSTRUCT_LAW_FIRM = "instruct_law_firm"
CREDIT_BUREAU = "credit_bureau"
COLLECTION_AGENCY = "collection_agency"
COURT_FILING = "court_filing"

# The other activities of a case (not channels): shared by the activity definitions, the workflow and the stubs.
CHECK_CONTACTS = "check_contacts"
RECORD_HOLD = "record_hold"
RECORD_PAYMENT = "record_payment"
RECORD_REVERSAL = "record_reversal"
RECORD_EVENTS = "record_events"
RECORD_CASE_CLOSED = "record_case_closed"
PROJECT_CASE = "project_case"  # the case row the console and the worklists read
OPEN_TASK = "open_task"  # agent mode (domain/tasks.py)
REQUEUE_TASK = "requeue_task"
END_TASKS = "end_tasks"
RECORD_REJECTED_INPUT = "record_rejected_input"  # a signalled input the case refused or could not read
CALENDAR_YEARS = "calendar_years"  # the calendar years in force, recorded by the case (domain.case.record_calendars)
RUN_STEP = "run_step"  # a step's gate check and first attempt at each of its sends, in two transactions

GUARANTOR_SUFFIX = "@guarantor"


@dataclass(frozen=True)
class ChannelAction:
    action: str  # an Action (or ClosingAction)
    activity: str  # the activity that runs it
    channel: str  # the gateway channel (and the contact rules' channel name)
    path: str  # the gateway's POST path
    needs: ContactField | None  # the recipient's record field the request cannot go without
    guarantor: bool  # a step with notify_guarantor also sends it to the loan's guarantor
    templates: tuple[str, ...]  # activities/templates/<lang>/<name>.j2, in both languages
    kind: str | None = None  # the request's "kind", where the channel carries several actions


REGISTRY: tuple[ChannelAction, ...] = (
    ChannelAction("sms", SEND_SMS, "sms", "/v1/sms", "phone", False, ("sms",)),
    ChannelAction("email", SEND_EMAIL, "email", "/v1/email", "email", False, ("email_subject", "email_body")),
    ChannelAction(
        "letter",
        SEND_LETTER,
        "letter",
        "/v1/letters",
        "address",
        True,
        ("letter_reminder_notice", "letter_overdue_letter", "letter_agency_notice", "guarantor_prefix"),
    ),
    ChannelAction("call", PLACE_CALL, "call", "/v1/calls", "phone", False, ("call_script",)),
    ChannelAction("visit", SCHEDULE_FIELD_VISIT, "visit", "/v1/visits", "address", False, ("visit_notes",)),
    ChannelAction(
        "law_firm", INSTRUCT_LAW_FIRM, "law_firm", "/v1/law-firm", "address", True, ("letter_lawyers_letter", "guarantor_prefix")
    ),
    ChannelAction(
        "bureau_notice", SEND_LETTER, "letter", "/v1/letters", "address", False, ("letter_bureau_notice",), kind="bureau_notice"
    ),
    ChannelAction("bureau_notice_sms", SEND_SMS, "sms", "/v1/sms", "phone", False, ("sms_bureau_notice",), kind="bureau_notice"),
    ChannelAction(
        "bureau_notice_email",
        SEND_EMAIL,
        "email",
        "/v1/email",
        "email",
        False,
        ("email_subject_bureau_notice", "letter_bureau_notice"),
        kind="bureau_notice",
    ),
    ChannelAction("bureau_report", CREDIT_BUREAU, "credit_bureau", "/v1/credit-bureau", None, False, (), kind="report"),
    ChannelAction("bureau_correction", CREDIT_BUREAU, "credit_bureau", "/v1/credit-bureau", None, False, (), kind="correction"),
    ChannelAction("agency_place", COLLECTION_AGENCY, "agency", "/v1/agency", None, False, (), kind="place"),
    ChannelAction("agency_recall", COLLECTION_AGENCY, "agency", "/v1/agency", None, False, (), kind="recall"),
    ChannelAction("lawsuit", COURT_FILING, "court", "/v1/court", "address", False, (), kind="lawsuit"),
    ChannelAction("payment_order", COURT_FILING, "court", "/v1/court", "address", False, (), kind="payment_order"),
    ChannelAction("enforcement", COURT_FILING, "court", "/v1/court", "address", False, (), kind="enforcement"),
)

BY_ACTION: dict[str, ChannelAction] = {r.action: r for r in REGISTRY}
STEP_ACTIONS: tuple[str, ...] = get_args(Action)
CLOSING_ACTIONS: tuple[str, ...] = get_args(ClosingAction)
NOTICE_ACTIONS: tuple[str, ...] = get_args(NoticeAction)
# one activity per name, in registry order (several actions may share one: `action` tells which)
ACTIVITIES: tuple[str, ...] = tuple(dict.fromkeys(r.activity for r in REGISTRY))
GUARANTOR_ACTIONS: frozenset[str] = frozenset(r.action for r in REGISTRY if r.guarantor)


def base_action(action: str) -> str:
    """`letter@guarantor` -> `letter`: the same channel, addressed to the guarantor."""
    return action.split("@", 1)[0]


def for_guarantor(action: str) -> bool:
    return action.endswith(GUARANTOR_SUFFIX)


def row(action: str) -> ChannelAction:
    """The registry row of an action (`letter@guarantor` included); KeyError names an unknown one."""
    try:
        return BY_ACTION[base_action(action)]
    except KeyError:
        raise KeyError(f"{action!r} is not in the channel registry (domain/channels.py)") from None


def channel_of(action: str) -> str:
    return row(action).channel


def activity_of(action: str) -> str:
    return row(action).activity
