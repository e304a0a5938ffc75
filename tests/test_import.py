"""Portfolio import (`starter.py import FILE.csv`), case lists (`starter.py list`) and the CLI's help.

The import runs as the operator runs it, a subprocess against a real Temporal: the session's
time-skipping test server for the import itself, and a dev server (started here) for `list`,
because the test server has no visibility store (ListWorkflowExecutions).
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import time
import tracemalloc
from dataclasses import dataclass
from datetime import date, timedelta
from pathlib import Path

import pytest
import pytest_asyncio
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from app import portfolio
from devstack.binaries import find
from infra.temporal import connect
from tests.conftest import TASK_QUEUE, Cases
from tests.workflow_helpers import free_port, run_starter
from worker import build_worker
from workflows import search

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data" / "import"
HEADER = "loan_id,borrower_id,name,phone,email,address,timezone,currency,principal,interest,fees,due_date,product,segment\n"


def db_url(repo) -> str:
    return repo.engine.url.render_as_string(hide_password=False)


async def cli(address: str, task_queue: str, repo, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    return await run_starter(address, task_queue, db_url(repo), *args, timeout=timeout)


def runner(env, repo):
    target = env.client.service_client.config.target_host
    return lambda *args: cli(target, TASK_QUEUE, repo, *args)


async def terminate(env, loan_ids) -> None:
    """End the test's cases once nothing of theirs is in flight: an activity still running when its
    case is terminated keeps the time-skipping server from skipping time for later tests."""
    for loan in loan_ids:
        handle = env.client.get_workflow_handle(f"loan-{loan}")
        try:
            await Cases(env).settle(handle, must=False)
            await handle.terminate("test finished")
        except RPCError:
            pass


def write_csv(path: Path, rows: list[str]) -> Path:
    path.write_text(HEADER + "".join(r + "\n" for r in rows), encoding="utf-8")
    return path


# --------------------------------------------------------------------------- import on the test server

GOOD = ["IMP-001", "IMP-002", "IMP-003", "IMP-004"]


async def portfolio_due_now(env, tmp_path: Path) -> Path:
    """The portfolio with its due dates moved to the test server's clock (which other tests skip ahead
    by years), keeping their distance from 2026-11-28, so the cases open at the same DPD every run."""
    today = (await env.get_current_time()).date()
    text = (DATA / "portfolio.csv").read_text(encoding="utf-8")
    for day in ("2026-10-15", "2026-11-01", "2026-09-20", "2026-10-30", "2026-10-01"):
        shifted = today - (date(2026, 11, 28) - date.fromisoformat(day))
        text = text.replace(f",{day},", f",{shifted.isoformat()},")
    path = tmp_path / "portfolio.csv"
    path.write_text(text, encoding="utf-8")
    return path


async def test_import_opens_a_case_per_good_row_and_reports_each_bad_one(env, worker, repo, tmp_path):
    run = runner(env, repo)
    csv_path = await portfolio_due_now(env, tmp_path)
    try:
        r = await run("import", str(csv_path), "--json")
        assert r.returncode == 1, r.stderr  # some rows were rejected
        s = json.loads(r.stdout)
        assert (s["rows"], s["started"], s["already_running"], s["rejected"], s["failed"]) == (13, 4, 0, 9, 0)
        got = {(x["line"], x["column"]): x["reason"] for x in s["rejections"]}
        assert got[(7, "due_date")] == "'2026-02-30' is not a date (YYYY-MM-DD)"
        assert got[(8, "principal")].startswith("is not a plain decimal amount ('12,000.00')")
        assert got[(9, "loan_id")] == "IMP-001 already appears on line 2; each loan once"
        assert got[(10, "name")] == "is empty"
        assert got[(11, "timezone")].startswith("unknown IANA time zone 'Moon/Base'")
        assert got[(11, "currency")].startswith("unknown or unsupported currency 'XYZ'")
        assert got[(12, "principal")].startswith("the loan owes nothing")
        assert got[(13, "loan_id")].startswith("'IMP 011' is not an id")
        assert got[(14, None)] == "has 13 fields but the header has 14"
        # segment "demo" picks policies/demo.toml, a demo policy (6-second days, contact at any hour): refused
        # outside the local dev stack (issue 14)
        assert any("demo policy" in reason and "refused outside the local dev stack" in reason for reason in got.values())

        # the system of record: borrowers (PII, Chinese included) and loans, from the good rows only
        b = repo.borrower("B-001")
        assert (b.name, b.phone, b.address) == ("张伟", "13812345678", "上海市黄浦区南京东路1号")
        assert repo.borrower("B-002").address == "北京市朝阳区建国路88号, 2单元"
        loan = repo.loan("IMP-004")
        assert (loan.borrower_id, loan.principal, loan.interest, loan.product, loan.segment, loan.policy) == (
            "B-001",
            300_000,
            10_000,
            "credit_card",
            "sme",
            "default",
        )
        assert (repo.loan("IMP-003").interest, repo.loan("IMP-003").segment) == (0, "retail")
        assert repo.loan("IMP-005") is None  # the demo policy's row was refused
        for rejected in ("IMP-006", "IMP-007", "IMP-008", "IMP-009", "IMP-010", "IMP-012"):
            assert repo.loan(rejected) is None
        assert repo.borrower("B-009") is None  # the duplicate loan's row wrote nothing either

        # Temporal: one running case per good loan, carrying the file's amounts and policy
        for loan_id in GOOD:
            desc = await env.client.get_workflow_handle(f"loan-{loan_id}").describe()
            assert desc.status == WorkflowExecutionStatus.RUNNING

        # idempotent: a second run opens nothing and says so; the bad rows are reported again
        runs = {loan_id: (await env.client.get_workflow_handle(f"loan-{loan_id}").describe()).run_id for loan_id in GOOD}
        again = await run("import", str(csv_path))
        assert again.returncode == 1
        assert "started          0" in again.stdout and "already running  4" in again.stdout, again.stdout
        assert "nothing new started" in again.stdout
        assert "line 7: due_date: '2026-02-30' is not a date (YYYY-MM-DD)" in again.stdout
        for loan_id in GOOD:
            assert (await env.client.get_workflow_handle(f"loan-{loan_id}").describe()).run_id == runs[loan_id]
    finally:
        await terminate(env, GOOD)


async def test_a_line_that_is_not_utf8_is_rejected_and_the_rest_imported(env, worker, repo):
    run = runner(env, repo)
    try:
        r = await run("import", str(DATA / "mixed_encoding.csv"))
        assert r.returncode == 1
        assert "line 3: name: not valid UTF-8 (byte 0xbb at position 14); save the file as UTF-8" in r.stdout, r.stdout
        assert "started          2" in r.stdout and "rejected         1" in r.stdout
        assert repo.loan("ENC-002") is None and repo.borrower("B-E2") is None
        assert repo.borrower("B-E3").name == "林静"
    finally:
        await terminate(env, ["ENC-001", "ENC-003"])


@pytest.mark.parametrize(
    "args,message",
    [
        (["{data}/bad_header.csv"], "error: header: missing column(s): due_date; unknown column(s): duedate"),
        (["{tmp}/no_such_file.csv"], "no_such_file.csv: no such file"),
        (["{data}/bad_header.csv", "--policy", "nosuch"], "error: policy: no policy named 'nosuch'"),
        (["{tmp}/empty.csv"], "error: file: "),
        (["{data}/bad_header.csv", "--concurrency", "0"], "error: concurrency: 0 must be at least 1"),
    ],
)
async def test_a_bad_file_or_flag_exits_2_and_changes_nothing(env, repo, tmp_path, args, message):
    (tmp_path / "empty.csv").write_bytes(b"")
    args = [a.format(data=DATA, tmp=tmp_path) for a in args]
    r = await runner(env, repo)("import", *args, "--json")
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert message in r.stderr, r.stderr
    assert "error" in json.loads(r.stdout)
    assert repo.loan("HDR-001") is None


async def test_a_dry_run_checks_the_file_and_changes_nothing(env, repo, tmp_path):
    f = write_csv(
        tmp_path / "dry.csv",
        [
            "DRY-1,B-DRY1,钱多多,13800000001,,,Asia/Shanghai,CNY,100.00,0,0,2026-10-01,personal_loan,retail",
            "DRY-2,B-DRY2,钱少少,13800000002,,,Asia/Shanghai,CNY,-5,0,0,2026-10-01,personal_loan,retail",
        ],
    )
    r = await runner(env, repo)("import", str(f), "--dry-run", "--json")
    assert r.returncode == 1
    s = json.loads(r.stdout)
    assert (s["dry_run"], s["rows"], s["valid"], s["rejected"], s["started"]) == (True, 2, 1, 1, 0)
    assert s["rejections"] == [{"line": 3, "column": "principal", "reason": "must not be negative ('-5')", "loan_id": "DRY-2"}]
    assert repo.loan("DRY-1") is None
    with pytest.raises(RPCError):
        await env.client.get_workflow_handle("loan-DRY-1").describe()


async def test_an_import_without_a_temporal_client_is_refused_before_any_change(repo, tmp_path):
    """Only a dry run goes without a client: a live one without it used to write every row to the database and then
    fail each case start (None has no start_workflow)."""
    f = write_csv(
        tmp_path / "noclient.csv",
        ["NOC-1,B-NOC1,钱多多,13800000001,,,Asia/Shanghai,CNY,100.00,0,0,2026-10-01,personal_loan,retail"],
    )
    with pytest.raises(portfolio.BadInput) as exc:
        await portfolio.import_portfolio(None, repo, f)
    assert exc.value.field == "client"
    assert repo.loan("NOC-1") is None
    s = await portfolio.import_portfolio(None, repo, f, dry_run=True)
    assert (s.rows, s.valid, s.started) == (1, 1, 0)


# --------------------------------------------------------------------------- streaming and bounded concurrency


def generate(path: Path, n: int, prefix: str, due: str = "2026-10-15", segment: str = "retail") -> Path:
    with open(path, "w", encoding="utf-8") as f:
        f.write(HEADER)
        for i in range(n):
            f.write(
                f"{prefix}-{i:06d},B{prefix}-{i:06d},张伟{i},138{i:08d},u{i}@example.cn,上海市黄浦区南京东路{i}号,"
                f"Asia/Shanghai,CNY,{1000 + i % 9000}.00,{i % 500}.50,30,{due},personal_loan,{segment}\n"
            )
    return path


def _peak_while_reading(path: Path) -> tuple[int, int]:
    tracemalloc.start()
    try:
        valid = sum(1 for r in portfolio.read_portfolio(path) if isinstance(r, portfolio.ImportRow))
        return valid, tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_the_file_is_streamed_row_by_row_not_held_in_memory(tmp_path):
    small = generate(tmp_path / "small.csv", 2_000, "MS")
    large = generate(tmp_path / "large.csv", 12_000, "ML")
    n_small, peak_small = _peak_while_reading(small)
    n_large, peak_large = _peak_while_reading(large)
    assert (n_small, n_large) == (2_000, 12_000)
    per_row = (peak_large - peak_small) / 10_000
    # Each further row costs only its entry in the loan-id index (duplicate detection, ~150 bytes);
    # a validated row held in memory would cost several kilobytes, a raw CSV line ~170 bytes more.
    assert per_row < 250, f"{per_row:.0f} bytes per row"
    assert peak_large < large.stat().st_size, (peak_large, large.stat().st_size)


class FakeTemporal:
    """Counts concurrent starts; loans whose id ends in 7 are 'already running'."""

    def __init__(self) -> None:
        self.in_flight = 0
        self.max_in_flight = 0
        self.ids: list[str] = []

    async def start_workflow(self, _run, inp, *, id: str, **_kw):
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await asyncio.sleep(0.002)
            if id.endswith("7"):
                raise WorkflowAlreadyStartedError(id, "CollectionCase")
            self.ids.append(id)
        finally:
            self.in_flight -= 1


async def test_import_keeps_at_most_concurrency_starts_in_flight(tmp_path, repo):
    f = generate(tmp_path / "many.csv", 3_000, "CC")
    fake = FakeTemporal()
    ticks = []
    s = await portfolio.import_portfolio(fake, repo, f, concurrency=25, progress=ticks.append)
    assert fake.max_in_flight == 25
    assert (s.rows, s.started, s.already_running, s.rejected, s.failed) == (3_000, 2_700, 300, 0, 0)
    assert sum(ticks) == 3_000  # the progress bar reached the end
    assert repo.loan("CC-002999").principal == (1000 + 2999) * 100
    assert repo.borrower("BCC-000042").name == "张伟42"


# --------------------------------------------------------------------------- list, on a dev server


@dataclass
class Dev:
    address: str
    task_queue: str
    client: object
    repo: object

    def cli(self, *args: str):
        return cli(self.address, self.task_queue, self.repo, *args)


@pytest_asyncio.fixture(scope="module")
async def dev(repo, gateway):
    """A Temporal dev server (with visibility) and a worker on it."""
    port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find("temporal"), search_attributes=search.ALL, ip="127.0.0.1", port=port, ui=False
    )
    client = await connect(f"127.0.0.1:{port}")  # the project's data converter, as the CLI's
    gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    w = build_worker(client, CaseActivities(repo, gw), task_queue="collections-dev-test")
    async with w:
        yield Dev(f"127.0.0.1:{port}", "collections-dev-test", client, repo)
    await gw.aclose()
    await env.shutdown()


async def poll_list(dev: Dev, *args: str, want: int, timeout: float = 30.0) -> list[dict]:
    """Visibility is eventually consistent: list until `want` cases with search attributes show up."""
    deadline = time.monotonic() + timeout
    while True:
        r = await dev.cli("list", *args, "--json")
        assert r.returncode == 0, r.stderr
        items = json.loads(r.stdout)
        if len(items) == want and all(i["status"] for i in items):
            return items
        if time.monotonic() > deadline:
            raise AssertionError(f"list {args}: {len(items)} cases, wanted {want}: {items}")
        await asyncio.sleep(0.5)


async def test_list_finds_cases_by_stage_status_hold_amount_segment_and_query(dev, tmp_path):
    due = (date.today() - timedelta(days=3)).isoformat()
    rows = [
        f"LST-{i},B-LST-{i},客户{i},1390000000{i},,,Asia/Shanghai,CNY,{i}000.00,0,0,{due},personal_loan,lista"
        for i in range(1, 9)
    ]
    rows += [
        f"LSB-{i},B-LSB-{i},客户B{i},1390000001{i},,,Asia/Shanghai,CNY,{i}00.00,0,0,{due},personal_loan,listb"
        for i in range(1, 5)
    ]
    r = await dev.cli("import", str(write_csv(tmp_path / "list.csv", rows)), "--json")
    assert r.returncode == 0, r.stderr
    s = json.loads(r.stdout)
    assert (s["started"], s["rejected"]) == (12, 0)
    print(f"import of 12 rows: {s['rows_per_second']} rows/s")

    items = await poll_list(dev, "--segment", "lista", want=8)
    assert {i["workflow_id"] for i in items} == {f"loan-LST-{i}" for i in range(1, 9)}
    assert all(i["segment"] == "lista" and i["policy"] == "default" and i["on_hold"] is False for i in items)
    big = await poll_list(dev, "--segment", "lista", "--min-amount", "4500", want=4)
    assert sorted(i["loan_id"] for i in big) == ["LST-5", "LST-6", "LST-7", "LST-8"]
    assert {i["outstanding"] for i in big} == {"5000.00", "6000.00", "7000.00", "8000.00"}

    h = await dev.cli("hold", "LST-3", "--kind", "dispute", "--reference", "T-1")
    assert h.returncode == 0, h.stderr
    held = await poll_list(dev, "--segment", "lista", "--on-hold", want=1)
    assert held[0]["loan_id"] == "LST-3" and held[0]["status"] == "paused"
    assert len(await poll_list(dev, "--segment", "lista", "--not-on-hold", want=7)) == 7
    assert len(await poll_list(dev, "--segment", "lista", "--status", "paused", want=1)) == 1
    assert len(await poll_list(dev, "--query", 'Segment = "listb"', want=4)) == 4
    stage = big[0]["stage"]
    assert stage and len(await poll_list(dev, "--segment", "listb", "--stage", stage, want=4)) == 4
    assert len(await poll_list(dev, "--segment", "lista", "--limit", "3", want=3)) == 3

    table = await dev.cli("list", "--segment", "listb")
    lines = table.stdout.splitlines()
    assert lines[0].split() == ["WORKFLOW", "ID", "STAGE", "STATUS", "ON", "HOLD", "OUTSTANDING", "NEXT", "ACTION", "AT", "(UTC)"]
    assert lines[-1] == "4 case(s)" and any(line.startswith("loan-LSB-4 ") and "400.00" in line for line in lines)

    bad = await dev.cli("list", "--query", "bogus ===")
    assert bad.returncode == 2 and "error: query: Temporal refused the query" in bad.stderr
    bad = await dev.cli("list", "--min-amount", "lots")
    assert bad.returncode == 2 and "error: min_amount: 'lots' is not a plain decimal amount" in bad.stderr
    bad = await dev.cli("list", "--status", "open")
    assert bad.returncode == 2 and "error: status: invalid choice" in bad.stderr

    # a typo in a stage, segment or policy name is refused with the names there are, not "0 case(s)"
    bad = await dev.cli("list", "--stage", "litgation")
    assert bad.returncode == 2 and "error: stage: 'litgation' is not a stage" in bad.stderr and "litigation" in bad.stderr
    bad = await dev.cli("list", "--segment", "listc")
    assert bad.returncode == 2 and "error: segment: 'listc' is not a known segment" in bad.stderr
    assert "lista" in bad.stderr and "listb" in bad.stderr
    bad = await dev.cli("count", "--by", "stage", "--policy", "defualt")
    assert bad.returncode == 2 and "error: policy: 'defualt' is not a known policy" in bad.stderr

    # the summary in the Web UI says which balance it shows
    desc = await dev.client.get_workflow_handle("loan-LST-1").describe()
    assert "opening balance CNY 1000.00" in (await desc.static_summary() or "")

    # counts per value, one count query each; a closed case shows no next action and no hold
    # (paid in full: a closure for death now waits for a second person, tests/test_four_eyes.py)
    closed = await dev.cli("pay", "LST-4", "--payment-id", "LST-4-FULL", "--amount", "4000.00")
    assert closed.returncode == 0, closed.stderr
    gone = await poll_list(dev, "--segment", "lista", "--status", "closed", want=1)
    assert gone[0]["loan_id"] == "LST-4" and gone[0]["next_action_at"] is None and gone[0]["on_hold"] is None
    row = next(
        line
        for line in (await dev.cli("list", "--segment", "lista", "--status", "closed")).stdout.splitlines()
        if line.startswith("loan-LST-4 ")
    )
    assert row.split()[2:4] == ["closed", "-"] and row.split()[-1] == "-", row
    deadline = time.monotonic() + 30
    while True:
        r = await dev.cli("count", "--by", "status", "--segment", "lista", "--json")
        assert r.returncode == 0, r.stderr
        counted = json.loads(r.stdout)
        if counted["counts"] == {"active": 6, "paused": 1, "closed": 1} or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert counted["counts"] == {"active": 6, "paused": 1, "closed": 1} and counted["total"] == 8, counted
    text = await dev.cli("count", "--by", "segment")
    assert text.returncode == 0 and any(line.split() == ["listb", "4"] for line in text.stdout.splitlines()), text.stdout

    # a reader that goes away (`list --json | head -1`) ends the command quietly
    read, write = os.pipe()
    os.close(read)
    env = dict(os.environ, TEMPORAL_ADDRESS=dev.address, TEMPORAL_TASK_QUEUE=dev.task_queue, DATABASE_URL=db_url(dev.repo))
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "starter.py", "list", "--json"],
        cwd=ROOT,
        env=env,
        stdout=write,
        stderr=subprocess.PIPE,
        text=True,
        timeout=60,
    )
    os.close(write)
    assert "Traceback" not in done.stderr and "BrokenPipe" not in done.stderr and done.returncode == 1, done.stderr


# --------------------------------------------------------------------------- help


def test_every_command_has_json_and_help_with_examples():
    import starter

    p = starter.parser()
    top = p.format_help()
    for example in (
        "starter.py import portfolio.csv",
        "starter.py list --stage litigation",
        "starter.py pay L1001",
        "Exit codes",
    ):
        assert example in top
    sub = next(a for a in p._actions if a.dest == "command")
    # every command of the handler table has a parser, and the operators' everyday commands are all there
    assert set(sub.choices) == set(starter.HANDLERS)
    assert {
        "import",
        "list",
        "start",
        "pay",
        "promise",
        "plan",
        "hold",
        "release",
        "outcome",
        "status",
        "payments",
        "apply-unapplied",
        "simulate",
        "count",
        "reverse",
        "close",
        "confirm-write-off",
        "check",
    } <= set(sub.choices)
    for name, c in sub.choices.items():
        text = c.format_help()
        assert "--json" in text, name
        assert "python starter.py" in text, f"{name} --help shows no example"
    assert "line 7: due_date: '2026-02-30' is not a date" in sub.choices["import"].format_help()
