"""The collections floor's use cases over agent-mode tasks (domain/tasks.py): my tasks, click-to-call, the outcome.

**Click to call.** When a collector opens a call task, the contact gate is asked *at that moment* for that
borrower, with the rules the case is pinned to (kept on the task) and the borrower's contact ledger across all
their loans: the same `domain.compliance.decide` and the same locked transaction (db.repo.GateStore) as a
machine's send. Only if it allows is the phone number shown and the attempt recorded in the ledger with the
actor, so that caps, spacing and the window hold for people as they do for machines. Refused: the reason and
when the gate opens again.

**The outcome** goes to the case through the same update as the CLI's and the API's (`record_outcome`), naming
the task; the case ends the task, and a promise in it pauses the case as any promise does.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import case, func, or_, update
from sqlmodel import col, select
from temporalio.client import Client

from access.permissions import current, require
from app.errors import BadInput, NotFound
from app.inputs import send_update
from db.repo import GateRequest, GateStore, rules_decider
from db.tables import BorrowerRow, ContactRow, EventRow, TaskRow, table_of, utcnow
from domain.dates import zone
from domain.models import CALL_OUTCOMES, VISIT_OUTCOMES
from domain.money import format_amount
from domain.policy import ContactRules
from domain.tasks import live_dpd

PAGE = 25
MAX_ID = 2**31 - 1  # a task id is a 32-bit integer column on every database


def _task_row(s, task_id: int) -> TaskRow:
    t = s.get(TaskRow, task_id) if 1 <= task_id <= MAX_ID else None
    if t is None:
        raise NotFound("task_id", f"no task {task_id}")
    return t


class TaskView(BaseModel):
    id: int
    loan_id: str
    action: str
    status: str
    team: str
    assignee: str | None
    priority: int
    urgency: int = 0
    due_at: dt.datetime
    slot_start: dt.datetime | None
    slot_end: dt.datetime | None
    city: str
    district: str
    dpd: int
    outstanding: str
    requeues: int
    attempts: int
    outcome: str | None
    overdue: bool


def _day_seconds(t: TaskRow) -> int:
    try:
        return int(json.loads(t.gate_rules or "{}").get("day_seconds") or 86400)
    except (ValueError, TypeError):
        return 86400


def _view(t: TaskRow, now: dt.datetime) -> TaskView:
    assert t.id is not None
    return TaskView(
        id=t.id,
        loan_id=t.loan_id,
        action=t.action,
        status=t.status,
        team=t.team,
        assignee=t.assignee,
        priority=t.priority,
        urgency=t.urgency,
        due_at=t.due_at,
        slot_start=t.slot_start,
        slot_end=t.slot_end,
        city=t.city,
        district=t.district,
        dpd=live_dpd(t.dpd, t.created_at, now, _day_seconds(t)),  # as of now, not when the task was opened
        outstanding=format_amount(t.outstanding_minor, "CNY"),
        requeues=t.requeues,
        attempts=t.attempts,
        outcome=t.outcome,
        overdue=t.status == "open" and t.due_at < now,
    )


def my_tasks(
    repo,
    *,
    assignee: str | None = None,
    day: dt.date | None = None,
    action: str | None = None,
    page: int = 1,
    tz: str = "Asia/Shanghai",
    now: dt.datetime | None = None,
) -> tuple[list[TaskView], bool]:
    """A collector's open tasks for a day (default today, in `tz`): every open call (by priority, then due time;
    an overdue one is marked) and the day's visits, ordered by district, then slot, so that a round
    can be walked. `assignee` defaults to the caller; a supervisor may name anyone ("" for unassigned)."""
    require("tasks.list")
    caller = current()
    if assignee is None:
        assignee = caller.name or caller.operator_id
    elif assignee != (caller.name or caller.operator_id) and not caller.may("tasks.manage"):
        raise BadInput("assignee", "only a supervisor may read another operator's tasks")
    if action not in (None, "", "call", "visit"):
        raise BadInput("action", f"{action!r} is not a task action (call or visit)")
    now = now or utcnow()
    day = day or now.astimezone(zone(tz)).date()
    start = dt.datetime.combine(day, dt.time(0), tzinfo=zone(tz))
    end = start + dt.timedelta(days=1)
    with repo.session() as s:
        q = select(TaskRow).where(col(TaskRow.status) == "open")
        q = q.where(col(TaskRow.assignee).is_(None)) if assignee == "" else q.where(col(TaskRow.assignee) == assignee)
        calls = (col(TaskRow.action) == "call") & (col(TaskRow.created_at) < end)
        visits = (col(TaskRow.action) == "visit") & (col(TaskRow.slot_start) >= start) & (col(TaskRow.slot_start) < end)
        q = q.where(calls if action == "call" else visits if action == "visit" else or_(calls, visits))
        visit = col(TaskRow.action) == "visit"
        q = q.order_by(
            col(TaskRow.action),  # calls, then the day's visits
            case((visit, col(TaskRow.district)), else_=""),  # a visit round walks district by district
            case((visit, 0), else_=-col(TaskRow.urgency)),  # calls by the policy's urgency, highest first
            func.coalesce(col(TaskRow.slot_start), col(TaskRow.due_at)),
            col(TaskRow.id),
        )
        rows = list(s.exec(q.offset((max(page, 1) - 1) * PAGE).limit(PAGE + 1)).all())
    views = [_view(t, now) for t in rows[:PAGE]]
    return views, len(rows) > PAGE


def task(repo, task_id: int) -> TaskView:
    require("tasks.list")
    with repo.session() as s:
        return _view(_task_row(s, task_id), utcnow())


def _open_task(repo, task_id: int, action: str | None = None) -> TaskRow:
    with repo.session() as s:
        t = _task_row(s, task_id)
    if t.status != "open":
        raise BadInput("task_id", f"task {task_id} is {t.status}; nothing was changed")
    if action is not None and t.action != action:
        raise BadInput("task_id", f"task {task_id} is a {t.action} task, not a {action} task")
    caller = current()
    if t.assignee not in (None, caller.name) and not caller.may("tasks.manage"):
        raise BadInput("task_id", f"task {task_id} is assigned to {t.assignee}; ask a supervisor to re-assign it")
    return t


class CallOpened(BaseModel):
    task_id: int
    loan_id: str
    allowed: bool
    rule: str
    reason: str
    retry_at: dt.datetime | None = Field(default=None, description="refused: when the gate may allow a call again")
    phone: str | None = Field(default=None, description="shown only when the gate allows the call")
    name: str | None = None
    attempt: int = 0


def open_call(repo, task_id: int, now: dt.datetime | None = None) -> CallOpened:
    """Click to call: the gate decides now; allowed, the number is shown and the attempt recorded with the actor."""
    actor = require("task.call")
    t = _open_task(repo, task_id, "call")
    assert t.id is not None
    pinned = json.loads(t.gate_rules or "{}")
    if not pinned.get("rules"):
        raise BadInput("task_id", f"task {task_id} carries no contact rules; it cannot be called from the console")
    rules = ContactRules.model_validate(pinned["rules"])
    day_seconds = int(pinned.get("day_seconds") or 86400)
    now = now or utcnow()
    attempt = t.attempts + 1
    request = GateRequest(
        idempotency_key=f"task:{t.id}:call:{attempt}",
        workflow_id=t.workflow_id,
        loan_id=t.loan_id,
        step=f"task-{t.id}-{attempt}",  # each attempt a bundle of its own: spacing counts between attempts
        action="call",
        channel="call",
    )

    [d] = GateStore(repo).check(t.borrower_id, now, [request], rules_decider(now, rules, day_seconds))
    who = f"{actor.operator_id}:{actor.role}"
    contacts, tasks_ = table_of(ContactRow), table_of(TaskRow)
    with repo.session() as s:
        b = s.get(BorrowerRow, t.borrower_id)
        if d.allowed:
            # the call is placed: a contact in the ledger (caps and spacing count it), by this person
            s.execute(
                update(contacts)
                .where(contacts.c.idempotency_key == request.idempotency_key)
                .values(status="delivered", actor=who, attempts=1, updated_at=utcnow())
            )
            s.execute(update(tasks_).where(tasks_.c.id == t.id).values(attempts=attempt, updated_at=utcnow()))
            s.add(
                EventRow(
                    workflow_id=t.workflow_id,
                    loan_id=t.loan_id,
                    at=now,
                    kind="contact_details_viewed",
                    detail=f"phone shown for call task {t.id} (attempt {attempt})",
                    cause=json.dumps({"source": "click-to-call"}),
                    actor=who,
                )
            )
        s.commit()
    if not d.allowed:
        return CallOpened(task_id=t.id, loan_id=t.loan_id, allowed=False, rule=d.rule, reason=d.reason, retry_at=d.retry_at)
    return CallOpened(
        task_id=t.id,
        loan_id=t.loan_id,
        allowed=True,
        rule=d.rule,
        reason=d.reason,
        phone=b.phone if b else None,
        name=b.name if b else None,
        attempt=attempt,
    )


class TaskOutcome(BaseModel):
    outcome: str = Field(description="call: " + ", ".join(CALL_OUTCOMES) + "; visit: " + ", ".join(VISIT_OUTCOMES))
    amount: str | None = Field(default=None, description="a promise: the amount")
    date: dt.date | None = Field(default=None, description="a promise: the date")
    notes: str = Field(default="", max_length=2000)


async def record_outcome(client: Client, repo, task_id: int, body: TaskOutcome) -> Any:
    """The task's outcome to its case (the record_outcome update, as the CLI sends it), then on the task."""
    t = _open_task(repo, task_id)
    allowed = CALL_OUTCOMES if t.action == "call" else VISIT_OUTCOMES
    if body.outcome not in allowed:
        raise BadInput("outcome", f"{body.outcome!r} is not a {t.action} outcome (one of: {', '.join(allowed)})")
    if t.action == "call" and t.attempts == 0:
        raise BadInput("task_id", f"call task {task_id} has not been called: open it first (the gate decides)")
    fields: dict[str, Any] = {"kind": t.action, "outcome": body.outcome, "task_id": t.id}
    if body.amount is not None:
        fields["amount"] = body.amount
    if body.date is not None:
        fields["date"] = body.date
    result = await send_update(client, t.loan_id, "outcome", fields)
    actor = require(f"outcome.{t.action}")
    tasks_ = table_of(TaskRow)
    with repo.session() as s:
        s.execute(
            update(tasks_)
            .where(tasks_.c.id == t.id)
            .values(
                outcome=body.outcome,
                notes=body.notes.strip() or None,
                worked_by=f"{actor.operator_id}:{actor.role}",
                status="done",
                ended_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        s.commit()
    return result


class Reassign(BaseModel):
    assignee: str = Field(min_length=1, max_length=100, description="an active operator's display name")
    reason: str = Field(default="", max_length=200)


def reassign(repo, task_id: int, body: Reassign) -> TaskView:
    """A supervisor gives an open task to another operator (who must exist, be active and hold a role that works
    the task's kind). Re-queueing by the case goes on from the task's due time as before."""
    from access.operators import Operators
    from access.permissions import allowed

    actor = require("tasks.manage")
    t = _open_task(repo, task_id)
    op = Operators(repo).find(body.assignee)
    if op is None or not op.active:
        raise BadInput("assignee", f"no active operator named {body.assignee!r}; nothing was changed")
    if not allowed(op.roles.split(","), f"outcome.{t.action}"):
        raise BadInput("assignee", f"{op.display_name} has no role that records a {t.action} outcome")
    tasks_ = table_of(TaskRow)
    with repo.session() as s:
        s.execute(update(tasks_).where(tasks_.c.id == t.id).values(assignee=op.display_name, updated_at=utcnow()))
        s.add(
            EventRow(
                workflow_id=t.workflow_id,
                loan_id=t.loan_id,
                at=utcnow(),
                kind="task_reassigned",
                detail=f"task {t.id} from {t.assignee or 'nobody'} to {op.display_name}"
                + (f": {body.reason.strip()}" if body.reason.strip() else ""),
                cause=json.dumps({"source": "supervisor"}),
                actor=f"{actor.operator_id}:{actor.role}",
            )
        )
        s.commit()
    return task(repo, task_id)
