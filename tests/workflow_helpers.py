"""Helpers shared by the tests: workflow assertions, free ports, payloads in a history, running starter.py."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload
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


ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    """A free TCP port on loopback (for a server a test starts)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def payloads_in(msg: Message, path: str = "") -> list[tuple[str, Payload]]:
    """Every Payload inside a protobuf message, with where it was found."""
    if msg.DESCRIPTOR.full_name == "temporal.api.common.v1.Payload":
        return [(path, msg)]
    found = []
    for field, value in msg.ListFields():
        where = f"{path}.{field.name}"
        if field.message_type is None:
            continue
        if field.message_type.GetOptions().map_entry:
            if field.message_type.fields_by_name["value"].message_type is not None:
                for k, m in value.items():
                    found += payloads_in(m, f"{where}[{k}]")
        elif isinstance(value, Message):
            found += payloads_in(value, where)
        else:  # repeated
            for i, m in enumerate(value):
                found += payloads_in(m, f"{where}[{i}]")
    return found


async def run_starter(
    address: str, task_queue: str, database_url: str, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess:
    """Run starter.py without blocking the event loop (the test's worker must keep serving)."""
    e = dict(
        os.environ, TEMPORAL_ADDRESS=address, TEMPORAL_TASK_QUEUE=task_queue, LOG_FORMAT="json", DATABASE_URL=database_url, **env
    )
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "starter.py", *args, cwd=ROOT, env=e, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout)
    return subprocess.CompletedProcess(args, proc.returncode, out.decode(), err.decode())
