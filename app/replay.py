"""Replay every history on a server with this checkout's workflow code: before a deploy, and in the tests and the
chaos run (a change that would break a running case fails here, naming the case).

    python -m app.replay                              # every CollectionCase on the configured server
    python -m app.replay --query 'CaseStatus = "active"'

Exit 0 when every history replays, 1 when one does not (each named with its run), 2 when the server cannot be read.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path
from typing import Any

from temporalio.api.workflowservice.v1 import ListClosedWorkflowExecutionsRequest, ListOpenWorkflowExecutionsRequest
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from temporalio.worker import Replayer

from workflows.case import CollectionCase

ALL = "WorkflowType = 'CollectionCase'"


async def executions(client: Client, query: str = ALL) -> list[tuple[str, str]]:
    """(workflow id, run id) of every execution on the server, open and closed. The time-skipping server has no
    visibility queries: there, its open and closed lists."""
    try:
        return [(wf.id, wf.run_id) async for wf in client.list_workflows(query)]
    except RPCError as exc:
        if exc.status != RPCStatusCode.UNIMPLEMENTED:
            raise
    found: list[tuple[str, str]] = []
    svc, ns = client.workflow_service, client.namespace
    for closed in (False, True):
        token = b""
        while True:
            if closed:
                page: Any = await svc.list_closed_workflow_executions(
                    ListClosedWorkflowExecutionsRequest(namespace=ns, maximum_page_size=1000, next_page_token=token)
                )
            else:
                page = await svc.list_open_workflow_executions(
                    ListOpenWorkflowExecutionsRequest(namespace=ns, maximum_page_size=1000, next_page_token=token)
                )
            found += [(e.execution.workflow_id, e.execution.run_id) for e in page.executions]
            token = page.next_page_token
            if not token:
                break
    return found


async def replay_every_history(client: Client, query: str = ALL, keep: Path | None = None) -> tuple[int, list[str]]:
    """Fetch every history on the server (open and closed, every run) and replay each with today's workflow code.
    Returns how many were replayed and one line per failure, naming the workflow and run."""
    replayer = Replayer(workflows=[CollectionCase], data_converter=client.data_converter)
    failures: list[str] = []
    runs = await executions(client, query)
    for workflow_id, run_id in runs:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
        if result.replay_failure is not None:
            if keep is not None:  # the history, as the server gave it (payloads encrypted), for a replay by hand
                keep.mkdir(parents=True, exist_ok=True)
                (keep / f"{workflow_id}-{run_id}.json").write_text(history.to_json())
            failures.append(f"{workflow_id} (run {run_id}): {str(result.replay_failure)[:300]}")
    return len(runs), failures


async def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m app.replay", description=__doc__.splitlines()[0])
    ap.add_argument("--query", default=ALL, help="a visibility query (default: every CollectionCase)")
    args = ap.parse_args(argv)
    from infra.temporal import connect

    try:
        client = await connect()
        count, failures = await replay_every_history(client, args.query)
    except RPCError as exc:
        print(f"replay: cannot read the server: {exc}", file=sys.stderr)
        return 2
    for f in failures:
        print(f"FAILED {f}")
    print(f"{count} histories replayed, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
