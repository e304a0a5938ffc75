"""The bad input corpus: every file in tests/data/bad_inputs/ is one bad input, refused with a message that
names the field and the reason, and nothing changes.

    csv/*.csv         portfolio files (csv/expected.json: line, field, reason fragment), imported for real
                      (app.portfolio.import_portfolio): the bad row is reported and nothing of it is written
    cli/*.json        starter.py argv ({loan}: an open case): exit 2 and "error: FIELD: reason"
    api/*.json        requests to the API (create_app, in process): the status and {"error": {field, reason}}
    updates/*.json    inputs to a case through app.inputs.send_update (what the CLI and the API call),
                      some after a setup (a plan, a hold, a payment in full that closes the case)
    policies/*.toml   broken policy files ("# expect: FIELD :: reason" on the first line), opened through
                      app.opening.case_input as `starter.py start --policy FILE` and the import do; the 29
                      files of tests/data/policies/bad/ are run the same way

For every input aimed at a case, the case's `status` query is identical before and after (`as_of` aside).
A file whose second line is "# bug: ..." (or whose JSON has "bug") is a known bug: it is run as
xfail(strict=True), so the day it is fixed the test says so.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest
from temporalio.service import RPCError

from api.server import create_app
from app import errors, inputs, opening, portfolio
from tests.conftest import TASK_QUEUE, Cases, today_in
from tests.workflow_helpers import comparable
from workflows.case import CollectionCase

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "bad_inputs"
OLD_POLICIES = ROOT / "tests" / "data" / "policies" / "bad"
TOKEN = "corpus-token-0123456789"


def files(kind: str, pattern: str = "*.json") -> list[Path]:
    return sorted((DATA / kind).glob(pattern))


def load(path: Path) -> dict:
    return json.loads(path.read_text(encoding="utf-8"))


def marks(spec: dict) -> list:
    return [pytest.mark.xfail(strict=True, reason=spec["bug"])] if spec.get("bug") else []


def fill(value, loan: str, today: dt.date, now: dt.datetime):
    """{loan}, {today+N} / {today-N} (the borrower's calendar) and {now+Nd} in a corpus entry."""
    if isinstance(value, list):
        return [fill(v, loan, today, now) for v in value]
    if isinstance(value, dict):
        return {k: fill(v, loan, today, now) for k, v in value.items()}
    if not isinstance(value, str):
        return value
    value = value.replace("{loan}", loan)
    value = re.sub(r"\{today([+-]\d+)\}", lambda m: (today + dt.timedelta(days=int(m[1]))).isoformat(), value)
    return re.sub(r"\{now\+(\d+)d\}", lambda m: (now + dt.timedelta(days=int(m[1]))).isoformat(), value)


async def running(env, workflow_id: str) -> bool:
    try:
        await env.client.workflow_service.describe_workflow_execution(
            DescribeWorkflowExecutionRequest(namespace=env.client.namespace, execution=WorkflowExecution(workflow_id=workflow_id))
        )
    except RPCError:
        return False
    return True


def test_the_corpus_holds_at_least_sixty_bad_inputs_of_every_kind():
    sizes = {
        "csv": len(files("csv", "*.csv")),
        "cli": len(files("cli")),
        "api": len(files("api")),
        "updates": len(files("updates")),
        "policies": len(files("policies", "*.toml")),
    }
    assert all(n >= 10 for n in sizes.values()), sizes
    assert sum(sizes.values()) >= 60, sizes
    assert set(load(DATA / "csv" / "expected.json")) == {p.name for p in files("csv", "*.csv")}
    print(f"\ncorpus: {sizes}, total {sum(sizes.values())} (+ {len(list(OLD_POLICIES.glob('*.toml')))} policies reused)")


@pytest_asyncio.fixture(scope="module")
async def shared(env, worker, repo):
    """One open case that every stateless bad input is aimed at (nothing may change it)."""
    cases = Cases(env, repo)
    handle = await cases.start(dpd=1, loan_id="CORPUS-SHARED")
    yield cases, handle
    await cases.terminate_all()


async def snapshot(handle) -> dict:
    return comparable(await handle.query(CollectionCase.status))


# --------------------------------------------------------------------------- CSV rows

CSV = load(DATA / "csv" / "expected.json")


@pytest.mark.parametrize("name", sorted(CSV))
async def test_csv(name, env, worker, repo):
    exp, path = CSV[name], DATA / "csv" / name
    mentioned = sorted(set(re.findall(rb"CSVBAD-[A-Z0-9-]+", path.read_bytes())))
    if exp["line"] == 1:  # the file or its header: refused before anything is written
        with pytest.raises(errors.BadInput) as info:
            await portfolio.import_portfolio(env.client, repo, path, task_queue=TASK_QUEUE)
        assert info.value.field == exp["field"] and exp["reason"] in info.value.reason, str(info.value)
        kept: set[str] = set()
    else:
        summary = await portfolio.import_portfolio(env.client, repo, path, task_queue=TASK_QUEUE)
        assert (summary.rejected, summary.valid) == (1, exp.get("valid", 0)), summary
        [rej] = summary.rejections
        assert (rej.line, rej.column) == (exp["line"], exp["field"]), str(rej)
        assert exp["reason"] in rej.reason, str(rej)
        kept: set[str] = set()
        if exp.get("valid"):  # the file's good row (the first of a duplicated loan id) went in; end its case
            kept = {rej.loan_id}
            handle = env.client.get_workflow_handle(f"loan-{rej.loan_id}")
            await Cases(env).settle(handle, must=False)
            await handle.terminate("test finished")
    for loan in (m.decode() for m in mentioned):
        if loan in kept:
            continue
        assert repo.loan(loan) is None, f"{loan} was written"
        assert not await running(env, f"loan-{loan}"), f"a case was opened for {loan}"


# --------------------------------------------------------------------------- policy files


def policy_expectation(path: Path) -> tuple[str, str, str | None]:
    head = path.read_bytes().split(b"\n", 2)
    first = head[0].decode("ascii")
    assert first.startswith("# expect: "), path
    field, reason = first.removeprefix("# expect: ").split(" :: ", 1)
    second = head[1].decode("utf-8", "replace") if len(head) > 1 else ""
    return field.strip(), reason.strip(), second.removeprefix("# bug: ").strip() if second.startswith("# bug: ") else None


POLICIES = files("policies", "*.toml") + sorted(OLD_POLICIES.glob("*.toml"))


@pytest.mark.parametrize(
    "path", [pytest.param(p, id=f"{p.parent.name}/{p.stem}", marks=marks({"bug": policy_expectation(p)[2]})) for p in POLICIES]
)
def test_policy_file(path):
    field, reason, _ = policy_expectation(path)
    with pytest.raises(errors.BadInput) as info:
        opening.case_input(
            loan_id="POLBAD-1", borrower_id="B-POLBAD", principal="100.00", due_date="2026-10-01", policy=str(path)
        )
    err = info.value
    assert err.field.startswith(str(path)) and err.field.endswith(field), (err.field, field)
    assert reason in err.reason, (err.reason, reason)


# --------------------------------------------------------------------------- updates to a case

UPDATES = files("updates")


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem, marks=marks(load(p))) for p in UPDATES])
async def test_update(path, env, shared, cases):
    spec = load(path)
    if spec.get("setup"):  # an input that needs a case in a given state gets a case of its own
        handle = await cases.start(dpd=1)
    else:
        handle = shared[1]
    loan = handle.id.removeprefix("loan-")
    now = await cases.now()
    today = today_in(now)
    for command, fields in spec.get("setup", []):
        await inputs.send_update(env.client, loan, command, fill(fields, loan, today, now))
    if spec.get("wait_closed"):
        assert (await cases.result(handle)).status == "closed"
    before = await snapshot(handle)
    with pytest.raises(errors.BadInput) as info:
        await inputs.send_update(env.client, loan, spec["command"], fill(spec["fields"], loan, today, now))
    assert (info.value.field, spec["reason"] in info.value.reason) == (spec["field"], True), str(info.value)
    assert await snapshot(handle) == before


