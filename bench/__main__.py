"""`python -m bench`: every benchmark, each beside its baseline, printed as tables and saved as JSON.

    python -m bench                 # full size
    python -m bench --small         # the test suite's size (about a minute)
    python -m bench --only start,memory,reaction,import --live 2000
    python -m bench --profile       # py-spy the worker during items 1-3 and 5 and during item 4
    python -m bench --only direct --direct-loans 10000,100000 --direct-sweep 10000   # item 6 at its goal's sizes

Items 1, 2, 3 and 5 share one Temporal dev server, database, sandbox gateway and worker process (item 1's peer
baseline, bench/peer.py, has a worker process of its own); item 4 runs on the time-skipping test server with a
worker process of its own.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import datetime as dt
import sys
import time
from pathlib import Path

from rich.console import Console
from temporalio.client import Client

FULL = dict(
    start=1000,
    concurrency=32,
    idle=2000,
    live=10_000,
    samples=1000,
    portfolio=10_000,
    days=365,
    spread=30,
    import_rows=1000,
    direct_loans="10000",
    direct_sweep=0,
)
SMALL = dict(
    start=30,
    concurrency=16,
    idle=30,
    live=200,
    samples=40,
    portfolio=40,
    days=365,
    spread=5,
    import_rows=30,
    direct_loans="200",
    direct_sweep=0,
)
ITEMS = ("start", "memory", "reaction", "portfolio", "import", "direct")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--small", action="store_true", help="the test suite's sizes (default: full size)")
    p.add_argument("--only", default=",".join(ITEMS), help=f"comma-separated subset of {', '.join(ITEMS)}")
    p.add_argument("--start", type=int, help="item 1: workflows of each kind (full 1000)")
    p.add_argument("--concurrency", type=int, help="starts and updates in flight (full 32)")
    p.add_argument(
        "--rounds",
        type=int,
        default=2,
        help="item 1: rounds, each kind once per round in alternating order (more rounds spread a shared machine's drift)",
    )
    p.add_argument("--idle", type=int, help="item 2: idle workflows and cases measured (full 2000)")
    p.add_argument("--live", type=int, help="item 3: live cases on the server (full 10000)")
    p.add_argument("--samples", type=int, help="item 3: updates of each kind (full 1000)")
    p.add_argument("--portfolio", type=int, help="item 4: loans (full 10000)")
    p.add_argument("--days", type=int, help="item 4: days walked (365)")
    p.add_argument("--spread", type=int, help="item 4: days over which the loans fall delinquent (full 30)")
    p.add_argument(
        "--portfolio-activities",
        default="real,stub",
        help="item 4 with the real activities (database, gateway), the in-memory stubs, or both (default)",
    )
    p.add_argument("--import-rows", type=int, dest="import_rows", help="item 5: CSV rows (full 1000)")
    p.add_argument(
        "--direct-loans",
        dest="direct_loans",
        help="item 6: portfolio sizes for the direct simulator, comma-separated (full 10000; 100000 too for the big figure)",
    )
    p.add_argument(
        "--direct-sweep", type=int, dest="direct_sweep", help="item 6: also a 12-variant sweep of this many loans (0: none)"
    )
    p.add_argument("--direct-workers", type=int, dest="direct_workers", help="item 6: processes (default: the core count)")
    p.add_argument(
        "--database",
        choices=("sqlite", "postgresql"),
        default="sqlite",
        help="system of record: a SQLite file (the local stack's) or a throwaway PostgreSQL (production's)",
    )
    p.add_argument(
        "--server-db",
        choices=("memory", "file"),
        default="file",
        help="the dev server's SQLite: a temp file with WAL (the local stack's) or in memory",
    )
    p.add_argument("--max-cached-workflows", type=int, help="worker cache (default: enough for every live workflow)")
    p.add_argument("--max-concurrent-workflow-tasks", type=int)
    p.add_argument(
        "--gateway-max-connections",
        type=int,
        default=10,
        help="GATEWAY_MAX_CONNECTIONS of the worker (production default 100; 10 measured faster)",
    )
    p.add_argument("--threads", type=int, help="the worker's to_thread pool (default: Python's, min(32, cpus + 4))")
    p.add_argument(
        "--sandbox",
        choices=("none", "passthrough", "default"),
        default="none",
        help="none (production's, worker.workflow_runner): no sandbox (UnsandboxedWorkflowRunner); passthrough: "
        "the workflow modules pass through the sandbox, imported once per worker (worker.passthrough_runner, "
        "production's before); default: the SDK's default sandbox, which imports them again for every cached "
        "workflow; the last two for comparison",
    )
    p.add_argument("--profile", action="store_true", help="py-spy the worker processes; summaries in var/bench/")
    p.add_argument("--json", type=Path, default=None, help="where to write the results (var/bench/latest.json)")
    return p


def sizes(args: argparse.Namespace) -> dict:
    base = dict(SMALL if args.small else FULL)
    for k in base:
        v = getattr(args, k, None)
        if v is not None:
            base[k] = v
    return base


@dataclasses.dataclass
class _Run:
    """What every item of one `python -m bench` run shares: its flags and sizes, the workers' tuning, the tables
    printed so far and the profiles written."""

    args: argparse.Namespace
    sz: dict
    console: Console
    tuning: dict
    wkw: dict
    tables: list = dataclasses.field(default_factory=list)
    profiles: dict[str, str] = dataclasses.field(default_factory=dict)

    def add(self, table) -> None:
        """Keeps a finished table for the summary and the JSON, and prints it at once (a long run shows its progress)."""
        self.tables.append(table)
        self.console.print(table.render())


def _worker_settings(args: argparse.Namespace) -> tuple[dict, dict]:
    """The workers' tuning (only the flags given, so the SDK's defaults stay otherwise) and their process options."""
    tuning = {}
    if args.max_concurrent_workflow_tasks:
        tuning["max_concurrent_workflow_tasks"] = args.max_concurrent_workflow_tasks
    wkw = dict(gateway_max_connections=args.gateway_max_connections, threads=args.threads, sandbox=args.sandbox)
    return tuning, wkw


async def main(args: argparse.Namespace) -> int:
    from bench import harness, report

    console = Console(width=max(Console().width, 140))
    only = {x.strip() for x in args.only.split(",") if x.strip()}
    unknown = only - set(ITEMS)
    if unknown:
        console.print(f"[red]unknown item(s): {', '.join(sorted(unknown))}[/]")
        return 2
    sz = sizes(args)
    harness.ensure_keys()
    machine = report.machine()
    console.print(report.machine_table(machine))
    tuning, wkw = _worker_settings(args)
    run = _Run(args, sz, console, tuning, wkw)
    started = time.perf_counter()

    with harness.tmpdir() as tmp, harness.gateway() as gw:
        folder = Path(tmp)
        if only & {"start", "memory", "reaction", "import"}:
            await _dev_server_items(run, only, folder, gw)
        if "portfolio" in only:
            await _portfolio_items(run, folder, gw)

    if "direct" in only:
        await _direct_item(run)

    _summarise(run, machine, started)
    return 0


async def _dev_server_items(run: _Run, only: set[str], folder: Path, gw) -> None:
    """Items 1, 2, 3 and 5 on one Temporal dev server, database and case worker, with the peer's worker beside it."""
    from bench import harness, start
    from bench.profiling import Profiler

    args, sz = run.args, run.sz
    with harness.database(args.database, folder) as db:
        async with harness.dev_server(folder / "temporal.db" if args.server_db == "file" else None) as env:
            cache = args.max_cached_workflows or (sz["start"] + sz["idle"] * 2 + sz["live"] + sz["import_rows"] + 1000)
            w = harness.WorkerProcess(
                harness.target(env.client),
                "bench",
                db.url,
                gw.url,
                gw.api_key,
                tuning={"max_cached_workflows": cache, **run.tuning},
                **run.wkw,
            )
            # the peer baseline (bench/peer.py) on a worker process of its own: default converter, no codec
            pw = harness.WorkerProcess(
                harness.target(env.client),
                "bench-peer",
                db.url,
                gw.url,
                gw.api_key,
                tuning={"max_cached_workflows": cache, **run.tuning},
                name="peer-worker",
                kind="peer",
                **run.wkw,
            )
            async with w, pw, harness.FirstSteps(db.engine) as watcher:
                peer = start.Peer(await Client.connect(harness.target(env.client)), "bench-peer", pw)
                prof = Profiler("worker-dev-server", w.pid) if args.profile else None
                pprof = Profiler("peer-worker-dev-server", pw.pid) if args.profile else None
                with prof or contextlib.nullcontext(), pprof or contextlib.nullcontext():
                    await _start_live_import(run, only, env, db, watcher, w, peer, folder)
                if prof:
                    run.profiles[prof.name] = prof.summary_path
                if pprof:
                    run.profiles[pprof.name] = pprof.summary_path


