"""The chaos run's inputs through the HTTP API (bench/chaos.py --via http): the API as its own process, and
the cases' scripts shared out between several client processes, each with one keep-alive connection pool and
the timeouts a bank's payment feed would set (a read timeout above the API's own answer deadline)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import os
import subprocess
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import httpx

from app import errors

API_DEADLINE = 30.0  # API_UPDATE_TIMEOUT: the API answers an input within this, or 503 with Retry-After
READ_TIMEOUT = 40.0  # the feed's read timeout: above the API's deadline, so that its 503 arrives first
ROOT = Path(__file__).resolve().parent.parent


class ApiProc:
    """`python -m api` on a port of its own, pointed at the run's server and database."""

    def __init__(self, workdir: Path, env: dict[str, str], port: int) -> None:
        self.env = dict(env, API_HOST="127.0.0.1", API_PORT=str(port), API_UPDATE_TIMEOUT=str(API_DEADLINE))
        self.url = f"http://127.0.0.1:{port}"
        self.log = workdir / "api.log"
        self.proc: subprocess.Popen | None = None

    async def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "api"],
                cwd=ROOT,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        deadline = time.monotonic() + 60
        async with httpx.AsyncClient(timeout=2) as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise RuntimeError(f"the API exited with {self.proc.returncode}; see {self.log}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/health")).status_code == 200:
                        return
                await asyncio.sleep(0.2)
        raise RuntimeError(f"the API did not answer /health within 60 s; see {self.log}")

    async def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                await asyncio.to_thread(self.proc.wait, 20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                await asyncio.to_thread(self.proc.wait)


def operator_tokens(repo) -> tuple[str, str]:
    """The feed's operator (payments, holds, promises, plans) and a second operator who approves what the first
    proposes (a complaint's release, a large waiver): a bearer token each."""
    from access.operators import Operators

    ops = Operators(repo)
    ops.ensure("chaos feed", ["collector", "payments", "supervisor", "compliance"])
    ops.ensure("chaos approver", ["supervisor", "compliance"])
    return ops.issue_token("chaos feed").token, ops.issue_token("chaos approver").token


class Http:
    """The backend bench.chaos.Driver sends through: one route per input, the answers as app.inputs gives them."""

    timeout = READ_TIMEOUT + 5

    def __init__(self, http: httpx.AsyncClient, feed: str, approver: str, temporal) -> None:
        self.http, self.temporal = http, temporal
        self.feed = {"Authorization": f"Bearer {feed}"}
        self.approver = {"Authorization": f"Bearer {approver}"}

    async def _post(self, path: str, body: dict, headers: dict[str, str]) -> tuple[int, dict]:
        r = await self.http.post(path, json=_json(body), headers=headers)
        data = r.json() if r.headers.get("content-type", "").startswith("application/json") else {}
        if r.status_code in (200, 202):
            return r.status_code, data
        err = data.get("error") or {}
        reason = err.get("reason") or r.text[:200]
        if r.status_code == 404:
            raise errors.NotFound(err.get("field") or "loan_id", reason)
        if r.status_code == 422:
            raise errors.BadInput(err.get("field") or "body", reason)
        if r.status_code == 503:
            from bench.chaos_inputs import Unanswered503

            raise Unanswered503(reason, float(r.headers.get("Retry-After") or 1))
        raise RuntimeError(f"HTTP {r.status_code}: {reason}")

    async def pay(self, loan: str, pid: str, amount: str) -> tuple[str, bool, str | None]:
        _, out = await self._post(f"/v1/loans/{loan}/payments", {"payment_id": pid, "amount": amount}, self.feed)
        return out["status"], out["duplicate"], out.get("applied")

    async def record_payment(self, loan: str, pid: str, amount: str) -> str:
        return (await self.pay(loan, pid, amount))[0]

    async def update(self, loan: str, command: str, fields: dict) -> Any:
        fields = dict(fields)
        if command == "pay":
            _, out = await self._post(f"/v1/loans/{loan}/payments", fields, self.feed)
            return out
        if command == "release":
            path = f"/v1/loans/{loan}/holds/{fields.pop('kind')}/release"
        else:
            path = f"/v1/loans/{loan}/{ {'promise': 'promises', 'plan': 'plans', 'hold': 'holds'}[command] }"
        _, out = await self._post(path, fields, self.feed)
        return Answer(accepted=out.get("accepted", True), message=out.get("message", ""))

    async def approve(self, loan: str) -> Any:
        _, out = await self._post(f"/v1/loans/{loan}/approval", {"decision": "approve"}, self.approver)
        return Answer(accepted=out.get("accepted", True), message=out.get("message", ""))

    async def finished(self, loan: str) -> bool:
        """The case's workflow has finished (a raw describe, bounded by its own RPC deadline)."""
        from temporalio.api.common.v1 import WorkflowExecution
        from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
        from temporalio.client import WorkflowExecutionStatus

        desc = await self.temporal.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(
                namespace=self.temporal.namespace, execution=WorkflowExecution(workflow_id=f"loan-{loan}")
            ),
            timeout=dt.timedelta(seconds=5),
        )
        return desc.workflow_execution_info.status != WorkflowExecutionStatus.RUNNING.value


