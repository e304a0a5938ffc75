"""The query race (workflows/versioning.py): a query answered while a case's local activity runs makes core
complete the workflow task early, with the activity's marker in it, and the case's code goes on in the next task.
On replay that code runs one task earlier. Every case that met it must replay, and the demo's histories of it do
(tests/histories/race_*, replayed by tests/test_replay.py)."""

from __future__ import annotations

import asyncio

import pytest_asyncio
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowHistory
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer

from devstack.binaries import find
from tests.conftest import DATA_CONVERTER
from workflows import search
from workflows.case import CollectionCase

FORCED = "request-from-RespondWorkflowTaskCompleted"


@pytest_asyncio.fixture(scope="module")
async def env():
    """The dev server, as make demo runs it (the time-skipping server did not show the race in 40 tries)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find("temporal"),
        search_attributes=search.ALL,
        data_converter=DATA_CONVERTER,
        ip="127.0.0.1",
        ui=False,
        dev_server_log_level="error",
    )
    yield env
    await env.shutdown()


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
    """Cases opened in a burst and read at once (as make demo and the console do), their sends slowed by the
    gateway: some meet the race; every history replays. On the code before versioning.DECIDED_AT_START the first
    raced case failed replay with the demo's "Non-deprecated patch marker encountered" error."""
    gateway.set_faults(latency_ms=300)
    raced = replayed = 0
    replayer = Replayer(workflows=[CollectionCase], data_converter=DATA_CONVERTER)
    try:
        for _ in range(6):
            if raced >= 2:
                break
            handles = await asyncio.gather(*(cases.start(dpd=1, settle=False) for _ in range(8)))
            for _ in range(3):
                await asyncio.gather(*(h.query(CollectionCase.status) for h in handles))
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
