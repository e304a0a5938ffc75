"""An input answered the first time: the API tries it again inside the request (under one update id) while the case
recovers, and answers 503 with Retry-After only when its deadline has passed.

- `answered`: an attempt whose answer is lost is answered by the next one as the same update (a hold placed once,
  not refused as "already on a dispute hold");
- over HTTP: a case whose workflow task keeps failing (its worker cannot read its payloads, as after two crashes in a
  row) for longer than the old in-call wait (BUSY_WAIT, 6.7 s) and then recovers is answered 200 in one request;
- over HTTP: a case that does not recover within API_UPDATE_TIMEOUT gets 503 with Retry-After, nothing recorded.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
import uuid

import httpx
import pytest
import pytest_asyncio
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from app import errors, inputs, opening
from devstack.binaries import find
from encryption import codec
from tests.conftest import DATA_CONVERTER
from tests.workflow_helpers import free_port
from worker import build_worker
from workflows import search

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUEUE = "api-retries"
DEADLINE = 15.0  # API_UPDATE_TIMEOUT here


async def test_an_attempt_whose_answer_was_lost_is_answered_by_the_next_as_the_same_update(cases, env, repo):
    handle = await cases.start(dpd=2)
    loan = handle.id.removeprefix("loan-")
    calls = 0

    async def hold_with_its_first_answer_lost():
        nonlocal calls
        calls += 1
        result = await inputs.send_update(env.client, loan, "hold", {"kind": "dispute", "reference": "fees"})
        if calls == 1:
            raise ConnectionError("the answer was lost on the way back")
        return result

    result = await inputs.answered(hold_with_its_first_answer_lost, 30)
    assert calls == 2 and result.accepted, result
    st = await cases.status(handle)
    assert [h.kind for h in st.holds] == ["dispute"]
    assert sum(1 for e in st.events if e.kind == "hold_placed") == 1, [e.kind for e in st.events]
    # the same input sent again as a new request is a new update: the case refuses it, nothing changes
    with pytest.raises(errors.BadInput, match="already on a dispute hold"):
        await inputs.answered(lambda: inputs.send_update(env.client, loan, "hold", {"kind": "dispute"}), 30)


@pytest_asyncio.fixture(scope="module")
async def stack(repo, tmp_path_factory):
    """A dev server and the API as its own process (API_UPDATE_TIMEOUT=15); the tests bring their own workers."""
    from access.operators import Operators

    store = Operators(repo)
    token = store.issue_token(store.ensure("retry test", ["payments", "collector"]).id).token
    temporal_port = free_port()
    env = await WorkflowEnvironment.start_local(
        port=temporal_port,
        dev_server_existing_path=find("temporal"),
        search_attributes=search.ALL,
        data_converter=DATA_CONVERTER,
        dev_server_log_level="error",
        ui=False,
        ip="127.0.0.1",
        dev_server_startup_timeout=dt.timedelta(seconds=60),
    )
    address = f"127.0.0.1:{temporal_port}"
    port = free_port()
    log = tmp_path_factory.mktemp("api-retries") / "api.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api", "--exit-with-parent", str(os.getpid())],
            cwd=ROOT,
            env=dict(
                os.environ,
                TEMPORAL_ADDRESS=address,
                TEMPORAL_TASK_QUEUE=QUEUE,
                DATABASE_URL=repo.engine.url.render_as_string(hide_password=False),
                API_TOKEN="bootstrap-0123456789",
                API_PORT=str(port),
                API_UPDATE_TIMEOUT=str(DEADLINE),
                LOG_FORMAT="json",
            ),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {token}"}, timeout=60) as http:
            deadline = time.monotonic() + 30
            while True:
                assert proc.poll() is None, log.read_text()
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get("/health")).status_code == 200:
                        break
                assert time.monotonic() < deadline, log.read_text()
                await asyncio.sleep(0.1)
            yield env, http
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)
        await env.shutdown()


@contextlib.asynccontextmanager
async def failing_case(env, repo):
    """An open case whose workflow task keeps failing: its only worker cannot read its payloads."""
    wrong_keys = Client(
        env.client.service_client,
        namespace=env.client.namespace,
        data_converter=codec.data_converter(codec.Keyring.parse(codec.new_key_entry("elsewhere"))),
    )
    gw = GatewayClient(GatewaySettings(url="http://127.0.0.1:9", api_key="unused"))
    loan = f"RT-{uuid.uuid4().hex[:8]}"
    inp = opening.case_input(
        loan_id=loan, borrower_id=f"B-{loan}", principal="1000.00", due_date=dt.date.today() - dt.timedelta(days=3)
    )
    opening.save_borrower_and_loan(repo, inp, opening.Contact(name="张伟", phone="13812345678"))
    worker = build_worker(wrong_keys, CaseActivities(repo, gw), task_queue=QUEUE)
    try:
        async with worker:
            await opening.start_case(env.client, inp, QUEUE)
            for _ in range(300):  # until the server retries the failed workflow task
                desc = await env.client.workflow_service.describe_workflow_execution(
                    DescribeWorkflowExecutionRequest(
                        namespace=env.client.namespace, execution=WorkflowExecution(workflow_id=inp.workflow_id)
                    )
                )
                if desc.pending_workflow_task.attempt >= 2:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the workflow task was not retried")
            yield loan, worker
    finally:
        await gw.aclose()


async def test_a_case_recovering_for_longer_than_the_old_wait_is_answered_in_one_request(stack, repo, gateway):
    env, http = stack
    async with failing_case(env, repo) as (loan, bad_worker):
        began = time.monotonic()
        request = asyncio.create_task(
            http.post(f"/v1/loans/{loan}/payments", json={"payment_id": f"PAY-{loan}", "amount": "10.00"})
        )
        await asyncio.sleep(8)  # longer than BUSY_WAIT's 6.7 s: the old API had answered 503 by now
        assert not request.done()
        await bad_worker.shutdown()
        gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
        try:
            async with build_worker(env.client, CaseActivities(repo, gw), task_queue=QUEUE):
                r = await request
        finally:
            await gw.aclose()
    assert r.status_code == 200, r.text
    assert r.json()["status"] == "applied" and time.monotonic() - began < DEADLINE + 5
    assert [p.payment_id for p in repo.payments(loan_id=loan)] == [f"PAY-{loan}"]


async def test_a_case_that_does_not_recover_in_time_gets_503_with_retry_after(stack, repo):
    env, http = stack
    async with failing_case(env, repo) as (loan, _worker):
        began = time.monotonic()
        r = await http.post(f"/v1/loans/{loan}/payments", json={"payment_id": f"PAY-{loan}", "amount": "10.00"})
        took = time.monotonic() - began
    assert r.status_code == 503, r.text
    assert int(r.headers["Retry-After"]) >= 1
    assert "send the same input again" in r.json()["error"]["reason"]
    assert DEADLINE - 1 <= took < DEADLINE + 10, took  # it tried for the whole deadline, then said so
    assert repo.payments(loan_id=loan) == []  # nothing recorded
