"""In-memory activities with the real ones' names and types: every contact delivered, every record
accepted, no database and no HTTP. Item 4 runs with them beside the real ones, to show what the
workflows cost on their own and what the system of record and the gateway add.

The names come from the channel registry (domain/channels.py), as the real activities' do."""

from __future__ import annotations

from datetime import timedelta

from temporalio import activity

from activities.calendars import in_force_years
from activities.contracts import (
    AuditEvents,
    CaseClosed,
    CaseProjection,
    ChannelRequest,
    GateCheck,
    GateDecision,
    HoldChange,
    LedgerEntry,
    RejectedInput,
    ReversalEntry,
    StepOutcome,
    StepRun,
    StepSent,
)
from domain import channels
from domain.models import ContactResult, RecordedCalendar, TaskEnd, TaskInfo, TaskOpen


def _contact(req: ChannelRequest) -> ContactResult:
    return ContactResult(
        action=req.action,
        channel=channels.channel_of(req.action),
        outcome="answered" if req.action == "call" else None,
        reference=req.idempotency_key[-40:],
    )


class StubActivities:
    def __init__(self) -> None:
        for name in channels.ACTIVITIES:
            setattr(self, name, self._channel_activity(name))

    @staticmethod
    def _channel_activity(name: str):
        async def send(req: ChannelRequest) -> ContactResult:
            return _contact(req)

        send.__name__ = send.__qualname__ = name
        return activity.defn(name=name)(send)

    @activity.defn(name=channels.CHECK_CONTACTS)
    async def check_contacts(self, check: GateCheck) -> list[GateDecision]:
        return [GateDecision(action=a, allowed=True, rule="stub", reason="stub gate") for a in check.actions]

    @activity.defn(name=channels.RUN_STEP)
    async def run_step(self, run: StepRun) -> StepOutcome:
        sends = [
            run.request.model_copy(update={"action": s.action, "idempotency_key": f"{run.check.step}:{s.action}"})
            for s in run.sends
        ]
        return StepOutcome(
            decisions=[GateDecision(action=a, allowed=True, rule="stub", reason="stub gate") for a in run.check.actions],
            sent=[StepSent(action=r.action, result=_contact(r)) for r in sends],
        )

    @activity.defn(name=channels.RECORD_HOLD)
    async def record_hold(self, change: HoldChange) -> None:
        return None

    @activity.defn(name=channels.RECORD_PAYMENT)
    async def record_payment(self, entry: LedgerEntry) -> bool:
        return True

    @activity.defn(name=channels.RECORD_REVERSAL)
    async def record_reversal(self, entry: ReversalEntry) -> bool:
        return True

    @activity.defn(name=channels.RECORD_EVENTS)
    async def record_events(self, batch: AuditEvents) -> None:
        return None

    @activity.defn(name=channels.PROJECT_CASE)
    async def project_case(self, p: CaseProjection) -> None:
        return None

    @activity.defn(name=channels.RECORD_CASE_CLOSED)
    async def record_case_closed(self, closed: CaseClosed) -> None:
        return None

    _tasks = 0

    @activity.defn(name=channels.OPEN_TASK)
    async def open_task(self, req: TaskOpen) -> TaskInfo:
        StubActivities._tasks += 1
        return TaskInfo(task_id=self._tasks, action=req.action, team="stub", assignee="stub", due_at=req.now + timedelta(hours=8))

    @activity.defn(name=channels.REQUEUE_TASK)
    async def requeue_task(self, req: TaskOpen) -> TaskInfo:
        assert req.task_id is not None
        return TaskInfo(task_id=req.task_id, action=req.action, team="stub", assignee="stub", due_at=req.now + timedelta(hours=8))

    @activity.defn(name=channels.END_TASKS)
    async def end_tasks(self, ends: list[TaskEnd]) -> None:
        return None

    @activity.defn(name=channels.RECORD_REJECTED_INPUT)
    async def record_rejected_input(self, r: RejectedInput) -> None:
        return None

    @activity.defn(name=channels.CALENDAR_YEARS)
    async def calendar_years(self, years: list[int]) -> list[RecordedCalendar]:
        return in_force_years(years)

    def all(self) -> list:
        return [
            getattr(self, n)
            for n in (
                "check_contacts",
                "run_step",
                "record_hold",
                *channels.ACTIVITIES,
                "record_payment",
                "record_reversal",
                "record_events",
                "record_case_closed",
                "project_case",
                "open_task",
                "requeue_task",
                "end_tasks",
                "record_rejected_input",
                "calendar_years",
            )
        ]


def missing_from_stubs(real_names: list[str]) -> list[str]:
    ours = {a.__temporal_activity_definition.name for a in StubActivities().all()}  # type: ignore[attr-defined]
    return sorted(set(real_names) - ours)
