"""The worker: runs CollectionCase workflows and their activities on the `collections` task queue.

    python worker.py

Settings (infra/config.py WorkerSettings): DATABASE_URL (SQLite under var/), GATEWAY_URL
(http://127.0.0.1:8700), GATEWAY_API_KEY, WORKER_*; Temporal through the SDK's environment
configuration (infra/temporal.py: TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE, TEMPORAL_API_KEY,
TEMPORAL_TLS_*, TEMPORAL_PROFILE). A bad value stops the worker with the variable's name.

Worker Versioning (infra/deployments.py): the worker polls as build WORKER_BUILD_ID (default: a hash of its
sources) of deployment WORKER_DEPLOYMENT_NAME ("collections"), and gets tasks once that build is made current
(`python -m infra.deployments current`; the local stack does it). WORKER_VERSIONING=0 polls unversioned.
"""

from __future__ import annotations

import asyncio
import signal

import structlog
from temporalio.client import Client
from temporalio.common import WorkerDeploymentVersion
from temporalio.worker import UnsandboxedWorkflowRunner, Worker, WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

from activities.case import CaseActivities
from activities.gateway import GatewayClient
from activities.jobs import JobActivities
from app import calendars
from db.engine import make_engine
from db.repo import Repo
from domain import calendar
from encryption import codec
from infra import deployments, link_secret, metrics, tracing
from infra import logging as applog
from infra.config import settings
from infra.temporal import connect
from workflows.case import CollectionCase
from workflows.jobs import JOBS

log = structlog.get_logger("worker")


# Production's workers run the workflows without the SDK's sandbox (UnsandboxedWorkflowRunner). The sandbox
# checks only code imported inside it, and every module of ours is passed through (imported once per worker, not
# once per cached workflow: WORKFLOW_MODULES, with domain/ and activities.contracts already passed through by the
# workflow's imports), so in production it checked none of our code, while it cost an exec inside it for every
# payload sequence the SDK encodes or decodes and 27% of the workflows' own CPU per loan-year (README
# "Benchmarks"). The check stays where it catches a restricted call (datetime.now, random, I/O) before it ships:
# the test suite runs every workflow under the SDK's strict default sandbox (tests/conftest.py), and
# tests/test_replay*.py replay the recorded histories. `passthrough_runner` is the sandbox production ran before,
# kept for the benchmarks' comparison (python -m bench --sandbox passthrough).
WORKFLOW_MODULES = ("workflows",)


def workflow_runner() -> WorkflowRunner:
    """Production's workflow runner: no sandbox (see above)."""
    return UnsandboxedWorkflowRunner()


def passthrough_runner(*more_modules: str) -> SandboxedWorkflowRunner:
    """The SDK's default restrictions with WORKFLOW_MODULES (and `more_modules`) passed through, and opentelemetry,
    whose context and global provider the tracing interceptor's workflow spans share with the host."""
    return SandboxedWorkflowRunner(
        restrictions=SandboxRestrictions.default.with_passthrough_modules(
            *WORKFLOW_MODULES, *tracing.SANDBOX_PASSTHROUGH, *more_modules
        )
    )


def build_worker(
    client: Client,
    activities: CaseActivities,
    task_queue: str | None = None,
    version: WorkerDeploymentVersion | None = None,
    jobs: JobActivities | None = None,
    **tuning,
) -> Worker:
    """The cases and the daily jobs (workflows/jobs.py, started by their schedules: app/schedules.py); with
    `version`, a versioned worker (Worker Versioning): it polls as that build of that deployment, and its workflows
    are AUTO_UPGRADE (infra/deployments.py BEHAVIOR: a case moves to the current build at its next workflow task,
    and the patches of workflows/versioning.py keep its history replaying there)."""
    tuning.setdefault("workflow_runner", workflow_runner())
    if version is not None:
        tuning["deployment_config"] = deployments.deployment_config(version)
    jobs = jobs or JobActivities(getattr(activities, "repo", None), client)  # the benchmarks' stubs have none
    # a signal whose payload cannot be decrypted is the case's to record as rejected, not a failed task (codec.py)
    client = Client(**{**client.config(), "data_converter": codec.for_worker(client.data_converter)})
    return Worker(
        client,
        task_queue=task_queue or settings().task_queue,
        workflows=[CollectionCase, *JOBS],
        activities=[*activities.all(), *jobs.all()],
        **tuning,
    )


async def main() -> None:
    cfg = settings()
    applog.configure(cfg.log_format, cfg.log_level)
    calendar.use_folder(cfg.calendar_dir)
    try:
        link_secret.check()  # the borrower links' secret and address (a worker that cannot make them stops here)
    except link_secret.LinkSecretError as exc:
        log.error("worker not started", reason=str(exc))
        raise SystemExit(f"error: {exc}") from None
    tracing.setup("collections-worker")  # before connect(): its client (and so this worker) then carries the interceptor
    runtime = metrics.runtime(cfg.metrics_address)
    client = await connect(runtime=runtime)
    gateway = GatewayClient()  # one HTTP client per worker
    repo = Repo(make_engine())
    version = deployments.version(cfg)
    meter = runtime.metric_meter if runtime else None
    worker = build_worker(
        client,
        CaseActivities(repo, gateway),
        version=version,
        jobs=JobActivities(repo, client, meter),
        max_cached_workflows=cfg.max_cached_workflows,
        max_concurrent_activities=cfg.max_concurrent_activities,
        max_concurrent_workflow_tasks=cfg.max_concurrent_workflow_tasks,
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    log.info(
        "worker started",
        address=cfg.temporal_address,
        namespace=cfg.temporal_namespace,
        task_queue=cfg.task_queue,
        metrics=f"http://{cfg.metrics_address}/metrics" if cfg.metrics_address else "off",
        tracing=cfg.tracing_endpoint or "off",
        deployment=version.deployment_name if version else "off (unversioned)",
        build_id=version.build_id if version else None,
    )
    # the approved database calendars first (every minute, no restart); the calendar gauge from the start (the
    # daily CalendarWatch schedule, app/schedules.py, keeps it and warns)
    await asyncio.to_thread(calendars.refresh_quietly, repo)
    refresh = asyncio.create_task(calendars.watch(repo, cfg.calendar_refresh))
    metrics.check_calendar(meter, structlog.get_logger("calendar"))
    async with worker:
        check = asyncio.create_task(_say_if_not_serving(client, version)) if version else None
        await stop.wait()
        if check:
            check.cancel()
    refresh.cancel()
    await gateway.aclose()
    tracing.shutdown()
    log.info("worker stopped")


async def _say_if_not_serving(client: Client, version: WorkerDeploymentVersion, after: float = 10.0) -> None:
    """A versioned worker whose build is neither current nor ramping gets no tasks: say so once, with the remedy."""
    await asyncio.sleep(after)
    try:
        r = await deployments.routing(client, version.deployment_name)
    except Exception as exc:  # a server without worker deployments says so here too
        log.warning("could not read the worker deployment", deployment=version.deployment_name, error=str(exc))
        return
    if version.build_id in (r.current, r.ramping):
        log.info("serving", build_id=version.build_id, current=r.current, ramping=r.ramping, ramp=r.ramp_percentage)
    else:
        log.warning(
            "this build gets no tasks until it is made current (python -m infra.deployments current)",
            build_id=version.build_id,
            current=r.current or "(unversioned)",
            ramping=r.ramping,
        )


if __name__ == "__main__":
    from infra.config import SettingsError

    try:
        asyncio.run(main())
    except SettingsError as exc:
        raise SystemExit(f"error: {exc}") from None