async def _start_live_import(run: _Run, only: set[str], env, db, watcher, w, peer, folder: Path) -> None:
    """Item 1 always (the others reuse its live cases and its rates), then items 2 and 3, then item 5, as asked."""
    from bench import importing, live, start

    sz = run.sz
    s = await start.run(
        env.client,
        db,
        watcher,
        "bench",
        sz["start"],
        sz["concurrency"],
        rounds=run.args.rounds,
        warmup=min(20, sz["start"]),
        worker=w,
        peer=peer,
    )
    s.table.facts["worker start (s)"] = round(w.started_in, 2)
    run.add(s.table)
    if only & {"memory", "reaction"}:
        mem, react = await live.run(
            env.client,
            db,
            watcher,
            w,
            "bench",
            s.live,
            sz["live"],
            sz["idle"],
            sz["samples"],
            sz["concurrency"],
        )
        for t in (mem, react):
            run.add(t)
    if "import" in only:
        t = await importing.run(
            env.client,
            db,
            watcher,
            "bench",
            folder,
            sz["import_rows"],
            sz["concurrency"],
            s.noop_rate,
            s.case_rate,
        )
        run.add(t)


async def _portfolio_items(run: _Run, folder: Path, gw) -> None:
    """Item 4 once per kind of activities asked for, each on a database of its own."""
    from bench import harness, portfolio

    args, sz = run.args, run.sz
    for kind in [k.strip() for k in args.portfolio_activities.split(",") if k.strip()]:
        (folder / f"portfolio-{kind}").mkdir(exist_ok=True)

        def db_factory(kind=kind):
            return harness.database(args.database, folder / f"portfolio-{kind}")

        t = await portfolio.run(
            sz["portfolio"],
            sz["days"],
            sz["spread"],
            sz["concurrency"],
            db_factory,
            gw,
            tuning={"max_cached_workflows": max(1000, sz["portfolio"] + 100), **run.tuning},
            worker_kw=run.wkw,
            profile=args.profile,
            profiles=run.profiles,
            activities=kind,
        )
        run.add(t)


