"""Worker Versioning: which build a worker is, and which build serves the cases (docs/operations.md, "Rolling out").

Every worker polls as one version of a worker deployment: WORKER_DEPLOYMENT_NAME (default "collections") and
WORKER_BUILD_ID (default `source_build_id()`: a hash of the code the worker runs). The server sends a
deployment's tasks to its *current* version (and a share of them to a *ramping* one); a version that is
neither gets none, so a new build can start beside the old one, idle, until it is made current.

Cases are AUTO_UPGRADE (worker.py): a running case moves to the current build at its next workflow task. Cases
live for years, and PINNED would keep every build running until its last case ends; the patch discipline of
workflows/versioning.py is what lets a new build replay the old cases' histories, as before versioning.

    python -m infra.deployments build-id            the build id this checkout's worker polls as
    python -m infra.deployments current [BUILD_ID]  wait until that version polls (default: this checkout's
                                                    build), then make it current (roll out, or roll back;
                                                    --unversioned: back to workers without versioning)
    python -m infra.deployments ramp BUILD_ID PCT   send PCT % of the cases to BUILD_ID (0 ends the ramp)
    python -m infra.deployments show                the current and ramping versions, and every version's status

The same as `temporal worker deployment set-current-version / set-ramping-version / describe`, reading the
Temporal connection and WORKER_DEPLOYMENT_NAME as the worker does.
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
from dataclasses import dataclass
from datetime import timedelta

import temporalio
from temporalio.api.enums.v1 import RoutingConfigUpdateState, WorkerDeploymentVersionStatus, WorkerVersioningMode
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentRequest,
    SetWorkerDeploymentCurrentVersionRequest,
    SetWorkerDeploymentRampingVersionRequest,
)
from temporalio.client import Client
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import WorkerDeploymentConfig

from infra.config import ROOT, SettingsError, WorkerSettings, connect_config, load

# The code a worker process runs (worker.py imports nothing else of the project's). A change to any of it is a
# new build; a change elsewhere (tests, docs, the API, the console) is not, and needs no rollout.
WORKER_SOURCES = ("worker.py", "workflows", "domain", "activities", "db", "infra", "encryption")

# The choice for CollectionCase (docs/operations.md "Rolling out a new worker build"): move to the current build at the next task.
BEHAVIOR = VersioningBehavior.AUTO_UPGRADE


def source_build_id() -> str:
    """`src-` and 12 hex digits of a SHA-256 over the worker's Python sources (paths and bytes) and the SDK version.

    Not the git commit: the image has no .git (.dockerignore), a commit that touches only docs or tests would be
    a new version to roll out for nothing, and uncommitted edits would pass as the commit. The same code gets
    the same id in a checkout, in CI and in the image, so its workers form one version wherever they start."""
    digest = hashlib.sha256(f"temporalio {temporalio.__version__}\n".encode())
    files = []
    for name in WORKER_SOURCES:
        path = ROOT / name
        files += [path] if path.is_file() else sorted(p for p in path.rglob("*.py") if "__pycache__" not in p.parts)
    for f in files:
        digest.update(f"{f.relative_to(ROOT).as_posix()}\n".encode())
        digest.update(f.read_bytes())
        digest.update(b"\0")
    return f"src-{digest.hexdigest()[:12]}"


def version(cfg: WorkerSettings) -> WorkerDeploymentVersion | None:
    """This worker's version, or None when WORKER_VERSIONING is off (a server without worker deployments)."""
    if not cfg.versioning:
        return None
    return WorkerDeploymentVersion(deployment_name=cfg.deployment_name, build_id=cfg.build_id or source_build_id())


def deployment_config(ver: WorkerDeploymentVersion) -> WorkerDeploymentConfig:
    return WorkerDeploymentConfig(version=ver, use_worker_versioning=True, default_versioning_behavior=BEHAVIOR)


@dataclass(frozen=True)
class Routing:
    current: str | None  # build id; None: unversioned workers get the tasks
    ramping: str | None
    ramp_percentage: float
    propagated: bool  # the task queues follow this routing (False while the server is still telling them)
    versions: dict[str, str]  # build id -> its status: current, ramping, draining (old cases may still need it), drained, ...


def _not_polled_yet(exc: RPCError) -> bool:
    # "no Worker Deployment found with name ...; does your Worker Deployment have pollers?", "build ID ... not found"
    return exc.status in (RPCStatusCode.NOT_FOUND, RPCStatusCode.FAILED_PRECONDITION) or "not found" in exc.message


