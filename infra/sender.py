"""Who sent a signal: the sender's Temporal identity (`temporal workflow signal --identity`, a client's `identity`).

The server records it on every WorkflowExecutionSignaled event and core hands it to the worker with the
signal, but the SDK (temporalio 1.35) does not pass it on to the handler. So the worker's instance class is
wrapped once, at import: while a signal job is applied, `SENDER` holds its identity, and the task the SDK then
creates for the handler copies that context (asyncio copies the current context into a new task). The handler
reads `sender()`. Deterministic: the identity comes from the history event, the same on every replay.

A test (tests/test_signals.py) checks the SDK still has the method this wraps; without it, senders read as
"unknown" and nothing else changes.
"""

from __future__ import annotations

from contextvars import ContextVar
from typing import Any

SENDER: ContextVar[str] = ContextVar("collections_signal_sender", default="")
UNKNOWN = "unknown"


def sender() -> str:
    """The identity of the client that sent the signal being handled ("unknown" if the worker could not tell)."""
    return SENDER.get() or UNKNOWN


def install() -> bool:
    """Wrap the SDK's signal application once (idempotent). False when the SDK no longer has the method."""
    from temporalio.worker import _workflow_instance as wi

    cls: Any = getattr(wi, "_WorkflowInstanceImpl", None)
    original = getattr(cls, "_apply_signal_workflow", None)
    if original is None:
        return False
    if getattr(original, "_collections_sender", False):
        return True

    def apply_signal_workflow(self: Any, job: Any) -> None:
        token = SENDER.set(str(getattr(job, "identity", "") or ""))
        try:
            original(self, job)
        finally:
            SENDER.reset(token)

    apply_signal_workflow._collections_sender = True  # type: ignore[attr-defined]
    cls._apply_signal_workflow = apply_signal_workflow
    return True


INSTALLED = install()
