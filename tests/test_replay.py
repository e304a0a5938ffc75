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
