"""A worker killed in the middle of a step: the next worker finishes it without a second delivery or row."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter
from datetime import timedelta

import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from devstack.binaries import find
from infra import deployments
from infra.config import settings
from tests.conftest import DATA_CONVERTER, Cases
from workflows import search

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUEUE = "collections-crash"


async def start_worker(env, repo, gateway) -> asyncio.subprocess.Process:
    e = dict(
        os.environ,
        TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE=QUEUE,
        DATABASE_URL=repo.engine.url.render_as_string(hide_password=False),
        GATEWAY_URL=gateway.url,
        GATEWAY_API_KEY=gateway.api_key,
        LOG_FORMAT="json",
    )
    return await asyncio.create_subprocess_exec(
        sys.executable,
        "worker.py",
        cwd=ROOT,
        env=e,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=open(os.environ.get("CRASH_LOG", os.devnull), "ab"),
    )


async def wait_for(predicate, timeout: float = 30.0, show=lambda: "") -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"condition not met in time {show()}")


@pytest_asyncio.fixture
async def dev_server():
    """A real Temporal dev server: what the local stack runs (no time skipping needed here)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find("temporal"),
        search_attributes=search.ALL,
        data_converter=DATA_CONVERTER,
        dev_server_log_level="error",
        dev_server_startup_timeout=timedelta(seconds=30),
    )
    yield env
    await env.shutdown()


async def test_worker_killed_mid_step_resumes_without_duplicates(dev_server, repo, gateway):
    env = dev_server
    cases = Cases(env, repo, task_queue=QUEUE)
    gateway.set_faults(latency_ms=2500)  # requests are in flight long enough to kill the worker under them
    first = await start_worker(env, repo, gateway)
    second = None
    try:
        # its build current (Worker Versioning, as the local stack does); the restarted worker is the same build
        build = deployments.version(settings())
        if build is not None:
            await deployments.set_current(env.client, build.deployment_name, build.build_id)
        arrived = gateway.stats()["requests"]
        h = await cases.start(dpd=1, loan_id="CRASH-1", settle=False)
        # the three requests of the reminder have reached the gateway and are waiting out the latency
        await wait_for(lambda: gateway.stats()["requests"] >= arrived + 3)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        gateway.clear_faults()
        second = await start_worker(env, repo, gateway)
        # the dead worker's workflow task times out (10 s) and the new worker runs the step again
        await wait_for(
            lambda: all(r.status == "delivered" for r in repo.contacts(loan_id="CRASH-1")),
            timeout=90,
            show=lambda: [(r.channel, r.status, r.attempts) for r in repo.contacts(loan_id="CRASH-1")],
        )
        await cases.settle(h, timeout=30)
        st = await cases.status(h)
        assert st.steps_done == ["reminder_notice"] and st.contacts == {"sms": 1, "email": 1, "letter": 1}
        rows = repo.contacts(loan_id="CRASH-1")
        assert len(rows) == 3 and all(r.attempts >= 2 for r in rows)
        items = gateway.outbox(loan_id="CRASH-1")
        assert len(items) == 3 and max(Counter(i["idempotency_key"] for i in items).values()) == 1
        await cases.terminate_all()
    finally:
        gateway.clear_faults()
        for p in (first, second):
            if p and p.returncode is None:
                p.send_signal(signal.SIGTERM)
                await p.wait()
