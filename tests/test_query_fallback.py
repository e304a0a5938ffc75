"""A case whose query fails still answers: the application layer (the CLI's `status`, the API and the console all
call it) reads the database's projection, says that the live state could not be read and why, and counts it."""

from __future__ import annotations

import uuid

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from app import visibility
from infra import metrics
from tests.conftest import Cases
from worker import build_worker
from workflows.case import CollectionCase


async def test_a_case_that_cannot_answer_is_read_from_the_projection(env, repo, gateway, monkeypatch):
    """The case runs its first step; then no worker serves its task queue, so its query cannot be answered (as
    when its history fails replay on the worker's code): its status comes from the case row, marked not live."""
    queue = f"fallback-{uuid.uuid4().hex[:6]}"
    cases = Cases(env, repo, task_queue=queue)
    client = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    async with build_worker(env.client, CaseActivities(repo, client), task_queue=queue):
        h = await cases.start(dpd=1)
        await cases.settle(h)
        live = await h.query(CollectionCase.status)
    await client.aclose()
    before = metrics.QUERY_FAILURES._value.get()
    monkeypatch.setattr(visibility, "QUERY_SECONDS", 1.0)  # not the 10 s an operator waits
    st = await visibility.case_status(env.client, live.loan_id, repo)
    assert st.live is False and "did not answer within 1s" in (st.unreadable or ""), st.unreadable
    assert (st.stage, st.status, st.outstanding["total"]) == (live.stage, live.status, live.outstanding["total"])
    assert metrics.QUERY_FAILURES._value.get() == before + 1
    # without the system of record there is nothing to fall back to: the failure itself reaches the caller
    try:
        await visibility.case_status(env.client, live.loan_id, None)
    except TimeoutError:
        pass
    else:
        raise AssertionError("a case that cannot answer and has no projection must not look answered")
    await h.terminate("test finished")
