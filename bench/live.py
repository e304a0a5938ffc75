"""2. Memory per cached live case and 3. reaction time of record_payment, on the worker of item 1.

Memory: the worker's RSS (after gc and malloc_trim) is read before and after starting M idle
workflows (baseline: one timer each), then before and after the cases that bring the live count to
N (each after its first step, waiting on the timer of its next one); each delta over its count.

Reaction: with N live cases (and the idle workflows) on the server, one at a time and alternating,
a record_payment update on a random live case and a no-op update on a random idle workflow, timed
from the caller; p50, p95 and p99 of each.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import time
import uuid

from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import WorkflowIDConflictPolicy
from temporalio.service import RPCError

from app.opening import start_case
from bench.harness import Database, FirstSteps, WorkerProcess, case_inputs
from bench.noop import BaselineModules, Idle
from bench.probe import SandboxModules
from bench.report import Row, Table
from bench.start import closed_loop
from domain.models import PaymentIn, workflow_id
from workflows.case import CollectionCase

HEAVY = (
    "httpx",
    "httpcore",
    "sqlalchemy",
    "sqlmodel",
    "structlog",
    "pydantic",
    "pydantic_core",
    "jinja2",
    "fastapi",
    "starlette",
    "holidays",
    "psycopg",
    "cryptography",
    "alembic",
    "anyio",
    "uvicorn",
    "rich",
)
MIB = 1024 * 1024


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def wait_idle(pid: int, below: float = 0.05, window: float = 0.5, timeout: float = 600) -> None:
    """Until the process uses less than `below` of a core over `window` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        before = cpu_seconds(pid)
        await asyncio.sleep(window)
        if (cpu_seconds(pid) - before) / window < below:
            return


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)


