"""1. Start throughput: cases started (start + the reminder's deliveries recorded) per second, against the peer
(the same step written the samples' way, bench/peer.py, on a worker process of its own) and a no-op workflow
(on the case's worker), started at the same concurrency on the same server, in alternating rounds; each
kind's latency and its worker process's own CPU per start."""

from __future__ import annotations

import asyncio
import os
import statistics
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from temporalio.client import Client

from app.opening import start_case
from bench.harness import Database, FirstSteps, WorkerProcess, case_inputs
from bench.noop import Noop
from bench.peer import PeerReminder, peer_loan
from bench.peer import workflow_id as peer_workflow_id
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


FIRST_STEP_TIMEOUT = 120  # seconds: a first step not recorded by then is a broken worker, not a slow one


@dataclass
class StartResult:
    table: Table
    case_rate: float
    noop_rate: float
    live: list[str] = field(default_factory=list)  # loan ids of the cases now waiting on their next step
    peer_rate: float | None = None
    peer_loans: list[str] = field(default_factory=list)  # loan ids the peer ran
    figures: dict[str, dict[str, float]] = field(default_factory=dict)  # kind -> rate, p50, p99 (ms), cpu (ms/start)


@dataclass
class Peer:
    """The peer baseline (bench/peer.py): its own client (the SDK's default converter), task queue and worker process."""

    client: Client
    task_queue: str
    worker: WorkerProcess | None = None


# kind -> (how to run one to its first step, its items, the worker whose CPU it costs)
_Kinds = dict[str, tuple[Callable[[Any], Awaitable[None]], list, WorkerProcess | None]]


async def run(
    client: Client,
    db: Database,
    watcher: FirstSteps,
    task_queue: str,
    n: int,
    concurrency: int,
    rounds: int = 2,
    warmup: int = 20,
    worker: WorkerProcess | None = None,
    peer: Peer | None = None,
) -> StartResult:
    """`n` of each kind (no-op, case and, given `peer`, the peer), `concurrency` in flight, in `rounds` rounds whose
    order alternates (no-op, case, peer; then peer, case, no-op), so that a drift of the shared machine's load
    falls on every kind alike. CPU is each kind's own worker process's, read around its own batches."""
    now = await asyncio.to_thread(lambda: __import__("datetime").datetime.now(__import__("datetime").timezone.utc))
    tag = uuid.uuid4().hex[:6]
    inputs = case_inputs(f"S{tag}", n + warmup, now)
    peers = case_inputs(f"P{tag}", n + warmup, now) if peer else []
    await asyncio.to_thread(db.seed, inputs + peers)
    kinds = _kinds(client, watcher, task_queue, tag, n + warmup, inputs, peers, worker, peer)
    figures, done = await _measure(kinds, n, concurrency, rounds, warmup)
    table = _table(figures, peer, worker)
    table.facts = {
        "workflows each": done["case"],
        "concurrency": concurrency,
        "rounds (alternating order)": rounds,
        "failed contacts": watcher.failed,
        "load average (1 min) at the end": round(os.getloadavg()[0], 2),
    }
    return StartResult(
        table,
        figures["case"]["rate"],
        figures["noop"]["rate"],
        [i.loan_id for i in inputs],
        peer_rate=figures["peer"]["rate"] if peer is not None else None,
        peer_loans=[i.loan_id for i in peers],
        figures=figures,
    )


def _kinds(
    client: Client,
    watcher: FirstSteps,
    task_queue: str,
    tag: str,
    count: int,
    inputs: list[CaseInput],
    peers: list[CaseInput],
    worker: WorkerProcess | None,
    peer: Peer | None,
) -> _Kinds:
    """The kinds to measure: the no-op workflow, the case and, given `peer`, the peer, each run to its first step."""

    async def noop(i: int) -> None:
        h = await client.start_workflow(Noop.run, id=f"noop-{tag}-{i}", task_queue=task_queue)
        await h.result()

    async def case(inp: CaseInput) -> None:
        assert await start_case(client, inp, task_queue)
        await asyncio.wait_for(watcher.wait(inp.loan_id), FIRST_STEP_TIMEOUT)

    async def peer_case(inp: CaseInput) -> None:
        assert peer is not None
        await peer.client.start_workflow(
            PeerReminder.run, peer_loan(inp), id=peer_workflow_id(inp.loan_id), task_queue=peer.task_queue
        )
        await asyncio.wait_for(watcher.wait(inp.loan_id), FIRST_STEP_TIMEOUT)

    kinds: _Kinds = {
        "noop": (noop, list(range(count)), worker),
        "case": (case, inputs, worker),
    }
    if peer is not None:
        kinds["peer"] = (peer_case, peers, peer.worker)
    return kinds


