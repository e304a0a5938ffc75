"""Worklists (from the database, filterable by loan id and paged), the case timeline in business
language, and the legal clocks of a case with their sources."""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select

from console.i18n import N_
from db import jobs
from db.tables import CaseRow, ContactRow, EventRow, HoldRow, InboundMessageRow, PaymentRow, RejectedInputRow, utcnow
from domain import display
from domain.dates import local_date, local_midnight

PAGE = 25


FLOOR_ZONE = "Asia/Shanghai"  # the collections floor's day: what "today" and "yesterday" mean in a worklist


@dataclass(frozen=True)
class Worklist:
    title: str
    columns: tuple[str, ...]
    query: Callable[..., Any] | None  # (today) -> a select whose first column is the loan id (None: see pages)
    explain: str
    link: bool = True  # the first column links to the case (False: a list of no case, such as the jobs' notices)

    def fetch(self, repo, sess, q: str, page: int) -> tuple[list[tuple], bool]:
        today = local_date(utcnow(), FLOOR_ZONE)  # the floor's day, not UTC's (Beijing's begins at 16:00 UTC)
        stmt = self.query(today)
        loan_col = stmt.selected_columns[0]
        if q:
            stmt = stmt.where(loan_col.like(q.replace("\\", "").replace("%", "").replace("_", "\\_") + "%", escape="\\"))
        with repo.session() as s:
            rows = [tuple(r) for r in s.execute(stmt.limit(PAGE + 1).offset((page - 1) * PAGE))]
        return rows[:PAGE], len(rows) > PAGE


