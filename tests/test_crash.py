"""A worker killed in the middle of a step: the next worker finishes it without a second delivery or row."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections import Counter

from tests.conftest import Cases

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
QUEUE = "collections-crash"


async def start_worker(env, repo, gateway) -> asyncio.subprocess.Process:
    # No workflow cache, so no sticky queue: the time-skipping test server never times out a
    # dead worker's sticky queue (a real server does, after 10 s), and time cannot skip past it.
    e = dict(os.environ, WORKER_MAX_CACHED_WORKFLOWS="0", TEMPORAL_ADDRESS=env.client.service_client.config.target_host, TEMPORAL_TASK_QUEUE=QUEUE,
             DATABASE_URL=repo.engine.url.render_as_string(hide_password=False), GATEWAY_URL=gateway.url,
             GATEWAY_API_KEY=gateway.api_key, LOG_FORMAT="json")
    return await asyncio.create_subprocess_exec(sys.executable, "worker.py", cwd=ROOT, env=e,
                                                stdout=asyncio.subprocess.DEVNULL, stderr=open(os.environ.get("CRASH_LOG", os.devnull), "ab"))


async def wait_for(predicate, timeout: float = 30.0) -> None:
    for _ in range(int(timeout / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


async def test_worker_killed_mid_step_resumes_without_duplicates(env, repo, gateway):
    cases = Cases(env, repo, task_queue=QUEUE)
    gateway.set_faults(latency_ms=2500)  # requests are in flight long enough to kill the worker under them
    first = await start_worker(env, repo, gateway)
    second = None
    try:
        arrived = gateway.stats()["requests"]
        h = await cases.start(dpd=1, loan_id="CRASH-1", settle=False)
        # the three requests of the reminder have reached the gateway and are waiting out the latency
        await wait_for(lambda: gateway.stats()["requests"] >= arrived + 3)
        first.send_signal(signal.SIGKILL)
        await first.wait()
        gateway.clear_faults()
        second = await start_worker(env, repo, gateway)
        # the dead worker's attempts miss their heartbeat (20 s, real time) and are retried on the new worker
        await wait_for(lambda: all(r.status == "delivered" for r in repo.contacts(loan_id="CRASH-1")), timeout=90)
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
