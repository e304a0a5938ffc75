"""The daily jobs' Temporal Schedules, defined once: the local stack applies them at start (devstack/stack.py),
an operator with `python starter.py schedules apply` (or `python -m app.schedules apply`) after a deploy.

    collections-calendar-watch  07:30 Beijing  CalendarWatch  days of official calendar left; from 1 November the
                                                              warning that next year's file is missing
    collections-reconcile       02:30 Beijing  Reconcile      case rows rewritten from the cases where they differ
    collections-retention       03:30 Beijing  Retention      contact details erased past the retention period

`apply` is idempotent: it creates the schedules that are missing and updates those whose definition changed,
keeping the state an operator gave them (paused, with a note); one already as defined is left untouched. Pause and
resume like any schedule: `temporal schedule toggle --schedule-id collections-retention --pause --reason "..."`.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
from dataclasses import dataclass
from datetime import timedelta
from typing import Literal

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
)
from temporalio.service import RPCError, RPCStatusCode

from activities.job_contracts import CALENDAR_WATCH_JOB, RECONCILE_JOB, RETENTION_JOB

ZONE = "Asia/Shanghai"  # the bank's day


@dataclass(frozen=True)
class Job:
    id: str
    workflow: str
    hour: int
    minute: int
    what: str
    timeout: timedelta


JOBS = (
    Job(
        CALENDAR_WATCH_JOB,
        "CalendarWatch",
        7,
        30,
        "official calendar days left; next year's file missing (from 1 Nov)",
        timedelta(minutes=30),
    ),
    Job(RECONCILE_JOB, "Reconcile", 2, 30, "case rows the console reads, repaired from the cases", timedelta(hours=6)),
    Job(RETENTION_JOB, "Retention", 3, 30, "contact details erased past the retention period (PIPL art. 47)", timedelta(hours=2)),
)


def schedule(job: Job, task_queue: str) -> Schedule:
    """The job's schedule: daily at its time in Beijing; a run still going when the next is due makes it skip; a
    server down at the time catches up within a day."""
    return Schedule(
        action=ScheduleActionStartWorkflow(
            job.workflow,
            id=job.id,  # the server adds the run's time: collections-reconcile-2026-12-07T18:30:00Z
            task_queue=task_queue,
            execution_timeout=job.timeout,
        ),
        spec=ScheduleSpec(
            calendars=[
                ScheduleCalendarSpec(hour=(ScheduleRange(job.hour),), minute=(ScheduleRange(job.minute),), comment=job.what)
            ],
            time_zone_name=ZONE,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=timedelta(days=1)),
        state=ScheduleState(note="created by schedules apply"),
    )


def _shape(s: Schedule) -> tuple:
    """What `apply` sets of a schedule (its state aside), comparable between a definition and a description."""
    a = s.action
    assert isinstance(a, ScheduleActionStartWorkflow)
    return (a.workflow, a.id, a.task_queue, a.execution_timeout, s.spec, s.policy.overlap, s.policy.catchup_window)


Outcome = Literal["created", "updated", "unchanged"]


async def apply_one(client: Client, job: Job, task_queue: str) -> Outcome:
    want = schedule(job, task_queue)
    handle = client.get_schedule_handle(job.id)
    try:
        have = (await handle.describe()).schedule
    except RPCError as exc:
        if exc.status != RPCStatusCode.NOT_FOUND:
            raise
        try:
            await client.create_schedule(job.id, want)
            return "created"
        except ScheduleAlreadyRunningError:  # created in between by another apply
            have = (await handle.describe()).schedule
    if _shape(have) == _shape(want):
        return "unchanged"

    def keep_state(current: ScheduleUpdateInput) -> ScheduleUpdate:
        return ScheduleUpdate(schedule=dataclasses.replace(want, state=current.description.schedule.state))

    await handle.update(keep_state)
    return "updated"


async def apply(client: Client, task_queue: str) -> dict[str, Outcome]:
    """Create or update every job's schedule; {schedule id: created | updated | unchanged}."""
    return {job.id: await apply_one(client, job, task_queue) for job in JOBS}


@dataclass(frozen=True)
class Listed:
    id: str
    workflow: str
    at: str
    paused: bool
    note: str
    next_runs: list[str]
    last_run: str | None


async def listing(client: Client) -> list[Listed]:
    """The jobs' schedules as the server has them (a job whose schedule is missing is left out)."""
    out = []
    for job in JOBS:
        try:
            d = await client.get_schedule_handle(job.id).describe()
        except RPCError as exc:
            if exc.status == RPCStatusCode.NOT_FOUND:
                continue
            raise
        recent = d.info.recent_actions
        out.append(
            Listed(
                id=job.id,
                workflow=job.workflow,
                at=f"daily {job.hour:02d}:{job.minute:02d} {ZONE}",
                paused=d.schedule.state.paused,
                note=d.schedule.state.note or "",
                next_runs=[t.isoformat() for t in d.info.next_action_times[:3]],
                last_run=recent[-1].started_at.isoformat() if recent else None,
            )
        )
    return out


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.schedules", description=__doc__.splitlines()[0])
    ap.add_argument("action", choices=["apply", "list"])
    a = ap.parse_args(argv)
    from infra.config import settings
    from infra.temporal import connect

    client = await connect()
    if a.action == "apply":
        for sid, outcome in (await apply(client, settings().task_queue)).items():
            print(f"{sid}: {outcome}")
    else:
        for s in await listing(client):
            print(f"{s.id:<28} {s.workflow:<14} {s.at}  {'PAUSED' if s.paused else 'active'}  next {', '.join(s.next_runs[:1])}")
    return 0


if __name__ == "__main__":
    from infra.process import leave

    leave(asyncio.run(main()))
