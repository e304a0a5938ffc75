"""The baselines: trivial workflows registered on the same worker as CollectionCase.

Only the standard library and temporalio are imported here, so these are the cheapest workflows
the worker can run: whatever a case costs above them is the case's own cost.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow


@workflow.defn(name="BenchNoop")
class Noop:
    """Starts and completes in its first workflow task (item 1's baseline)."""

    @workflow.run
    async def run(self) -> None:
        return None


@workflow.defn(name="BenchIdle")
class Idle:
    """Waits on a timer, like a case between two steps (items 2 and 3's baseline)."""

    def __init__(self) -> None:
        self.updates = 0

    @workflow.run
    async def run(self, days: int = 30) -> None:
        await workflow.sleep(timedelta(days=days))

    @workflow.update
    async def ready(self) -> int:
        """Answered in the first workflow task: the update-with-start that opens it returns once it waits."""
        return self.updates

    @workflow.update
    async def noop(self) -> int:
        """The no-op update whose latency item 3 compares record_payment with."""
        self.updates += 1
        return self.updates


WORKFLOWS = [Noop, Idle]


@workflow.defn(name="BenchBaselineModules")
class BaselineModules:
    """The sandbox listing of bench.probe.SandboxModules, for a module that imports nothing of the project."""

    @workflow.run
    async def run(self) -> list[str]:
        import sys

        from temporalio.worker.workflow_sandbox import _importer

        host = _importer._thread_local_sys_modules.orig
        inside = sys.modules.copy()
        return sorted(
            name for name, mod in inside.items() if name not in ("sys", "builtins", "__main__") and host.get(name) is not mod
        )


WORKFLOWS = [Noop, Idle, BaselineModules]