@dataclass
class Answer:
    accepted: bool
    message: str


def _json(body: dict) -> dict:
    return {k: v.isoformat() if isinstance(v, dt.date) else v for k, v in body.items()}


@dataclass
class Shard:
    """One client process's part of the run: its cases, each with its inputs' times (time.monotonic(), which is
    the same clock in every process of the machine)."""

    api_url: str
    feed: str
    approver: str
    temporal_address: str
    models: list
    times: list[list[float]]
    t0: float
    give_up_at: float
    stalls: str = ""  # a file: the shard's waiting tasks, written if it is still running a minute after give_up_at


def drive(shard: Shard) -> tuple[list, Any]:
    """A client process: every script of its shard, through one keep-alive pool; its models and counters back."""
    return asyncio.run(_drive(shard))


async def _drive(shard: Shard) -> tuple[list, Any]:
    from temporalio.client import Client

    from bench.chaos_inputs import Counters, Driver, script

    temporal = await Client.connect(shard.temporal_address)
    counters = Counters()
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=32, keepalive_expiry=30)
    timeout = httpx.Timeout(READ_TIMEOUT, connect=5.0)
    async with httpx.AsyncClient(base_url=shard.api_url, limits=limits, timeout=timeout) as http:
        driver = Driver(Http(http, shard.feed, shard.approver, temporal), counters)
        driver.give_up_at = shard.give_up_at
        watch = asyncio.create_task(_watchdog(shard))
        await asyncio.gather(*(script(driver, m, times, shard.t0) for m, times in zip(shard.models, shard.times, strict=True)))
        watch.cancel()
    return shard.models, counters


async def _watchdog(shard: Shard) -> None:
    """Evidence for a stall: every task's stack, once, if the scripts still run a minute after they should have given
    up."""
    await asyncio.sleep(max(0.0, shard.give_up_at + 60 - time.monotonic()))
    if shard.stalls:
        import io

        out = io.StringIO()
        for task in asyncio.all_tasks():
            task.print_stack(file=out)
        Path(shard.stalls).write_text(out.getvalue(), encoding="utf-8")


async def drive_all(shards: list[Shard]) -> list[tuple[list, Any]]:
    """The shards in as many client processes (spawned: nothing of this process's event loop is inherited)."""
    loop = asyncio.get_running_loop()
    env_before = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = str(ROOT) + (os.pathsep + env_before if env_before else "")
    try:
        with ProcessPoolExecutor(max_workers=len(shards), mp_context=get_context("spawn")) as pool:
            return list(await asyncio.gather(*(loop.run_in_executor(pool, drive, s) for s in shards)))
    finally:
        if env_before is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = env_before