async def _measure(kinds: _Kinds, n: int, concurrency: int, rounds: int, warmup: int) -> tuple[dict, dict[str, int]]:
    """Warms every kind up, then runs them in alternating rounds: kind -> rate, p50, p99 and CPU per start, and
    kind -> how many were measured."""

    async def cpu_of(w: WorkerProcess | None) -> float:
        return await w.cpu() if w is not None else 0.0

    # warm-up: the workers' first activations, connection pools, the server's caches
    for one, items, _w in kinds.values():
        await closed_loop(items[:warmup], min(concurrency, warmup), one)

    per_round = max(1, n // rounds)
    secs = dict.fromkeys(kinds, 0.0)
    cpu = dict.fromkeys(kinds, 0.0)
    lat: dict[str, list[float]] = {k: [] for k in kinds}
    done = dict.fromkeys(kinds, 0)
    order = list(kinds)
    for r in range(rounds):
        lo, hi = warmup + r * per_round, warmup + (n if r == rounds - 1 else (r + 1) * per_round)
        for kind in order if r % 2 == 0 else order[::-1]:
            one, items, w = kinds[kind]
            c0 = await cpu_of(w)
            s, lats = await closed_loop(items[lo:hi], concurrency, one)
            cpu[kind] += await cpu_of(w) - c0
            secs[kind] += s
            lat[kind] += lats
            done[kind] += hi - lo
    figures = {
        k: {
            "rate": done[k] / secs[k],
            "p50": statistics.median(lat[k]) * 1000,
            "p99": percentile(lat[k], 99) * 1000,
            "cpu": 1000 * cpu[k] / done[k],
        }
        for k in kinds
    }
    return figures, done


def _table(figures: dict, peer: Peer | None, worker: WorkerProcess | None) -> Table:
    """Item 1's rows: the case against the peer (when run) and against the no-op, throughput, latency and CPU."""
    c, o = figures["case"], figures["noop"]
    table = Table("1. Start throughput (Temporal dev server)")
    what = "case: start + reminder (SMS, email, letter) delivered and recorded"
    if peer is not None:
        p = figures["peer"]
        table.add(
            Row(
                "starts completed per second, case vs peer",
                c["rate"],
                p["rate"],
                "/s",
                ">= 1.5",
                note=what + "; baseline: the same step written the samples' way (bench/peer.py)",
            )
        )
    table.add(
        Row(
            "starts completed per second, case vs no-op",
            c["rate"],
            o["rate"],
            "/s",
            ">= 0.8",
            note=what + "; baseline: no-op workflow completed",
        )
    )
    for q in ("p50", "p99"):
        if peer is not None:
            table.add(Row(f"latency start → first step done, {q}, case vs peer", c[q], figures["peer"][q], "ms"))
        table.add(Row(f"latency start → first step done, {q}, case vs no-op", c[q], o[q], "ms"))
    if worker is not None:
        if peer is not None and peer.worker is not None:
            table.add(
                Row(
                    "worker CPU per start, case vs peer",
                    c["cpu"],
                    figures["peer"]["cpu"],
                    "ms",
                    "<= 0.6",
                    note="each worker process's own CPU time (time.process_time in it), read around its own batches",
                )
            )
        table.add(
            Row(
                "worker CPU per start, case vs no-op",
                c["cpu"],
                o["cpu"],
                "ms",
                "<= 3",
                note="the worker process's own CPU time, rounds alternating as above",
            )
        )
    return table


def percentile(xs: list[float], p: float) -> float:
    s = sorted(xs)
    k = (len(s) - 1) * p / 100
    lo = int(k)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (k - lo)
