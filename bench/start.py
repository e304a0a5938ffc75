"""1. Start throughput: cases started (start + the reminder's deliveries recorded) per second, against a
no-op workflow started at the same concurrency on the same server and worker, in alternating rounds."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field

from temporalio.client import Client

from app.opening import start_case
from bench.harness import Database, FirstSteps, case_inputs
from bench.noop import Noop
from bench.report import Row, Table
from domain.models import CaseInput


async def closed_loop(items: Iterable, concurrency: int, one: Callable[[object], Awaitable[None]]) -> tuple[float, list[float]]:
    """`concurrency` lanes, each starting the next item once its previous one is done; (seconds, latencies)."""
    it = iter(items)
    latencies: list[float] = []

    async def lane() -> None:
        for item in it:
            t = time.perf_counter()
            await one(item)
            latencies.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(lane() for _ in range(concurrency)))
    return time.perf_counter() - t0, latencies


@dataclass
class StartResult:
    table: Table
    case_rate: float
    noop_rate: float
    live: list[str] = field(default_factory=list)  # loan ids of the cases now waiting on their next step


def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process has used so far, from /proc: the worker's own, not the server's or
    the gateway's on the same cores."""
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def run(
    client: Client,
    db: Database,
    watcher: FirstSteps,
    task_queue: str,
    n: int,
    concurrency: int,
    rounds: int = 2,
    warmup: int = 20,
    worker_pid: int | None = None,
) -> StartResult:
    now = await asyncio.to_thread(lambda: __import__("datetime").datetime.now(__import__("datetime").timezone.utc))
    tag = uuid.uuid4().hex[:6]
    inputs = case_inputs(f"S{tag}", n + warmup, now)
    await asyncio.to_thread(db.seed, inputs)

    async def noop(i: int) -> None:
        h = await client.start_workflow(Noop.run, id=f"noop-{tag}-{i}", task_queue=task_queue)
        await h.result()

    async def case(inp: CaseInput) -> None:
        assert await start_case(client, inp, task_queue)
        await watcher.wait(inp.loan_id)

    # warm-up: the worker's first activations, connection pools, the server's caches
    await closed_loop(range(-warmup, 0), min(concurrency, warmup), noop)
    await closed_loop(inputs[:warmup], min(concurrency, warmup), case)

    per_round = max(1, n // rounds)
    secs = {"noop": 0.0, "case": 0.0}
    cpu = {"noop": 0.0, "case": 0.0}
    lat: dict[str, list[float]] = {"noop": [], "case": []}
    done = {"noop": 0, "case": 0}

    def worker_cpu() -> float:
        return process_cpu(worker_pid) if worker_pid else 0.0

    for r in range(rounds):
        lo, hi = warmup + r * per_round, warmup + (n if r == rounds - 1 else (r + 1) * per_round)
        c0 = worker_cpu()
        s, lats = await closed_loop(range(lo, hi), concurrency, noop)
        c1 = worker_cpu()
        secs["noop"] += s
        lat["noop"] += lats
        done["noop"] += hi - lo
        cpu["noop"] += c1 - c0
        s, lats = await closed_loop(inputs[lo:hi], concurrency, case)
        secs["case"] += s
        lat["case"] += lats
        done["case"] += hi - lo
        cpu["case"] += worker_cpu() - c1
    case_rate, noop_rate = done["case"] / secs["case"], done["noop"] / secs["noop"]

    def p50(xs: list[float]) -> float:
        return statistics.median(xs) * 1000

    table = Table("1. Start throughput (Temporal dev server)").add(
        Row(
            "starts completed per second",
            case_rate,
            noop_rate,
            "/s",
            ">= 0.8",
            note="case: start + reminder (SMS, email, letter) delivered and recorded; baseline: no-op workflow completed",
        ),
        Row("latency start → first step done, p50", p50(lat["case"]), p50(lat["noop"]), "ms"),
    )
    if worker_pid:
        table.add(
            Row(
                "worker CPU per start",
                1000 * cpu["case"] / done["case"],
                1000 * cpu["noop"] / done["noop"],
                "ms",
                "<= 3",
                note="the worker process's own CPU time (/proc), rounds alternating as above",
            )
        )
    table.facts = {
        "workflows each": done["case"],
        "concurrency": concurrency,
        "rounds (alternating)": rounds,
        "failed contacts": watcher.failed,
    }
    return StartResult(table, case_rate, noop_rate, [i.loan_id for i in inputs])
