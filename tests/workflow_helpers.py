"""Helpers for workflow tests."""

from __future__ import annotations

import pytest
from temporalio.client import WorkflowHandle, WorkflowUpdateFailedError
from temporalio.exceptions import ApplicationError

from workflows.case import CollectionCase


def comparable(status) -> dict:
    d = status.model_dump(mode="json")
    d.pop("as_of")
    return d


async def assert_rejected(handle: WorkflowHandle, update, arg, field: str, fragment: str = "") -> str:
    """The update is rejected naming `field`, and the case's status is identical before and after."""
    before = comparable(await handle.query(CollectionCase.status))
    with pytest.raises(WorkflowUpdateFailedError) as info:
        await handle.execute_update(update, arg)
    cause = info.value.cause
    assert isinstance(cause, ApplicationError) and cause.type == "InvalidInput", cause
    assert cause.message.startswith(f"{field}:"), cause.message
    assert fragment in cause.message, cause.message
    after = comparable(await handle.query(CollectionCase.status))
    assert before == after, {k: (before[k], after[k]) for k in before if before[k] != after[k]}
    return cause.message
