"""The worker: runs CollectionCase workflows and their activities on the `collections` task queue.

    python worker.py            # connects to TEMPORAL_ADDRESS (default localhost:7233)
"""

from __future__ import annotations

import asyncio
import signal

import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities.case import CaseActivities
from infra import logging as applog
from infra.config import settings
from infra.temporal import connect
from workflows.case import CollectionCase

log = structlog.get_logger("worker")


def build_worker(client: Client, activities: CaseActivities | None = None, task_queue: str | None = None,
                 **tuning) -> Worker:
    acts = activities or CaseActivities()
    return Worker(
        client,
        task_queue=task_queue or settings().task_queue,
        workflows=[CollectionCase],
        activities=acts.all(),
        **tuning,
    )


async def main() -> None:
    cfg = settings()
    applog.configure(cfg.log_format, cfg.log_level)
    client = await connect()
    worker = build_worker(client)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info("worker started", address=cfg.temporal_address, namespace=cfg.temporal_namespace, task_queue=cfg.task_queue)
    async with worker:
        await stop.wait()
    log.info("worker stopped")


if __name__ == "__main__":
    asyncio.run(main())
