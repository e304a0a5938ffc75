"""The bench's worker process: `worker.build_worker` (CollectionCase and the real activities) plus the
bench's trivial workflows, on one task queue, in a process of its own so that its RSS is its own.

    python -m bench.worker '<json settings>'

Settings: address, namespace, task_queue, database_url, gateway_url, gateway_api_key, tuning (Worker
keyword arguments), log_level. Commands on stdin, one per line, answered on stdout as one JSON line:
`rss` (after gc and malloc_trim), `cpu` (the process's CPU seconds, all threads), `quit`.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import json
import os
import sys
import time

from temporalio.client import Client
from temporalio.worker import Worker

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from bench.noop import WORKFLOWS
from bench.probe import SandboxModules
from db.engine import make_engine
from db.repo import Repo
from domain import calendar
from encryption import codec
from infra import config
from infra import logging as applog
from worker import build_worker, passthrough_runner, workflow_runner

MARK = "@@bench "  # answers start with this; anything else a library prints on stdout is skipped


def rss_bytes(pid: int | str = "self") -> int:
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def settle_memory() -> None:
    """Collect garbage and give freed heap pages back, so that RSS counts what is still alive."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


async def bench_worker(client: Client, activities: CaseActivities, task_queue: str, **tuning) -> Worker:
    """The production worker (worker.build_worker, same settings) with the bench's workflows beside CollectionCase.

    build_worker fixes the workflow list, so its configuration is read from a worker built on a second,
    throwaway connection (the SDK allows one worker per task queue and connection) and reused here.
    """
    scratch = await Client.connect(
        client.service_client.config.target_host, namespace=client.namespace, data_converter=client.data_converter
    )
    config = build_worker(scratch, activities, task_queue, **tuning).config()
    config["client"] = client
    config["workflows"] = [*config["workflows"], *WORKFLOWS, SandboxModules]
    return Worker(**config)


async def peer_worker(settings: dict, gateway: GatewayClient) -> Worker:
    """The peer baseline (bench/peer.py) as the samples run it: the SDK's default data converter (no codec) and
    default workflow sandbox; the same database, gateway client settings and Worker tuning as the case's worker."""
    from bench.harness import OPEN_DEFAULT
    from bench.peer import PeerActivities, PeerReminder

    client = await Client.connect(settings["address"], namespace=settings.get("namespace", "default"))
    acts = PeerActivities(Repo(make_engine(settings["database_url"])), gateway, OPEN_DEFAULT.contact, OPEN_DEFAULT.day_seconds)
    return Worker(
        client,
        task_queue=settings["task_queue"],
        workflows=[PeerReminder],
        activities=acts.all(),
        **dict(settings.get("tuning", {})),
    )


async def main(settings: dict) -> None:
    applog.configure("json", settings.get("log_level", "info"))
    calendar.use_folder(config.settings().calendar_dir)  # the harness's stand-ins for the years ahead
    client = await Client.connect(
        settings["address"],
        namespace=settings.get("namespace", "default"),
        data_converter=codec.data_converter(codec.Keyring.from_env()),
    )
    gw = GatewaySettings.from_env()  # GATEWAY_TIMEOUT, GATEWAY_MAX_CONNECTIONS as in production
    gateway = GatewayClient(
        GatewaySettings(
            url=settings["gateway_url"],
            api_key=settings["gateway_api_key"],
            timeout=gw.timeout,
            max_connections=settings.get("gateway_max_connections") or gw.max_connections,
        )
    )
    if settings.get("threads"):  # the pool asyncio.to_thread uses (the activities' database calls)
        from concurrent.futures import ThreadPoolExecutor

        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(settings["threads"], thread_name_prefix="asyncio"))
    if settings.get("kind") == "peer":
        worker = await peer_worker(settings, gateway)
        await serve(worker)
        await gateway.aclose()
        return
    repo = Repo(make_engine(settings["database_url"]))
    tuning = dict(settings.get("tuning", {}))
    if settings.get("sandbox", "none") == "default":
        # the SDK's default sandbox, which re-imports every workflow module per cached workflow (for comparison)
        from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

        tuning["workflow_runner"] = SandboxedWorkflowRunner()
    elif settings.get("sandbox") == "passthrough":
        # the sandbox production ran before (worker.passthrough_runner: the workflow modules pass through), with the
        # bench's own workflow modules (the baselines, the probe) passed through the same way (for comparison)
        tuning["workflow_runner"] = passthrough_runner("bench")
    else:
        # production's: no sandbox (worker.workflow_runner)
        tuning["workflow_runner"] = workflow_runner()
    activities = CaseActivities(repo, gateway)
    if settings.get("activities") == "stub":
        from bench.stubs import StubActivities, missing_from_stubs

        missing = missing_from_stubs([a.__temporal_activity_definition.name for a in activities.all()])
        if missing:
            raise SystemExit(f"bench/stubs.py lacks the activities {missing}: add them")
        activities = StubActivities()
    worker = await bench_worker(client, activities, settings["task_queue"], **tuning)
    await serve(worker)
    await gateway.aclose()


async def serve(worker: Worker) -> None:
    """Run `worker`, answering the commands read on stdin until `quit` or end of input."""
    loop = asyncio.get_running_loop()
    out = sys.stdout

    def answer(obj: dict) -> None:
        out.write(MARK + json.dumps(obj) + "\n")
        out.flush()

    async with worker:
        answer({"ready": True, "pid": os.getpid()})
        reader = asyncio.StreamReader()
        await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
        while line := (await reader.readline()).decode().strip():
            if line == "rss":
                t = time.perf_counter()
                settle_memory()
                answer({"rss": rss_bytes(), "gc_seconds": round(time.perf_counter() - t, 3)})
            elif line == "cpu":  # this process's CPU time, every thread, at nanosecond resolution
                answer({"cpu": time.process_time()})
            elif line == "quit":
                break
            else:
                answer({"error": f"unknown command {line!r}"})


if __name__ == "__main__":
    asyncio.run(main(json.loads(sys.argv[1])))