def _day(d: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The floor's day `d`, midnight to midnight in FLOOR_ZONE, as UTC instants."""
    start = local_midnight(d, FLOOR_ZONE)
    return start, local_midnight(d + dt.timedelta(days=1), FLOOR_ZONE)


def _promises_due(today: dt.date):
    """The latest promise of each open case, when it falls due today (its detail reads '... by YYYY-MM-DD')."""
    e = EventRow
    latest = (
        select(e.workflow_id, func.max(e.id).label("id"))
        .where(e.kind.in_(("promise", "promise_kept", "promise_broken", "promise_superseded")))
        .group_by(e.workflow_id)
        .subquery()
    )
    return (
        select(e.loan_id, e.detail, e.at, CaseRow.stage, CaseRow.outstanding, CaseRow.currency)
        .join(latest, latest.c.id == e.id)
        .join(CaseRow, CaseRow.workflow_id == e.workflow_id)
        .where(e.kind == "promise", e.detail.like(f"% by {today.isoformat()}%"), CaseRow.status != "closed")
        .order_by(CaseRow.outstanding.desc(), e.loan_id)
    )


def _promises_broken(today: dt.date):
    """Promises the case found broken yesterday or today (the floor's days): the morning's call-backs, and a promise
    that broke at a borrower's midnight this evening, without waiting for tomorrow's list."""
    e = EventRow
    start, _ = _day(today - dt.timedelta(days=1))
    _, end = _day(today)
    return (
        select(e.loan_id, e.detail, e.at, CaseRow.stage, CaseRow.outstanding, CaseRow.currency)
        .join(CaseRow, CaseRow.workflow_id == e.workflow_id)
        .where(e.kind == "promise_broken", e.at >= start, e.at < end)
        .order_by(e.at.desc(), e.loan_id)
    )


def _reviews(_today: dt.date):
    h = HoldRow
    return (
        select(h.loan_id, h.kind, h.placed_at, h.reference, CaseRow.stage, CaseRow.status)
        .join(CaseRow, CaseRow.workflow_id == h.workflow_id)
        .where(h.kind.in_(("complaint", "dispute")), h.released_at.is_(None))
        .order_by(h.placed_at, h.loan_id)
    )


def _court(_today: dt.date):
    """Open cases at litigation or enforcement, with their last court event (if any)."""
    e = EventRow
    last = select(e.workflow_id, func.max(e.id).label("id")).where(e.kind == "court_outcome").group_by(e.workflow_id).subquery()
    ev = EventRow.__table__.alias("last_court")
    return (
        select(CaseRow.loan_id, CaseRow.stage, ev.c.detail, ev.c.at, CaseRow.outstanding, CaseRow.currency)
        .outerjoin(last, last.c.workflow_id == CaseRow.workflow_id)
        .outerjoin(ev, ev.c.id == last.c.id)
        .where(CaseRow.stage.in_(("litigation", "enforcement")), CaseRow.status != "closed")
        .order_by(CaseRow.updated_at, CaseRow.loan_id)
    )


def _undeliverable(today: dt.date):
    c = ContactRow
    since, _ = _day(today - dt.timedelta(days=30))
    return (
        select(c.loan_id, c.step, c.channel, c.action, c.reason, c.updated_at)
        .where(c.status == "failed", c.updated_at >= since)
        .order_by(c.updated_at.desc(), c.loan_id)
    )


def _inputs_rejected(today: dt.date):
    """Signalled inputs the cases refused or could not read in the last 7 days, newest first: each is a payment,
    plan or other input a bank system believes it sent, which someone must correct and send again."""
    r = RejectedInputRow
    since, _ = _day(today - dt.timedelta(days=7))
    return (
        select(r.loan_id, r.signal, r.input_id, r.field, r.reason, r.sender, r.received_at)
        .where(r.received_at >= since)
        .order_by(r.received_at.desc(), r.id.desc())  # type: ignore[union-attr]
    )


def _replies(today: dt.date):
    """Borrowers' SMS replies no keyword acted on in the last 14 days, newest first: each is someone waiting to hear
    back (app/replies.py); one that matched no case has no loan."""
    m = InboundMessageRow
    since, _ = _day(today - dt.timedelta(days=14))
    return (
        select(m.loan_id, m.text, m.sender_tail, m.result, m.received_at)
        .where(m.status == "needs_person", m.received_at >= since)
        .order_by(m.received_at.desc(), m.id.desc())  # type: ignore[union-attr]
    )


def _unapplied(_today: dt.date):
    """Payments received for loans with no open case (kept, never dropped), oldest first: each waits for a person to
    apply it to a case that opens (apply-unapplied) or to return it."""
    p = PaymentRow
    return (
        select(p.loan_id, p.payment_id, p.amount, p.paid_at, p.note, p.currency)  # currency last: the money filter reads it
        .where(p.status == "unapplied")
        .order_by(p.recorded_at, p.payment_id)
    )


def _compliance(_today: dt.date):
    """The daily jobs' latest notice of each kind (db/jobs.py): next year's holiday calendar missing (from 1 November),
    the retention job's erasures, newest first."""
    e = EventRow
    latest = (
        select(func.max(e.id).label("id"))
        .where(e.kind.in_((jobs.CALENDAR_MISSING, jobs.RETENTION_ERASED)), e.loan_id == "")
        .group_by(e.kind)
        .subquery()
    )
    return select(e.kind, e.detail, e.at).join(latest, latest.c.id == e.id).order_by(e.at.desc(), e.kind)


def _latest_event_is(repo, prefix: str, kinds: tuple[str, ...], q: str, limit: int) -> list[str]:
    """Loans of open cases whose latest event of kind `prefix`* is one of `kinds`, oldest first."""
    e = EventRow
    latest = (
        select(e.workflow_id, func.max(e.id).label("id"))
        .where(e.kind.like(prefix.replace("_", "\\_") + "%", escape="\\"))
        .group_by(e.workflow_id)
        .subquery()
    )
    stmt = (
        select(e.loan_id)
        .join(latest, latest.c.id == e.id)
        .join(CaseRow, CaseRow.workflow_id == e.workflow_id)
        .where(e.kind.in_(kinds), CaseRow.status != "closed")
        .order_by(e.at, e.loan_id)
        .limit(limit)
    )
    if q:
        stmt = stmt.where(e.loan_id.startswith(q, autoescape=True))
    with repo.session() as s:
        return list(s.scalars(stmt))


def pending_proposals(repo, q: str = "", limit: int = 1000) -> list[str]:
    """Loans whose case's latest approval event is a proposal (not yet approved, rejected or expired), oldest
    first: the candidates for the approvals worklist, from the database rather than Temporal visibility."""
    return _latest_event_is(repo, "approval_", ("approval_proposed",), q, limit)


LISTS: dict[str, Worklist] = {
    "approvals": Worklist(
        N_("Approvals waiting for me"),
        (N_("loan"), N_("kind"), N_("proposal"), N_("proposed by"), N_("at"), N_("expires")),
        None,
        N_("four-eyes proposals whose kind your roles may approve, other than your own"),
    ),
    "promises-due": Worklist(
        N_("Promises due today"),
        (N_("loan"), N_("promise"), N_("made"), N_("stage"), N_("outstanding")),
        _promises_due,
        N_("the latest promise of each open case, when it falls due today"),
    ),
    "promises-broken": Worklist(
        N_("Promises broken since yesterday"),
        (N_("loan"), N_("promise"), N_("broken at"), N_("stage"), N_("outstanding")),
        _promises_broken,
        N_("promises the case found broken yesterday or today (the floor's days, Beijing time), newest first"),
    ),
    "reviews": Worklist(
        N_("Complaints and disputes to review"),
        (N_("loan"), N_("hold"), N_("placed"), N_("reference"), N_("stage"), N_("status")),
        _reviews,
        N_("complaint and dispute holds not yet released"),
    ),
    "court": Worklist(
        N_("Court events awaiting an outcome"),
        (N_("loan"), N_("stage"), N_("last court event"), N_("at"), N_("outstanding")),
        _court,
        N_("open cases at litigation or enforcement, oldest first, with their last court event"),
    ),
    "undeliverable": Worklist(
        N_("Notices undeliverable"),
        (N_("loan"), N_("step"), N_("channel"), N_("action"), N_("reason"), N_("at")),
        _undeliverable,
        N_("contacts that failed in the last 30 days"),
    ),
    "unapplied": Worklist(
        N_("Unapplied payments"),
        (N_("loan"), N_("payment"), N_("amount"), N_("paid at"), N_("note")),
        _unapplied,
        N_(
            "payments received while the loan had no open case: kept, not applied; apply them once the case is open "
            "(apply-unapplied) if its opening balance does not count them already"
        ),
    ),
    "inputs-rejected": Worklist(
        N_("Inputs rejected"),
        (N_("loan"), N_("signal"), N_("input id"), N_("field"), N_("reason"), N_("sent by"), N_("at")),
        _inputs_rejected,
        N_(
            "signalled inputs (payments, plans, holds, outcomes) the case refused or could not read in the last 7 days: "
            "nothing was applied; correct them at the source and send them again"
        ),
    ),
    "replies": Worklist(
        N_("SMS replies"),
        (N_("loan"), N_("reply"), N_("from (last 4 digits)"), N_("why not acted on"), N_("at")),
        _replies,
        N_("borrowers' replies to our SMS that no keyword acted on, in the last 14 days: read them and answer the borrower"),
    ),
    "compliance": Worklist(
        N_("Compliance notices"),
        (N_("notice"), N_("detail"), N_("at")),
        _compliance,
        N_("the daily jobs' latest notice of each kind: a holiday calendar missing (from 1 November), contact details erased"),
        link=False,
    ),
}
PLANS_IN_ARREARS = Worklist(
    N_("Plans in arrears"),
    (
        N_("loan"),
        N_("due so far"),
        N_("paid under the plan"),
        N_("oldest unpaid instalment"),
        N_("broken after"),
        N_("outstanding total"),
    ),
    None,
    N_("active plans with an instalment past its due date and not covered by payments (inside its grace days)"),
)
NAV = (
    [(k, v.title) for k, v in LISTS.items()][:3]
    + [("plans-in-arrears", PLANS_IN_ARREARS.title)]
    + [(k, v.title) for k, v in LISTS.items()][3:]
)


# The columns that hold amounts: right-aligned, shown as money, added up in the table's total row
MONEY_COLUMNS = frozenset({"outstanding", "amount", "due so far", "paid under the plan", "outstanding total"})


def money_totals(wl: Worklist, rows: list[tuple]) -> dict[str, dict[str, int]]:
    """The page's total of each money column, per currency (a row's currency is its last value)."""
    from domain.errors import InvalidInput
    from domain.money import parse_amount

    out: dict[str, dict[str, int]] = {}
    for i, col in enumerate(wl.columns):
        if col not in MONEY_COLUMNS:
            continue
        sums: dict[str, int] = {}
        for r in rows:
            v, cur = r[i], (r[-1] or "CNY")
            if isinstance(v, str):
                try:
                    v = parse_amount(v, cur, allow_zero=True)
                except InvalidInput:
                    continue
            if isinstance(v, int):
                sums[cur] = sums.get(cur, 0) + v
        out[col] = sums
    return out


def active_plans(repo, q: str = "", limit: int = 1000) -> list[str]:
    """Open cases whose latest plan event agreed (or reopened) a plan: the candidates for the arrears worklist."""
    return _latest_event_is(repo, "plan_", ("plan_agreed", "plan_reopened"), q, limit)


def plan_arrears(status, today: dt.date) -> tuple | None:
    """The arrears worklist's row for a case status (domain.plans.plan_arrears), amounts in major units."""
    from domain.money import format_amount, parse_amount
    from domain.plans import plan_arrears as arrears

    paid = parse_amount(status.total_paid, status.currency, "total_paid", allow_zero=True)
    found = arrears(status.plan, paid, today)
    if found is None:
        return None
    due, paid_under, oldest, deadline = found
    cur = status.currency
    total = status.outstanding.get("total", "")
    return (format_amount(due, cur), format_amount(paid_under, cur), oldest, deadline, total, cur)


# --------------------------------------------------------------------------- the timeline

# The timeline's phrases: the English display names of the event kinds (domain/display.py, with their Chinese)
PHRASES = {k: v[1] for k, v in display.EVENTS.items()}


# Inputs that a person makes (an operator, or the bank's payment feed for payments): their actor is shown,
# and named "not recorded" where the event has none (cases from before actors were recorded).
HUMAN_KINDS = {
    "task_reassigned",
    "promise",
    "plan_agreed",
    "hold_placed",
    "hold_released",
    "call_outcome",
    "visit_outcome",
    "court_outcome",
    "write_off_confirmed",
    "contact_details_viewed",
    "payment_reversed",
    "approval_proposed",
    "approval_approved",
    "approval_rejected",
}


OPERATOR_ID = re.compile(r"\bop-[0-9a-f]{12}\b")


def actor_parts(actor: str) -> tuple[str, str]:
    """An event's actor as (who, role): "op-...:collector", "system:<identity>", "borrower:<loan>:self_service"."""
    if actor.startswith("borrower:") and actor.count(":") >= 2:
        op, _, role = actor.rpartition(":")
        return op, role
    op, _, role = actor.partition(":")
    return op, role


def business(e: EventRow, names: dict[str, str]) -> dict[str, Any]:
    """One case event as a person reads it: what happened, the detail, and who (a human decision) or the system."""
    who = None
    who_name, who_role = None, ""
    if e.actor:
        op, role = actor_parts(e.actor)
        who = f"{names.get(op, op)} ({role})" if role else names.get(op, op)
        who_name, who_role = names.get(op, op), role
    human = (bool(e.actor) and not e.actor.startswith("system")) or e.kind in HUMAN_KINDS
    if who is None:
        who = N_("an operator (not recorded)") if e.kind in HUMAN_KINDS else N_("the case (automatic)")
    return {
        "who_name": who_name,
        "who_role": who_role,
        "at": e.at,
        "kind": e.kind,
        "what": PHRASES.get(e.kind, e.kind.replace("_", " ").capitalize()),
        # the workflow's text names operators by id (names never enter its history); a person reads their names
        "detail": OPERATOR_ID.sub(lambda m: names.get(m.group(0), m.group(0)), e.detail),
        "who": who,
        "human": human,
        "refused": e.kind in ("contact_refused", "contact_failed", "promise_broken", "plan_broken", "input_rejected"),
    }


# --------------------------------------------------------------------------- legal clocks


def legal_clocks(status) -> list[dict[str, Any]]:
    """The case's legal clocks with the source each one counts by (from the case's status query): the
    clocks the case reports (`legal_clocks`, each naming its law and article), else the limitation end;
    the credit-report dispute answer; legal refusals of the gate; the risk class and its basis."""
    out = []
    for c in getattr(status, "legal_clocks", None) or []:
        what = c.name.replace("_", " ").capitalize() + (" opens" if c.kind == "opens" else " ends")
        rule, edge = c.name, c.kind
        note = "; ".join(x for x in (c.note, f"restarted on {c.restarted_on} ({c.restart_cause})" if c.restarted_on else "") if x)
        out.append({"what": what, "rule": rule, "edge": edge, "at": c.at, "day": c.last_day, "source": c.source, "note": note})
    if not out and status.limitation_ends is not None:
        out.append(
            {
                "what": "Limitation period ends",
                "rule": "limitation_period",
                "edge": "ends",
                "at": status.limitation_ends,
                "day": None,
                "note": "",
                "source": "Civil Code art. 188 (three years; restarted by a payment or acknowledgement, art. 195)",
            }
        )
    if status.dispute_answer_due is not None:
        out.append(
            {
                "what": "Answer to the credit-report dispute due",
                "rule": None,
                "edge": N_("Answer to the credit-report dispute due"),
                "at": status.dispute_answer_due,
                "day": None,
                "note": "",
                "source": "征信业管理条例 (Credit Reporting Regulation) art. 25",
            }
        )
    for d in status.decisions:
        if d.rule in ("limitation_period", "enforcement_deadline", "payment_order_objection", "objection_window"):
            out.append(
                {
                    "what": d.rule.replace("_", " ").capitalize(),
                    "rule": d.rule,
                    "edge": "",
                    "at": d.retry_at or d.at,
                    "day": None,
                    "note": "",
                    "source": d.reason,
                }
            )
    if status.risk_basis:
        out.append(
            {
                "what": f"Risk class: {status.risk_class}",
                "rule": None,
                "edge": N_("Risk class"),
                "risk": status.risk_class,
                "at": None,
                "day": None,
                "note": "",
                "source": status.risk_basis,
            }
        )
    return out


def log_view(repo, *, loan_id: str, actor: str, detail: str) -> None:
    """A contact-details view into the case's audit trail, with the actor (operator id:role)."""
    with repo.session() as s:
        s.add(
            EventRow(
                workflow_id=f"loan-{loan_id}",
                loan_id=loan_id,
                at=utcnow(),
                kind="contact_details_viewed",
                detail=detail,
                cause=json.dumps({"source": "console"}),
                actor=actor,
            )
        )
        s.commit()