# --------------------------------------------------------------------------- the command line

CLI = files("cli")


@pytest_asyncio.fixture(scope="module")
async def cli_runs(env, shared, repo) -> dict[str, tuple[subprocess.CompletedProcess, dict, dict]]:
    """Every cli/*.json run as its own `starter.py` process (four at a time), against the shared case."""
    cases, handle = shared
    loan = handle.id.removeprefix("loan-")
    now = await cases.now()
    e = dict(
        os.environ,
        TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE=TASK_QUEUE,
        LOG_FORMAT="json",
        DATABASE_URL=repo.engine.url.render_as_string(hide_password=False),
    )
    sem = asyncio.Semaphore(4)

    async def run(path: Path):
        argv = fill(load(path)["argv"], loan, today_in(now), now)
        async with sem:
            before = await snapshot(handle)
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "starter.py",
                *argv,
                cwd=ROOT,
                env=e,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 90)
            after = await snapshot(handle)
        return path.stem, (subprocess.CompletedProcess(argv, proc.returncode, out.decode(), err.decode()), before, after)

    return dict(await asyncio.gather(*(run(p) for p in CLI)))


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem, marks=marks(load(p))) for p in CLI])
async def test_cli(path, cli_runs, env, repo):
    spec = load(path)
    r, before, after = cli_runs[path.stem]
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    line = next((ln for ln in r.stderr.splitlines() if ln.startswith("error: ")), r.stderr)
    assert line.startswith(f"error: {spec['field']}: "), line
    assert spec["reason"] in line, line
    assert after == before
    if spec["argv"][0] == "start":
        loan = spec["argv"][spec["argv"].index("--loan-id") + 1]
        assert repo.loan(loan) is None and not await running(env, f"loan-{loan}")


