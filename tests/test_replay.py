"""Replay saved histories: a workflow change that would break running cases fails here.

When such a change is intended, guard it with workflow.patched() and add new histories with
`python -m tests.record_histories` (keep the old ones).

The replayer decodes with the suite's converter (payloads encrypted with the test key, encryption/codec.py):
the histories recorded before encryption was on are plaintext and still decode, as those of cases
started before encryption do in production; the `*-test-only-2026-*` ones are encrypted.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio import workflow
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner

from tests.conftest import DATA_CONVERTER
from workflows.case import CollectionCase

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_present():
    assert len(HISTORIES) >= 3, "tests/histories/*.json missing: run python -m tests.record_histories"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path):
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=[CollectionCase], data_converter=DATA_CONVERTER)
    result = await replayer.replay_workflow(history, raise_on_replay_failure=True)
    assert result.replay_failure is None


async def test_a_nondeterministic_change_is_caught(monkeypatch):
    """The guard itself works: a valid change that drops each step's activities (what a running case's history
    recorded) fails replay with the SDK's NondeterminismError, not with an error of the changed code itself."""
    path = next(p for p in HISTORIES if p.stem.startswith("ladder"))
    history = WorkflowHistory.from_json("loan-R-LADDER", path.read_text())
    original = CollectionCase._run_step

    async def no_activities(self, idx):  # a change that drops the step's activities
        self.case.begin_step(idx, workflow.now())
        self.case.finish_step(idx, workflow.now())

    monkeypatch.setattr(CollectionCase, "_run_step", no_activities)
    # unsandboxed, so that the patched class is the one that runs
    replayer = Replayer(workflows=[CollectionCase], data_converter=DATA_CONVERTER, workflow_runner=UnsandboxedWorkflowRunner())
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    monkeypatch.setattr(CollectionCase, "_run_step", original)
    assert isinstance(result.replay_failure, workflow.NondeterminismError), repr(result.replay_failure)


async def test_raced_histories_replay_only_with_their_markers_taken_as_known(monkeypatch):
    """The race fixtures (recorded on the code before versioning.DECIDED_AT_START, a query answered while the
    gate's local activity ran) fail replay without versioning._known, with the error the demo's paid case showed."""
    from workflows import versioning

    raced = [p for p in HISTORIES if p.stem.startswith("race_")]
    assert raced, "tests/histories/race_* missing"
    monkeypatch.setattr(versioning, "_known", lambda change: None)
    replayer = Replayer(workflows=[CollectionCase], data_converter=DATA_CONVERTER, workflow_runner=UnsandboxedWorkflowRunner())
    for path in raced:
        history = WorkflowHistory.from_json(path.stem, path.read_text())
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        assert isinstance(result.replay_failure, workflow.NondeterminismError), path.name
        assert "Non-deprecated patch marker encountered for change send-rechecks" in str(result.replay_failure)


def test_the_sdk_still_keeps_what_versioning_reads():
    """versioning._known reads two attributes of the SDK's workflow instance (temporalio is pinned)."""
    import inspect

    from temporalio.worker._workflow_instance import _WorkflowInstanceImpl

    source = inspect.getsource(_WorkflowInstanceImpl.__init__)
    assert "self._patches_notified" in source and "self._patches_memoized" in source


def test_changes_are_asked_only_where_versioning_allows():
    """workflow.patched is called in workflows/versioning.py only, and there only in Versions.__init__ (the run's
    first activation, before any local activity can move it to another workflow task), mid_run (the changes from
    before DECIDED_AT_START) and _known."""
    import ast

    root = Path(__file__).resolve().parent.parent
    where: dict[str, list[str]] = {}
    for path in (root / "workflows").glob("*.py"):
        for fn in ast.walk(ast.parse(path.read_text())):
            if isinstance(fn, ast.FunctionDef | ast.AsyncFunctionDef):
                for node in ast.walk(fn):
                    if (
                        isinstance(node, ast.Call)
                        and isinstance(node.func, ast.Attribute)
                        and node.func.attr in ("patched", "deprecate_patch")
                    ):
                        where.setdefault(path.name, []).append(fn.name)
    assert set(where) == {"versioning.py"}, where
    assert set(where["versioning.py"]) == {"__init__", "_known", "mid_run"}, where
    assert where["versioning.py"].count("mid_run") == 1 and where["versioning.py"].count("_known") == 1, where