async def _direct_item(run: _Run) -> None:
    """Item 6, the direct simulator, in a thread: it needs no server and runs its own worker processes."""
    from bench import direct

    t = await asyncio.to_thread(
        direct.run,
        [int(x) for x in str(run.sz["direct_loans"]).split(",") if x.strip()],
        run.sz["days"],
        run.sz["direct_sweep"] or None,
        run.args.direct_workers,
    )
    run.add(t)


def _summarise(run: _Run, machine: dict, started: float) -> None:
    """Prints every table again together, with the command and its time, and writes them all as JSON."""
    from bench import report
    from infra.config import ROOT

    args, console = run.args, run.console
    out = args.json or ROOT / "var" / "bench" / "latest.json"
    console.print()
    console.rule("all tables")
    report.print_tables(console, run.tables)
    elapsed = time.perf_counter() - started
    settings = {
        "sizes": run.sz,
        "database": args.database,
        "server_db": args.server_db,
        "tuning": run.tuning,
        **run.wkw,
        "command": "python -m bench " + " ".join(sys.argv[1:]),
        "seconds": round(elapsed, 1),
    }
    console.print(f"command: {settings['command']}   total {elapsed:.0f} s   results: {out}")
    if run.profiles:
        console.print("profiles: " + ", ".join(run.profiles.values()))
    report.save(
        out,
        {
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "machine": machine,
            "settings": settings,
            "tables": [t.to_json() for t in run.tables],
            "profiles": run.profiles,
        },
    )


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parser().parse_args())))
