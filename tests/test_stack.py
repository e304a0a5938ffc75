"""The local stack for real: the Temporal CLI dev server (SQLite), the worker, the API and the codec
server, on free loopback ports.

Real time, real processes: `python -m devstack.stack start`, a demo-policy case, `stop`, and a
restart that finds the case again in the SQLite file. The first test runs without PAYLOAD_KEYS, as
`make demo` does: every child must read the one development key the stack keeps in its var dir.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import ListSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowHandle

from devstack.stack import alive, port_free
from domain.dates import local_date
from domain.models import CaseInput
from domain.policy import load_policy
from encryption import codec
from infra.config import ROOT
from infra.temporal import connect
from tests.workflow_helpers import free_port
from workflows import search
from workflows.case import CollectionCase

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="process groups and signals are POSIX")

TYPES = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
}
TASK_QUEUE = "collections-stack-test"


class Stack:
    def __init__(self, var: Path, dev_keys: bool = False) -> None:
        self.var = var
        self.dev_keys = dev_keys
        self.port, self.ui_port, self.gateway_port = free_port(), free_port(), free_port()
        self.api_port, self.codec_port, self.metrics_port = free_port(), free_port(), free_port()
        self.address = f"127.0.0.1:{self.port}"
        drop = {"GATEWAY_URL", "DATABASE_URL", "API_TOKEN", "API_REQUIRE_TOKEN", "CODEC_TOKEN", "CODEC_CORS_ORIGINS"}
        if dev_keys:  # as `make demo` runs: no keys in the environment, the stack's development key
            drop |= {"PAYLOAD_KEYS", "PAYLOAD_KEY_ID"}
        env = {k: v for k, v in os.environ.items() if k not in drop}
        self.env = dict(
            env,
            TEMPORAL_ADDRESS=self.address,
            TEMPORAL_UI_PORT=str(self.ui_port),
            GATEWAY_PORT=str(self.gateway_port),
            API_PORT=str(self.api_port),
            CODEC_PORT=str(self.codec_port),
            WORKER_METRICS_ADDRESS=f"127.0.0.1:{self.metrics_port}",
            TEMPORAL_NAMESPACE="default",
            TEMPORAL_TASK_QUEUE=TASK_QUEUE,
            COLLECTIONS_VAR_DIR=str(var),
        )

    @property
    def ports(self) -> tuple[int, ...]:
        return self.port, self.ui_port, self.gateway_port, self.api_port, self.codec_port, self.metrics_port

    def run(self, command: str, timeout: float = 120) -> subprocess.CompletedProcess:
        return subprocess.run(
            [sys.executable, "-m", "devstack.stack", command],
            cwd=ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=timeout,
        )

    def start(self) -> dict:
        began = time.monotonic()
        done = self.run("start")
        assert done.returncode == 0, f"stack start failed:\n{done.stdout}\n{done.stderr}\n{self.logs()}"
        assert time.monotonic() - began < 60
        state = json.loads((self.var / "stack.json").read_text())
        assert state["ready"] and {c["name"] for c in state["children"]} >= {"temporal", "worker", "api", "codec"}
        self.banner = done.stdout
        return state

    def stop(self) -> None:
        done = self.run("stop")
        assert done.returncode == 0, f"stack stop failed:\n{done.stdout}\n{done.stderr}"

    def logs(self) -> str:
        out = []
        for f in sorted((self.var / "logs").glob("*.log")):
            out.append(f"--- {f.name}\n" + "\n".join(f.read_text(errors="replace").splitlines()[-20:]))
        return "\n".join(out)

    async def client(self) -> Client:
        if self.dev_keys:  # the key the stack made for itself
            ring = codec.ensure_dev_keyring(self.var / "payload-keys.env")
            return await Client.connect(self.address, namespace="default", data_converter=codec.data_converter(ring))
        return await connect(self.address, "default")


@pytest.fixture
def stack(tmp_path, request):
    s = Stack(tmp_path / "var", dev_keys=getattr(request, "param", False))
    yield s
    s.run("stop")  # whatever happened in the test


def demo_case(dpd: int = 1) -> CaseInput:
    tz = "Asia/Shanghai"
    loan = f"STACK{uuid.uuid4().hex[:8]}"
    return CaseInput(
        loan_id=loan,
        borrower_id=f"B{loan}",
        currency="CNY",
        principal=1_234_500,
        interest=10_000,
        fees=500,
        due_date=local_date(datetime.now(UTC), tz) - timedelta(days=dpd),
        timezone=tz,
        segment="retail",
        policy=load_policy("demo"),
    )


async def start_case(client: Client) -> WorkflowHandle:
    inp = demo_case()
    return await client.start_workflow(
        CollectionCase.run, inp, id=inp.workflow_id, task_queue=TASK_QUEUE, static_summary=f"stack test {inp.loan_id}"
    )


async def wait_stage(handle: WorkflowHandle, stage: str, within: float = 30.0):
    deadline = time.monotonic() + within
    last = None
    while time.monotonic() < deadline:
        try:
            last = await handle.query(CollectionCase.status)
            if last.stage == stage:
                return last
        except Exception as exc:  # the first task may not have run yet
            last = exc
        await asyncio.sleep(0.5)
    raise AssertionError(f"{handle.id} did not reach {stage!r} within {within}s (last: {last!r})")


@pytest.mark.parametrize("stack", [True], indirect=True, ids=["dev-key"])
async def test_stack_registers_attributes_runs_a_case_and_stops_cleanly(stack):
    state = stack.start()
    pids = [state["pid"]] + [c["pid"] for c in state["children"]]
    assert all(alive(p) for p in pids)
    api, codec_url = f"http://127.0.0.1:{stack.api_port}", f"http://127.0.0.1:{stack.codec_port}"
    assert f"{api}/docs" in stack.banner and f"http://localhost:{stack.codec_port}/login" in stack.banner

    async with httpx.AsyncClient(timeout=10) as http:
        assert (await http.get(f"{api}/health")).status_code == 200
        refused = await http.get(f"{api}/v1/cases")
        assert refused.status_code == 401 and refused.json()["error"]["field"] == "authorization"
        assert (await http.get(f"{codec_url}/health")).status_code == 200
        assert (await http.post(f"{codec_url}/decode", json={"payloads": []})).status_code == 401
        ui = (await http.get(f"http://127.0.0.1:{stack.ui_port}/api/v1/settings")).json()
        assert ui["Codec"]["Endpoint"] == f"http://localhost:{stack.codec_port}"  # the UI decodes through it

    client = await stack.client()
    resp = await client.operator_service.list_search_attributes(ListSearchAttributesRequest(namespace="default"))
    for key, typ in search.CLI_TYPES.items():
        assert resp.custom_attributes.get(key.name) == TYPES[typ], f"{key.name} not registered as {typ}"

    from app import schedules  # the daily jobs' schedules, applied by the stack's `schedules` step

    assert {s.id for s in await schedules.listing(client)} == {j.id for j in schedules.JOBS}

    handle = await start_case(client)
    status = await wait_stage(handle, "reminder")
    assert status.status == "active" and status.policy == "demo"

    # One key for all: the worker wrote the case, the API and starter.py read it, the codec server
    # decrypts its history, each with the development key in the stack's var dir.
    loan_id = handle.id.removeprefix("loan-")
    dev_key = codec.ensure_dev_keyring(stack.var / "payload-keys.env")
    history = await handle.fetch_history()
    started = history.events[0].workflow_execution_started_event_attributes.input.payloads[0]
    assert started.metadata["encryption-key-id"].decode() == dev_key.current
    token = (stack.var / "codec-token").read_text().strip()
    async with httpx.AsyncClient(timeout=30) as http:
        dev = (stack.var / "dev-token").read_text().strip()  # the dev operator's; dev-token only bootstraps
        got = await http.get(f"{api}/v1/loans/{loan_id}", headers={"Authorization": f"Bearer {dev}"})
        assert got.status_code == 200, got.text
        assert got.json()["workflow_id"] == handle.id and got.json()["policy"] == "demo"
        decoded = await http.post(
            f"{codec_url}/decode",
            json=json_format.MessageToDict(Payloads(payloads=[started])),
            headers={"Authorization": f"Bearer {token}"},
        )
    assert decoded.status_code == 200, decoded.text
    plain = json_format.ParseDict(decoded.json(), Payloads()).payloads[0]
    assert json.loads(plain.data)["loan_id"] == loan_id
    cli = subprocess.run(
        [sys.executable, "starter.py", "status", loan_id, "--json"],
        cwd=ROOT,
        env=stack.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0 and json.loads(cli.stdout)["workflow_id"] == handle.id, cli.stderr
    # a new shell, no TEMPORAL_* set: starter.py finds the running stack in its record (var/stack.json)
    bare = {k: v for k, v in stack.env.items() if k not in ("TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE", "TEMPORAL_TASK_QUEUE")}
    cli = subprocess.run(
        [sys.executable, "starter.py", "status", loan_id, "--json"],
        cwd=ROOT,
        env=bare,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert cli.returncode == 0 and json.loads(cli.stdout)["workflow_id"] == handle.id, cli.stderr

    stack.stop()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.1)
    assert not any(alive(p) for p in pids), "a stack process outlived `stop`"
    assert not (stack.var / "stack.pid").exists() and not (stack.var / "stack.json").exists()
    assert all(port_free("127.0.0.1", p) for p in stack.ports)
    assert stack.run("status").returncode == 3


async def test_cases_survive_a_server_restart(stack):
    stack.start()
    handle = await start_case(await stack.client())
    await wait_stage(handle, "reminder")
    stack.stop()

    assert (stack.var / "temporal.db").exists()
    stack.start()
    client = await stack.client()  # a new connection to the new server process
    again = client.get_workflow_handle(handle.id)
    desc = await again.describe()
    assert desc.status == WorkflowExecutionStatus.RUNNING
    assert desc.run_id == handle.result_run_id
    status = await again.query(CollectionCase.status)  # the new worker replays it from the saved history
    assert status.stage in ("reminder", "first_call") and status.status == "active"
    stack.stop()


def test_the_cli_keeps_an_address_it_was_given(tmp_path, monkeypatch):
    """The stack's record is used only when the environment names no Temporal."""
    import starter

    environ = {"TEMPORAL_ADDRESS": "temporal.bank.internal:7233"}
    assert starter.use_running_stack(environ) == {} and environ == {"TEMPORAL_ADDRESS": "temporal.bank.internal:7233"}
    monkeypatch.setenv("COLLECTIONS_VAR_DIR", str(tmp_path))  # no stack running there
    environ = {}
    assert starter.use_running_stack(environ) == {} and environ == {}


def test_short_lived_commands_exit_cleanly_every_time(stack):
    """make demo's last steps and the CLI hold a Temporal client: each leaves with its own exit code, never an
    abort at interpreter exit (one fresh make demo in six ended with "Fatal Python error: PyGILState_Release")."""
    stack.start()
    commands = [
        ([sys.executable, "-m", "devstack.demo", "--count", "4", "--no-wait"], 0),
        ([sys.executable, "-m", "console.demo"], 0),
        ([sys.executable, "starter.py", "status", "DEMO-0001"], 0),
        ([sys.executable, "starter.py", "status", "NO-SUCH-LOAN"], 2),
    ]
    for _ in range(3):
        for argv, expected in commands:
            r = subprocess.run(argv, cwd=ROOT, env=stack.env, capture_output=True, text=True, timeout=180)
            assert r.returncode == expected, (argv, r.returncode, r.stdout[-800:], r.stderr[-800:])
            assert "Fatal Python error" not in r.stderr, (argv, r.stderr[-800:])
    stack.stop()