async def _retry(call, timeout: float):
    """`call()` again while the version is not known to the server yet (its workers register as they first poll)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        try:
            return await call()
        except RPCError as exc:
            if not _not_polled_yet(exc) or loop.time() >= deadline:
                raise
        await asyncio.sleep(0.25)


async def set_current(client: Client, deployment: str, build_id: str | None, *, timeout: float = 30.0) -> None:
    """Make `build_id` the deployment's current version (None: unversioned workers), waiting up to `timeout` seconds
    for its workers to poll. Roll-out and roll-back alike: the cases follow at their next workflow task."""

    async def call():
        return await client.workflow_service.set_worker_deployment_current_version(
            SetWorkerDeploymentCurrentVersionRequest(
                namespace=client.namespace, deployment_name=deployment, build_id=build_id or "", identity=client.identity
            ),
            timeout=timedelta(seconds=10),
        )

    await _retry(call, timeout)
    await _propagated(client, deployment, timeout)


async def set_ramping(client: Client, deployment: str, build_id: str, percentage: float, *, timeout: float = 30.0) -> None:
    """Send `percentage` % of the cases (chosen by workflow id) to `build_id` beside the current one; 0 ends the ramp."""

    async def call():
        return await client.workflow_service.set_worker_deployment_ramping_version(
            SetWorkerDeploymentRampingVersionRequest(
                namespace=client.namespace,
                deployment_name=deployment,
                build_id="" if percentage == 0 else build_id,
                percentage=percentage,
                identity=client.identity,
            ),
            timeout=timedelta(seconds=10),
        )

    await _retry(call, timeout)
    await _propagated(client, deployment, timeout)


async def _propagated(client: Client, deployment: str, timeout: float) -> None:
    """Until the server has told the deployment's task queues (a server that does not report it: no wait)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not (await routing(client, deployment)).propagated and loop.time() < deadline:
        await asyncio.sleep(0.1)


async def make_current(client: Client, poller_options, *, timeout: float = 5.0) -> str | None:
    """The build of a poller (DescribeTaskQueue's `pollers[].deployment_options`) made current unless it is: the build id
    when it was made so now, else None (already current, or an unversioned worker). The local stack's step after it
    starts its one worker, and the chaos bench's."""
    if poller_options.worker_versioning_mode != WorkerVersioningMode.WORKER_VERSIONING_MODE_VERSIONED:
        return None
    name, build = poller_options.deployment_name, poller_options.build_id
    if (await routing(client, name)).current == build:
        return None
    await set_current(client, name, build, timeout=timeout)
    return build


async def routing(client: Client, deployment: str) -> Routing:
    info = (
        await client.workflow_service.describe_worker_deployment(
            DescribeWorkerDeploymentRequest(namespace=client.namespace, deployment_name=deployment),
            timeout=timedelta(seconds=10),
        )
    ).worker_deployment_info
    rc = info.routing_config
    current = rc.current_deployment_version.build_id if rc.HasField("current_deployment_version") else None
    ramping = rc.ramping_deployment_version.build_id if rc.HasField("ramping_deployment_version") else None
    return Routing(
        current=current or None,
        ramping=ramping or None,
        ramp_percentage=rc.ramping_version_percentage,
        propagated=info.routing_config_update_state != RoutingConfigUpdateState.ROUTING_CONFIG_UPDATE_STATE_IN_PROGRESS,
        versions={
            s.deployment_version.build_id: WorkerDeploymentVersionStatus.Name(s.status)
            .removeprefix("WORKER_DEPLOYMENT_VERSION_STATUS_")
            .lower()
            for s in info.version_summaries
        },
    )


async def _main(argv: list[str]) -> int:
    cfg = load(WorkerSettings)
    cmd, args = (argv[0], argv[1:]) if argv else ("show", [])
    pct = None
    if cmd == "ramp" and len(args) == 2:
        try:
            pct = float(args[1])
        except ValueError:
            pct = -1
        if not 0 <= pct <= 100:
            print(f"error: ramp: {args[1]!r} is not a percentage from 0 to 100", file=sys.stderr)
            return 2
    elif not ((cmd == "current" and len(args) <= 1) or (cmd in ("show", "build-id") and not args)):
        print(__doc__, file=sys.stderr)
        return 2
    if cmd == "build-id":
        print(cfg.build_id or source_build_id())
        return 0
    client = await Client.connect(**connect_config())  # no payloads pass here: no keys needed
    name = cfg.deployment_name
    if cmd == "current":
        build = args[0] if args else (cfg.build_id or source_build_id())
        await set_current(client, name, None if build == "--unversioned" else build)
        print(f"{name}: {build} is current")
    elif pct is not None:
        await set_ramping(client, name, args[0], pct)
        print(f"{name}: {pct:g} % of the cases to {args[0]}" if pct else f"{name}: no ramp")
    else:
        r = await routing(client, name)
        print(f"deployment {name}: current {r.current or '(unversioned)'}", end="")
        print(f", ramping {r.ramping} at {r.ramp_percentage:g} %" if r.ramping else "")
        for build, status in r.versions.items():
            print(f"  {build}  {status}")
    return 0


def main(argv: list[str]) -> int:
    try:
        return asyncio.run(_main(argv))
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
    except RPCError as exc:
        print(f"error: {exc.message}", file=sys.stderr)
    return 1


if __name__ == "__main__":
    from infra.process import leave

    leave(main(sys.argv[1:]))  # without interpreter finalisation, which the client's threads may abort (infra/process.py)
