"""The query race (workflows/versioning.py): a query answered while a case's local activity runs makes core
complete the workflow task early, with the activity's marker in it, and the case's code goes on in the next task.
On replay that code runs one task earlier. Every case that met it must replay, and the demo's histories of it do
(tests/histories/race_*, replayed by tests/test_replay.py)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.worker import (
    HandleQueryInput,
    Interceptor,
    Replayer,
    UnsandboxedWorkflowRunner,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from tests.conftest import DATA_CONVERTER, TASK_QUEUE, suite_worker, terminate
from workflows.case import CollectionCase

FORCED = "request-from-RespondWorkflowTaskCompleted"


@pytest.fixture(scope="module")
def env(dev_env):
    """The dev server, as make demo runs it (the time-skipping server did not show the race in 40 tries)."""
    return dev_env


class _SlowQuery(WorkflowInboundInterceptor):
    def handle_query(self, input: HandleQueryInput) -> Any:
        time.sleep(QUERY_SECONDS)  # a query that takes a while to answer: the local activity ends meanwhile
        return super().handle_query(input)


class SlowQueries(Interceptor):
    def workflow_interceptor_class(self, input: WorkflowInterceptorClassInput) -> type[WorkflowInboundInterceptor]:
        return _SlowQuery


QUERY_SECONDS = 0.15


@pytest_asyncio.fixture(scope="module")
async def worker(env, repo, gateway):
    """A worker whose queries take QUERY_SECONDS (an interceptor; the case's code is today's), so that a send's
    local activity ends while a query is being answered: the race, nearly every time instead of by chance."""
    async with suite_worker(env, repo, gateway, workflow_runner=UnsandboxedWorkflowRunner(), interceptors=[SlowQueries()]) as w:
        yield w


def raced_tasks(history: WorkflowHistory) -> int:
    """Workflow tasks that began at once after a task whose last command was a local activity's marker."""
    ev = list(history.events)
    n = 0
    for i, e in enumerate(ev):
        if e.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_STARTED and i >= 2:
            before = ev[i - 2]
            if (
                e.workflow_task_started_event_attributes.request_id == FORCED
                and before.HasField("marker_recorded_event_attributes")
                and before.marker_recorded_event_attributes.marker_name == "core_local_activity"
            ):
                n += 1
    return n


async def test_cases_queried_while_their_activities_run_replay(cases, gateway):
    """Cases read over and over while their sends wait on the gateway (as the demo and a console do): they meet the
    race, and every history replays. On the code before versioning.DECIDED_AT_START the first raced case failed
    replay with the demo's "Non-deprecated patch marker encountered" error."""
    gateway.set_faults(latency_ms=300)
    raced = replayed = 0
    replayer = Replayer(workflows=[CollectionCase], data_converter=DATA_CONVERTER)
    try:
        for _ in range(6):
            if raced >= 2:
                break
            handles = await asyncio.gather(*(cases.start(dpd=1, settle=False) for _ in range(4)))
            stop = asyncio.Event()

            async def ask(h, stop: asyncio.Event) -> None:
                while not stop.is_set():
                    await h.query(CollectionCase.status)

            askers = [asyncio.create_task(ask(h, stop)) for h in handles]
            await asyncio.sleep(1.5)
            stop.set()
            await asyncio.gather(*askers)
            for h in handles:
                await cases.settle(h)
                history = await h.fetch_history()
                raced += raced_tasks(history)
                result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
                assert result.replay_failure is None, f"{h.id}: {result.replay_failure}"
                replayed += 1
    finally:
        gateway.clear_faults()
    print(f"{replayed} cases replayed, {raced} raced workflow tasks among them")
    assert raced, f"none of {replayed} cases met the race: the test proved nothing"


async def test_the_demo_portfolio_read_while_it_runs_replays_whole(env, worker, repo):
    """make demo's 40 cases on the demo policy (a policy day in 6 s), the demo's payments, promise, plans and holds,
    read over and over (slow queries) for 20 s of real time while their steps run: every history on the server,
    open and closed, replays with today's code."""
    from datetime import UTC, datetime

    from app.replay import replay_every_history
    from devstack import demo
    from domain.policy import load_policy

    now = datetime.now(UTC)
    inputs = demo.portfolio(load_policy("demo"), now)
    demo.seed_records(inputs, repo)
    client = env.client
    handles = {
        c.loan_id: await client.start_workflow(CollectionCase.run, c, id=c.workflow_id, task_queue=TASK_QUEUE) for c in inputs
    }
    stop = asyncio.Event()

    async def ask(h) -> None:
        while not stop.is_set():
            try:
                await h.query(CollectionCase.status)
            except Exception:  # a closed case answers too; anything else shows in its replay below
                pass
            await asyncio.sleep(0.2)

    askers = [asyncio.create_task(ask(h)) for h in handles.values()]
    try:
        await asyncio.sleep(3)  # the first steps
        results = await demo.updates(client, inputs, handles, set(handles), now, 0)
        assert sum(r.ok for r in results) >= 5, [(r.loan_id, r.what, r.message) for r in results]
        await asyncio.sleep(17)
    finally:
        stop.set()
        await asyncio.gather(*askers)
    raced = 0
    for h in handles.values():
        raced += raced_tasks(await h.fetch_history())
    count, failures = await replay_every_history(client)
    print(f"{count} histories replayed, {raced} raced workflow tasks among them")
    assert count >= len(inputs)
    assert not failures, "\n".join(failures)
    await terminate(handles.values())
