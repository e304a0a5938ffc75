"""Which modules a case's workflow sandbox imports anew (rather than passing through from the worker).

The sandbox re-imports every non-pass-through module once per cached workflow, so a heavy library
imported there costs memory per live case and time on every first activation. This workflow imports
workflows.case the way CollectionCase's own sandbox does, and reports what was loaded inside it.
"""

from __future__ import annotations

import sys

from temporalio import workflow
from temporalio.worker.workflow_sandbox import _importer

import workflows.case  # noqa: F401  -  the same imports as the case's sandbox


@workflow.defn(name="BenchSandboxModules")
class SandboxModules:
    @workflow.run
    async def run(self) -> list[str]:
        host = _importer._thread_local_sys_modules.orig
        inside = sys.modules.copy()
        return sorted(
            name for name, mod in inside.items() if name not in ("sys", "builtins", "__main__") and host.get(name) is not mod
        )
