"""The database side of agent mode: the floor's tasks (db.tables.TaskRow). The rules (who, when, how urgent)
are domain/tasks.py's; this module reads the load they need and writes their result."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import func, update
from sqlmodel import col, select

from db.repo import Repo, _insert
from db.tables import BorrowerRow, TaskRow, table_of, utcnow
from domain import tasks as rules
from domain.dates import zone
from domain.models import TaskEnd, TaskInfo, TaskOpen
from domain.policy import Urgency

TASKS = table_of(TaskRow)


def _info(row: TaskRow) -> TaskInfo:
    assert row.id is not None
    return TaskInfo.model_validate(
        dict(
            task_id=row.id,
            action=row.action,
            team=row.team,
            assignee=row.assignee,
            due_at=row.due_at,
            slot_start=row.slot_start,
            slot_end=row.slot_end,
        )
    )


class TaskStore:
    def __init__(self, repo: Repo, teams: rules.Teams) -> None:
        self.repo = repo
        self.teams = teams

    def _load(self, s, team: str) -> dict[str, int]:
        rows = s.exec(
            select(TaskRow.assignee, func.count())
            .where(col(TaskRow.status) == "open", col(TaskRow.team) == team)
            .group_by(col(TaskRow.assignee))
        ).all()
        return {a: n for a, n in rows if a}

    def _booked(self, s, assignee: str | None, tz: str, since: datetime) -> dict[date, int]:
        if assignee is None:
            return {}
        out: dict[date, int] = {}
        for start in s.exec(
            select(TaskRow.slot_start).where(
                col(TaskRow.assignee) == assignee, col(TaskRow.status) == "open", col(TaskRow.slot_start) >= since
            )
        ).all():
            if start is not None:
                d = start.astimezone(zone(tz)).date()
                out[d] = out.get(d, 0) + 1
        return out

    def _place(self, s, req: TaskOpen, tz: str, province: str, city: str, exclude: str | None) -> dict[str, Any]:
        """Team, assignee, due time and (visits) slot for a task, from the rules and the floor's load now."""
        assert req.agent is not None and req.rules is not None  # the workflow sends the case's policy
        team = rules.team_for(self.teams, req.action, req.segment, province, city)
        team_name, assignee = rules.assign(
            self.teams,
            action=req.action,
            segment=req.segment,
            province=province,
            city=city,
            load=self._load(s, team.name) if team else {},
            exclude=exclude,
        )
        if req.action == "visit":
            start, end = rules.visit_slot(
                req.now,
                tz,
                req.rules,
                req.agent.visit_slot_minutes,
                self._booked(s, assignee, tz, req.now),
                req.day_seconds,
            )
            due = end + timedelta(seconds=req.agent.visit_due_days * req.day_seconds)
            return dict(team=team_name, assignee=assignee, due_at=due, slot_start=start, slot_end=end)
        due = rules.call_due(req.now, req.agent.call_due_hours, req.day_seconds)
        return dict(team=team_name, assignee=assignee, due_at=due, slot_start=None, slot_end=None)

    def open(self, req: TaskOpen, idempotency_key: str) -> TaskInfo:
        """Open the task once (a rerun returns the first one)."""
        with self.repo.session() as s:
            row = s.exec(select(TaskRow).where(col(TaskRow.idempotency_key) == idempotency_key)).first()
            if row is not None:
                return _info(row)
            borrower = s.get(BorrowerRow, req.borrower_id)
            tz = borrower.timezone if borrower else "Asia/Shanghai"
            province, city, district = rules.region_of(borrower.address if borrower else None)
            placed = self._place(s, req, tz, province, city, exclude=None)
            s.execute(
                _insert(s, TaskRow)
                .values(
                    idempotency_key=idempotency_key,
                    workflow_id=req.workflow_id,
                    loan_id=req.loan_id,
                    borrower_id=req.borrower_id,
                    step=req.step,
                    action=req.action,
                    status="open",
                    priority=rules.priority(req.dpd, req.outstanding_minor),
                    urgency=rules.urgency(
                        req.dpd,
                        req.outstanding_minor,
                        req.broken_promises,
                        req.legal_days_left,
                        req.agent.urgency if req.agent else Urgency(),
                    ),
                    segment=req.segment,
                    province=province,
                    city=city,
                    district=district,
                    dpd=req.dpd,
                    outstanding_minor=req.outstanding_minor,
                    requeues=0,
                    attempts=0,
                    gate_rules=json.dumps(
                        {"rules": req.rules.model_dump(mode="json") if req.rules else None, "day_seconds": req.day_seconds}
                    ),
                    created_at=req.now,  # the case's clock (live days past due count from it)
                    updated_at=utcnow(),
                    **placed,
                )
                .on_conflict_do_nothing(index_elements=["idempotency_key"])
            )
            s.commit()
            row = s.exec(select(TaskRow).where(col(TaskRow.idempotency_key) == idempotency_key)).one()
            return _info(row)

    def requeue(self, req: TaskOpen, requeues: int) -> TaskInfo:
        """Assign a task not worked in time again (another member where the team has one), with a new due time.
        `requeues` is the case's count after this one: a rerun finds the row already at it and changes nothing."""
        with self.repo.session() as s:
            row = s.get(TaskRow, req.task_id)
            if row is None:
                raise LookupError(f"no task {req.task_id}")
            if row.requeues >= requeues or row.status != "open":
                return _info(row)
            borrower = s.get(BorrowerRow, row.borrower_id)
            tz = borrower.timezone if borrower else "Asia/Shanghai"
            placed = self._place(s, req, tz, row.province, row.city, exclude=row.assignee)
            for k, v in placed.items():
                setattr(row, k, v)
            row.requeues, row.priority, row.updated_at = requeues, max(1, row.priority - 1), utcnow()
            s.add(row)
            s.commit()
            s.refresh(row)
            return _info(row)

    def end(self, ends: list[TaskEnd]) -> None:
        """Tasks the case ended (outcome recorded, wait over, case closed); a task already ended stays as it is."""
        with self.repo.session() as s:
            for e in ends:
                s.execute(
                    update(TASKS)
                    .where(TASKS.c.id == e.task_id, TASKS.c.status == "open")
                    .values(status=e.status, ended_at=e.at, updated_at=utcnow())
                )
            s.commit()

    def cancel_for_case(self, workflow_id: str, at: datetime) -> None:
        with self.repo.session() as s:
            s.execute(
                update(TASKS)
                .where(TASKS.c.workflow_id == workflow_id, TASKS.c.status == "open")
                .values(status="cancelled", ended_at=at, updated_at=utcnow())
            )
            s.commit()

    def get(self, task_id: int) -> TaskRow | None:
        with self.repo.session() as s:
            return s.get(TaskRow, task_id)
