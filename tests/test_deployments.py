"""Worker Versioning on the dev server: two builds of the worker serve side by side while cases run.

Build A is current and serves the cases; build B starts beside it and gets nothing until it is ramped (a share
of the cases, by workflow id) and then made current (every case, at its next workflow task: AUTO_UPGRADE); then
A is made current again (the rollback). Each step sends every case a payment (an update: a workflow task) and
reads which build completed that task. The code of the two builds is the same (the build ids are two strings):
this is the mechanics; tests/test_replay.py guards the determinism that lets one build replay another's
histories. docs/operations.md "Rolling out a new worker build".
"""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import uuid
from collections import Counter
from datetime import timedelta

import pytest
from temporalio import workflow
from temporalio.api.enums.v1 import EventType as ET
from temporalio.client import WorkflowExecutionStatus, WorkflowHandle, WorkflowUpdateRPCTimeoutOrCancelledError
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.worker import UnsandboxedWorkflowRunner, Worker

from devstack.binaries import find
from domain.models import PaymentIn
from infra import deployments
from infra.config import ROOT, WorkerSettings, load
from tests.conftest import Cases, suite_worker, terminate
from workflows.case import CollectionCase as W

CASES = 6
MOVE_WITHIN = 10.0  # seconds for a routing change to reach a case (it propagates to the task queue asynchronously)


@pytest.fixture(scope="module")
def env(dev_env):
    """The dev server: worker deployments are a server feature the time-skipping test server lacks."""
    return dev_env


