"""/v1/tasks: the collections floor's call and visit tasks (agent mode): my tasks, click-to-call, the outcome."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Path, Query
from pydantic import BaseModel

from api.deps import E401, E403, E404, E422, E503, Backend, authorized, backend, guard, within_timeout
from app import tasks

router = APIRouter(prefix="/v1", dependencies=[Depends(authorized)], responses={**E401, **E403, **E503})
BackendDep = Annotated[Backend, Depends(backend)]
TaskId = Annotated[int, Path(ge=1, le=tasks.MAX_ID, description="the task's id")]


class TaskPage(BaseModel):
    tasks: list[tasks.TaskView]
    more: bool


@router.get(
    "/tasks",
    **guard("tasks.list"),
    tags=["tasks"],
    response_model=TaskPage,
    responses={**E422},
    summary="My tasks for a day: open calls by urgency, the visits booked on it by district",
)
async def my_tasks(
    be: BackendDep,
    day: dt.date | None = None,
    action: Annotated[str | None, Query(pattern="^(call|visit)$")] = None,
    assignee: Annotated[str | None, Query(max_length=100, description="a supervisor: another operator's")] = None,
    page: Annotated[int, Query(ge=1, le=10_000)] = 1,
) -> TaskPage:
    rows, more = await asyncio.to_thread(tasks.my_tasks, be.repo(), assignee=assignee, day=day, action=action, page=page)
    return TaskPage(tasks=rows, more=more)


@router.post(
    "/tasks/{task_id}/call",
    **guard("task.call"),
    tags=["tasks"],
    response_model=tasks.CallOpened,
    responses={**E404, **E422},
    summary="Click to call: the contact gate decides now; allowed, the number is shown and the attempt recorded",
)
async def call(be: BackendDep, task_id: TaskId) -> tasks.CallOpened:
    return await asyncio.to_thread(tasks.open_call, be.repo(), task_id)


@router.post(
    "/tasks/{task_id}/outcome",
    **guard("outcome.call", "outcome.visit"),
    tags=["tasks"],
    responses={**E404, **E422},
    summary="The task's outcome, to its case through the same update as the CLI's",
)
async def outcome(be: BackendDep, task_id: TaskId, body: tasks.TaskOutcome) -> Any:
    return await within_timeout(tasks.record_outcome(await be.client(), be.repo(), task_id, body))


@router.post(
    "/tasks/{task_id}/assignee",
    **guard("tasks.manage"),
    tags=["tasks"],
    response_model=tasks.TaskView,
    responses={**E404, **E422},
    summary="Give an open task to another operator (a supervisor)",
)
async def reassign(be: BackendDep, task_id: TaskId, body: tasks.Reassign) -> tasks.TaskView:
    return await asyncio.to_thread(tasks.reassign, be.repo(), task_id, body)