async def sandbox_modules(client: Client, task_queue: str) -> tuple[list[str], list[str], float, float]:
    """(modules the case's sandbox imports anew, the baseline's, seconds to run each probe)."""
    t = time.perf_counter()
    ours = await client.execute_workflow(SandboxModules.run, id=f"probe-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
    t_ours = time.perf_counter() - t
    t = time.perf_counter()
    base = await client.execute_workflow(BaselineModules.run, id=f"probe-{uuid.uuid4().hex[:8]}", task_queue=task_queue)
    return ours, base, t_ours, time.perf_counter() - t


async def run(
    client: Client,
    db: Database,
    watcher: FirstSteps,
    worker: WorkerProcess,
    task_queue: str,
    live: list[str],
    n_live: int,
    m_idle: int,
    samples: int,
    concurrency: int,
) -> tuple[Table, Table]:
    """Items 2 and 3: the worker's memory per cached live case against a timer-only workflow, then the latency of
    `record_payment` against a no-op update with `n_live` live cases on the server (`live` are item 1's)."""
    tag = uuid.uuid4().hex[:6]
    sandbox = await sandbox_modules(client, task_queue)
    rss, inputs, now = await _idle_then_cases(client, db, watcher, worker, task_queue, tag, m_idle, concurrency)
    live = live + [i.loan_id for i in inputs]
    quiet, rss_quiet = await _quiet_cases(client, db, worker, task_queue, tag, max(0, n_live - len(live)), concurrency, now)
    live = live + [i.loan_id for i in quiet]
    memory = _memory_table(sandbox, rss, rss_quiet, m_idle, len(quiet))
    reaction = await _reaction(client, tag, live, samples, m_idle, len(quiet))
    return memory, reaction


async def _idle_then_cases(
    client: Client,
    db: Database,
    watcher: FirstSteps,
    worker: WorkerProcess,
    task_queue: str,
    tag: str,
    m_idle: int,
    concurrency: int,
) -> tuple[tuple[int, int, int], list, dt.datetime]:
    """The worker's RSS at the start, after `m_idle` timer-only workflows and after as many cases past their first
    step (each difference is one side of item 2), those cases' inputs and the time they were opened from."""
    rss0 = await worker.rss()

    async def idle(i: int) -> None:
        op = WithStartWorkflowOperation(
            Idle.run, 30, id=f"idle-{tag}-{i}", task_queue=task_queue, id_conflict_policy=WorkflowIDConflictPolicy.FAIL
        )
        await client.execute_update_with_start_workflow(Idle.ready, start_workflow_operation=op)

    await closed_loop(range(m_idle), concurrency, idle)
    rss1 = await worker.rss()
    now = dt.datetime.now(dt.UTC)
    inputs = case_inputs(f"M{tag}", m_idle, now)
    await asyncio.to_thread(db.seed, inputs)

    async def case(inp) -> None:
        assert await start_case(client, inp, task_queue)
        await watcher.wait(inp.loan_id)

    await closed_loop(inputs, concurrency, case)
    rss2 = await worker.rss()
    return (rss0, rss1, rss2), inputs, now


async def _quiet_cases(
    client: Client, db: Database, worker: WorkerProcess, task_queue: str, tag: str, count: int, concurrency: int, now: dt.datetime
) -> tuple[list, int | None]:
    """The rest of the live cases, opened the day before their due date so each waits for DPD 1 on a timer, and the
    worker's RSS once their first tasks are done (None when there are none)."""
    quiet = case_inputs(f"Q{tag}", count, now, dpd=-1)
    await asyncio.to_thread(db.seed, quiet)

    async def start_quiet(inp) -> None:
        assert await start_case(client, inp, task_queue)

    await closed_loop(quiet, concurrency, start_quiet)
    if not quiet:
        return quiet, None
    # their first tasks are done once the last ones answer a query and the worker is idle
    await wait_idle(worker.pid)
    for inp in quiet[-20:]:
        for _attempt in range(30):  # a busy server times a query out while first tasks are queued
            try:
                await client.get_workflow_handle(workflow_id(inp.loan_id)).query(
                    CollectionCase.status, rpc_timeout=dt.timedelta(seconds=20)
                )
                break
            except RPCError:
                await asyncio.sleep(1)
    await wait_idle(worker.pid)
    return quiet, await worker.rss()


def _memory_table(
    sandbox: tuple[list[str], list[str], float, float],
    rss: tuple[int, int, int],
    rss_quiet: int | None,
    m_idle: int,
    n_quiet: int,
) -> Table:
    """Item 2's rows: RSS per live case against the timer-only workflow, and what the case's sandbox imports."""
    ours_mods, base_mods, t_ours, t_base = sandbox
    heavy = sorted(m for m in ours_mods if m.split(".")[0] in HEAVY)
    rss0, rss1, rss2 = rss
    per_idle = (rss1 - rss0) / m_idle
    # a timer-only workflow costs a few KiB: at a small size the worker's RSS after gc can even fall, and then there
    # is no baseline to divide by (the row says so rather than print a negative figure or a meaningless ratio)
    idle_kib = per_idle / 1024 if per_idle > 0 else None
    idle_note = "" if idle_kib is not None else f"; baseline below the measurement's noise at {m_idle} workflows"
    per_case = (rss2 - rss1) / m_idle
    memory = Table("2. Memory per cached live workflow (worker RSS after gc)").add(
        Row(
            "RSS per live case",
            per_case / 1024,
            idle_kib,
            "KiB",
            "<= 2",
            note="case after its first step, waiting on its next timer; baseline: a workflow waiting on a timer" + idle_note,
        ),
        Row(
            "heavy libraries imported inside the case's sandbox",
            len(heavy),
            None,
            "modules",
            "<= 0",
            goal_on="ours",
            note=", ".join(heavy),
        ),
        Row("modules imported anew per sandboxed case", len(ours_mods), len(base_mods), "modules", note=", ".join(ours_mods)),
    )
    if rss_quiet is not None:
        memory.add(
            Row(
                "RSS per live case not yet delinquent (no step run)",
                (rss_quiet - rss2) / n_quiet / 1024,
                idle_kib,
                "KiB",
                note="cases opened the day before their due date (item 3's filler)",
            )
        )
    memory.facts = {
        "cases and idle workflows measured": m_idle,
        "worker RSS (MiB) at start/after idle/after cases": f"{rss0 / MIB:.0f}/{rss1 / MIB:.0f}/{rss2 / MIB:.0f}",
        "first probe (case sandbox) / baseline probe (s)": f"{t_ours:.2f}/{t_base:.2f}",
    }
    return memory


async def _reaction(client: Client, tag: str, live: list[str], samples: int, m_idle: int, n_quiet: int) -> Table:
    """Item 3: a payment to a sampled live case, then a no-op update to an idle workflow, one at a time, alternating."""
    rng = random.Random(7)
    targets = rng.sample(live, min(samples, len(live)))
    lat_case: list[float] = []
    lat_noop: list[float] = []
    for k, loan_id in enumerate(targets):
        h = client.get_workflow_handle(workflow_id(loan_id))
        t = time.perf_counter()
        r = await h.execute_update(
            CollectionCase.record_payment, PaymentIn(payment_id=f"PAY-{tag}-{k}", amount="10.00", currency="CNY")
        )
        lat_case.append((time.perf_counter() - t) * 1000)
        assert r.status == "active" and not r.duplicate, r
        hi = client.get_workflow_handle(f"idle-{tag}-{rng.randrange(m_idle)}")
        t = time.perf_counter()
        await hi.execute_update(Idle.noop)
        lat_noop.append((time.perf_counter() - t) * 1000)

    reaction = Table(f"3. Reaction: update latency from the caller, {len(live):,} live cases on the server").add(
        *(
            Row(f"record_payment p{p}", percentile(lat_case, p), percentile(lat_noop, p), "ms", "<= 1.3" if p == 99 else "")
            for p in (50, 95, 99)
        ),
    )
    reaction.facts = {
        "updates each": len(targets),
        "live cases": len(live),
        "of which not yet delinquent": n_quiet,
        "idle workflows": m_idle,
        "order": "one at a time, alternating payment / no-op",
        "payment": "10.00 CNY partial, written to the ledger by a local activity",
    }
    return reaction