class Run:
    """The test's cases and the builds that completed their workflow tasks."""

    def __init__(self, env, handles: list[WorkflowHandle]) -> None:
        self.env = env
        self.handles = handles
        self.paid = Counter[str]()

    async def pay(self, h: WorkflowHandle) -> str:
        """One payment (an update: a workflow task); the build that completed it (the case's versioning info)."""
        self.paid[h.id] += 1
        result = await h.execute_update(
            W.record_payment, PaymentIn(payment_id=f"{h.id}-{self.paid[h.id]}", amount="1.00", currency="CNY")
        )
        assert result.applied == "1.00" and not result.duplicate, result
        info = (await h.describe()).raw_description.workflow_execution_info.versioning_info
        assert info.behavior == VersioningBehavior.AUTO_UPGRADE.value, info
        return info.deployment_version.build_id

    async def served_by(self) -> dict[str, str]:
        """Every case paid once: which build served each."""
        return {h.id: await self.pay(h) for h in self.handles}

    async def move_to(self, build: str) -> None:
        """Pay each case until its tasks run on `build` (a routing change reaches the task queue within moments)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MOVE_WITHIN
        for h in self.handles:
            while (served := await self.pay(h)) != build:
                assert loop.time() < deadline, f"{h.id} still served by {served}, not {build}"
                await asyncio.sleep(0.1)


async def task_builds(h: WorkflowHandle) -> list[str]:
    """The builds that completed the case's workflow tasks, in order, each run of one build once; and the case
    has no failed workflow task (a non-determinism error would be one)."""
    builds: list[str] = []
    for e in (await h.fetch_history()).events:
        assert e.event_type != ET.EVENT_TYPE_WORKFLOW_TASK_FAILED, e.workflow_task_failed_event_attributes
        if e.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            build = e.workflow_task_completed_event_attributes.deployment_version.build_id
            if not builds or builds[-1] != build:
                builds.append(build)
    return builds


async def cli(env, deployment: str, *args: str) -> str:
    """`python -m infra.deployments ARGS` against the test's server and deployment: its output (it must exit 0)."""
    environ = dict(
        os.environ,
        TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        TEMPORAL_NAMESPACE=env.client.namespace,
        WORKER_DEPLOYMENT_NAME=deployment,
    )
    argv = [sys.executable, "-m", "infra.deployments", *args]
    r = await asyncio.to_thread(subprocess.run, argv, cwd=ROOT, env=environ, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout


async def test_two_builds_serve_side_by_side_through_a_ramp_a_rollout_and_a_rollback(env, repo, gateway):
    client = env.client
    name = f"collections-{uuid.uuid4().hex[:6]}"

    def build(b: str) -> WorkerDeploymentVersion:
        return WorkerDeploymentVersion(deployment_name=name, build_id=b)

    cases = Cases(env, repo)
    try:
        async with suite_worker(env, repo, gateway, version=build("A")):
            await deployments.set_current(client, name, "A")
            # fixed ids: the ramp's share is chosen by workflow id, so the split below is the same on every run
            handles = [await cases.start(loan_id=f"DEPLOY-{i}") for i in range(CASES)]
            run = Run(env, handles)
            assert set((await run.served_by()).values()) == {"A"}

            async with suite_worker(env, repo, gateway, version=build("B")):
                # B polls beside A and gets nothing until it is ramped or made current
                await deployments.set_ramping(client, name, "B", 0)  # waits until B's pollers have registered
                r = await deployments.routing(client, name)
                assert (r.current, r.ramping) == ("A", None) and set(r.versions) == {"A", "B"}, r
                assert set((await run.served_by()).values()) == {"A"}

                # the ramp: half the cases (by workflow id) move to B, the others stay on A; both builds serve
                await deployments.set_ramping(client, name, "B", 50)
                split = Counter((await run.served_by()).values())
                assert set(split) == {"A", "B"}, split

                # the rollout: every case moves to B at its next workflow task
                await deployments.set_current(client, name, "B")
                await run.move_to("B")
                r = await deployments.routing(client, name)
                assert (r.current, r.ramping) == ("B", None), r
                assert set((await run.served_by()).values()) == {"B"}

                # the rollback, as the README does it (the command line): A current again, B still running; every
                # case goes back to A
                shown = await cli(env, name, "show")
                assert shown.splitlines()[0] == f"deployment {name}: current B" and "  A  draining" in shown, shown
                await cli(env, name, "current", "A")
                await run.move_to("A")
                assert set((await run.served_by()).values()) == {"A"}

            # B stopped: the cases go on on A alone
            assert set((await run.served_by()).values()) == {"A"}
            for h in handles:
                builds = await task_builds(h)
                assert builds[:1] == ["A"] and "B" in builds and builds[-1] == "A", (h.id, builds)
                desc = await h.describe()
                assert desc.status == WorkflowExecutionStatus.RUNNING, (h.id, desc.status)
                status = await h.query(W.status)
                assert status.total_paid == f"{run.paid[h.id]}.00", (h.id, status.total_paid, run.paid[h.id])
    finally:
        await terminate(cases.started)


def test_the_default_build_id_follows_the_worker_sources(tmp_path, monkeypatch):
    """Derived from the sources (the same code, the same id; a changed workflow, a new one), unless WORKER_BUILD_ID
    is set; WORKER_VERSIONING=0 polls unversioned."""
    first = deployments.source_build_id()
    assert first == deployments.source_build_id() and first.startswith("src-") and len(first) == 16
    src = tmp_path / "workflows"
    src.mkdir()
    (src / "case.py").write_text("v1")
    (tmp_path / "README.md").write_text("docs")
    monkeypatch.setattr(deployments, "ROOT", tmp_path)
    a = deployments.source_build_id()
    (tmp_path / "README.md").write_text("other docs")
    assert deployments.source_build_id() == a  # not a worker source
    (src / "case.py").write_text("v2")
    assert deployments.source_build_id() != a

    assert deployments.version(load(WorkerSettings, {})) == WorkerDeploymentVersion("collections", deployments.source_build_id())
    cfg = load(WorkerSettings, {"WORKER_DEPLOYMENT_NAME": "loans", "WORKER_BUILD_ID": "2026.12.1"})
    assert deployments.version(cfg) == WorkerDeploymentVersion("loans", "2026.12.1")
    assert deployments.version(load(WorkerSettings, {"WORKER_VERSIONING": "0"})) is None


# The rollback rule (docs/operations.md "Rolling out a new worker build"), on a toy workflow whose build B has one change more
# than build A, decided at the run's start as workflows/versioning.py decides every change.
NEW_CHANGE = "a-change-only-build-b-knows"


class _Toy:
    def __init__(self) -> None:
        self.n = 0

    @workflow.update
    async def bump(self) -> int:
        self.n += 1
        return self.n


@workflow.defn(name="Toy")
class ToyA(_Toy):
    @workflow.run
    async def run(self) -> None:
        await workflow.wait_condition(lambda: self.n >= 100)


@workflow.defn(name="Toy")
class ToyB(_Toy):
    @workflow.run
    async def run(self) -> None:
        self.changed = workflow.patched(NEW_CHANGE)  # decided in the first activation
        await workflow.wait_condition(lambda: self.n >= 100)


async def test_roll_back_only_to_a_build_that_knows_every_change_of_the_runs_it_will_serve(env):
    """A run that began on A and moved to B took B's change as absent (no marker: decided at its start) and goes back
    to A without harm; a run that began on B holds B's marker, and A fails its tasks (non-determinism). The README's
    rollback pins such runs to B first (B's workers still run), then makes A current: both go on."""
    client = env.client
    name, queue = f"toy-{uuid.uuid4().hex[:6]}", f"toy-{uuid.uuid4().hex[:6]}"

    def worker(cls, build: str) -> Worker:
        version = WorkerDeploymentVersion(deployment_name=name, build_id=build)
        config = deployments.deployment_config(version)
        # unsandboxed: the sandbox would import this test module (and the project) again for a toy
        return Worker(
            client, task_queue=queue, workflows=[cls], deployment_config=config, workflow_runner=UnsandboxedWorkflowRunner()
        )

    async def bumped_on(h: WorkflowHandle) -> str:
        await h.execute_update(ToyA.bump)
        return (await h.describe()).raw_description.workflow_execution_info.versioning_info.deployment_version.build_id

    async def markers(h: WorkflowHandle) -> int:
        return sum(e.event_type == ET.EVENT_TYPE_MARKER_RECORDED for e in (await h.fetch_history()).events)

    async def until(predicate, what: str) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + MOVE_WITHIN
        while not await predicate():
            assert loop.time() < deadline, what
            await asyncio.sleep(0.2)

    async with worker(ToyA, "A"), worker(ToyB, "B"):
        await deployments.set_current(client, name, "A")
        old = await client.start_workflow(ToyA.run, id=f"old-{name}", task_queue=queue)
        assert await bumped_on(old) == "A"
        await deployments.set_current(client, name, "B")
        broken = await client.start_workflow(ToyA.run, id=f"broken-{name}", task_queue=queue)
        assert await bumped_on(old) == "B" and await bumped_on(broken) == "B"
        assert (await markers(old), await markers(broken)) == (0, 1)

        # a rollback that breaks the rule: A cannot replay the run that began on B
        await deployments.set_current(client, name, "A")
        assert await bumped_on(old) == "A"
        with pytest.raises(WorkflowUpdateRPCTimeoutOrCancelledError):  # the update waits for a task that fails
            await broken.execute_update(ToyA.bump, rpc_timeout=timedelta(seconds=3))
        failed = [e for e in (await broken.fetch_history()).events if e.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_FAILED]
        assert failed and "Non-deprecated patch marker" in failed[-1].workflow_task_failed_event_attributes.failure.message
        await terminate([broken])

        # the rollback as the README does it: B current again, a run begins there; pin every running case that holds
        # one of B's changes to B, then make A current
        await deployments.set_current(client, name, "B")
        new = await client.start_workflow(ToyA.run, id=f"new-{name}", task_queue=queue)
        assert await bumped_on(new) == "B" and await bumped_on(old) == "B"
        query = f"TemporalChangeVersion = '{NEW_CHANGE}' AND ExecutionStatus = 'Running'"

        async def listed() -> bool:
            return [w.id async for w in client.list_workflows(query)] == [new.id]

        await until(listed, "visibility did not list the run that began on B")
        await temporal_cli(
            env,
            "workflow", "update-options", "--yes", "--query", query,
            "--versioning-override-behavior", "pinned",
            "--versioning-override-deployment-name", name,
            "--versioning-override-build-id", "B",
        )  # fmt: skip

        async def pinned() -> bool:
            return (await new.describe()).raw_description.workflow_execution_info.versioning_info.HasField("versioning_override")

        await until(pinned, "the batch did not pin the run")
        await deployments.set_current(client, name, "A")
        assert await bumped_on(new) == "B" and await bumped_on(old) == "A"
        assert not [e for e in (await new.fetch_history()).events if e.event_type == ET.EVENT_TYPE_WORKFLOW_TASK_FAILED]
        await terminate([old, new])


async def temporal_cli(env, *args: str) -> str:
    """The temporal CLI against the test's server: its output (it must exit 0)."""
    argv = [
        find("temporal"),
        *args,
        "--address",
        env.client.service_client.config.target_host,
        "--namespace",
        env.client.namespace,
    ]
    r = await asyncio.to_thread(subprocess.run, argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, (args, r.returncode, r.stdout, r.stderr)
    return r.stdout