# --------------------------------------------------------------------------- the API

API = files("api")


@pytest_asyncio.fixture(scope="module")
async def api(env, repo):
    """The API over the suite's server; it acts as an operator with every role but admin (the bootstrap token
    `TOKEN` is an admin's, which may only manage operators)."""
    from access.operators import Operators
    from access.permissions import ROLES

    store = Operators(repo)
    operator = store.issue_token(store.ensure("corpus test", [r for r in ROLES if r != "admin"]).id).token
    app = create_app([TOKEN], client=env.client, repo=repo)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://api", headers={"Authorization": f"Bearer {operator}"}, timeout=60
    ) as http:
        yield http


@pytest.mark.parametrize("path", [pytest.param(p, id=p.stem, marks=marks(load(p))) for p in API])
async def test_api(path, api, shared, env, repo):
    spec = load(path)
    cases, handle = shared
    loan = handle.id.removeprefix("loan-")
    now = await cases.now()
    req = fill({k: spec[k] for k in ("path", "body") if k in spec}, loan, today_in(now), now)
    if "raw" in spec or "raw_hex" in spec:
        content = spec["raw"].encode() if "raw" in spec else bytes.fromhex(spec["raw_hex"])
        kwargs = {"content": content, "headers": {"content-type": "application/json"}}
    else:
        kwargs = {"json": req["body"]}
    before = await snapshot(handle)
    r = await api.request(spec["method"], req["path"], **kwargs)
    assert r.status_code == spec["status"], r.text
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"field", "reason"}, body
    assert body["error"]["field"] == spec["field"], body
    assert spec["reason"] in body["error"]["reason"], body
    assert await snapshot(handle) == before
    if spec["path"] == "/v1/cases":
        loan_id = spec["body"]["loan_id"]
        assert repo.loan(loan_id) is None and not await running(env, f"loan-{loan_id}")
