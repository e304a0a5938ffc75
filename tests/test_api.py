"""The payments and case API: the real server (`python -m api`, a subprocess on a free port) over
httpx, against a Temporal dev server with a worker, and schemathesis against its OpenAPI document."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import subprocess
import sys
import time
from datetime import date, timedelta
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from temporalio.testing import WorkflowEnvironment

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from devstack.binaries import find
from infra.temporal import connect
from tests.workflow_helpers import free_port
from worker import build_worker
from workflows import search

ROOT = Path(__file__).resolve().parent.parent
BOOTSTRAP = "test-token-0123456789"  # API_TOKEN: the bootstrap admin token (operators only)
TOKEN = ""  # an operator with every role but admin, made by the api fixture
AUTH: dict[str, str] = {}
TASK_QUEUE = "collections-api-test"


class Api:
    def __init__(self, url: str, client, repo, process: subprocess.Popen, log: Path) -> None:
        self.url, self.client, self.repo, self.process, self.log = url, client, repo, process, log

    def http(self, auth: bool = True) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, headers=dict(AUTH) if auth else {}, timeout=30)

    async def start(self, loan_id: str, dpd: int = 3, principal: str = "5000.00", **extra) -> dict:
        body = {
            "loan_id": loan_id,
            "borrower_id": f"B-{loan_id}",
            "principal": principal,
            "interest": "120.50",
            "fees": "15",
            "due_date": (date.today() - timedelta(days=dpd)).isoformat(),
            "borrower": {"name": "张伟", "phone": "13812345678", "email": "zhang.wei@example.cn"},
            **extra,
        }
        async with self.http() as c:
            r = await c.post("/v1/cases", json=body)
        assert r.status_code == 201, r.text
        return r.json()

    async def status(self, loan_id: str) -> dict:
        async with self.http() as c:
            r = await c.get(f"/v1/loans/{loan_id}")
        assert r.status_code == 200, r.text
        return r.json()


def essentials(st: dict) -> dict:
    """What an input would change (the ladder itself may move on in the background)."""
    keys = ("outstanding", "total_paid", "holds", "plan", "promise", "outcome", "currency", "policy")
    return {k: st[k] for k in keys}


def api_env(address: str, repo, **extra: str) -> dict[str, str]:
    return dict(
        os.environ,
        TEMPORAL_ADDRESS=address,
        TEMPORAL_TASK_QUEUE=TASK_QUEUE,
        LOG_FORMAT="json",
        DATABASE_URL=repo.engine.url.render_as_string(hide_password=False),
        API_TOKEN=BOOTSTRAP,
        **extra,
    )


@pytest_asyncio.fixture(scope="module")
async def api(repo, gateway, tmp_path_factory):
    """Dev server + worker + the API as its own process, as the stack runs it."""
    global TOKEN, AUTH
    from access.operators import Operators
    from access.permissions import ROLES

    store = Operators(repo)
    TOKEN = store.issue_token(store.ensure("api test", [r for r in ROLES if r != "admin"]).id).token
    AUTH = {"Authorization": f"Bearer {TOKEN}"}
    port = free_port()
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find("temporal"), search_attributes=search.ALL, ip="127.0.0.1", port=port, ui=False
    )
    address = f"127.0.0.1:{port}"
    client = await connect(address)
    gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    log = tmp_path_factory.mktemp("api") / "api.log"
    api_port = free_port()
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api", "--exit-with-parent", str(os.getpid())],
            cwd=ROOT,
            env=api_env(address, repo, API_PORT=str(api_port)),
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{api_port}"
    try:
        async with build_worker(client, CaseActivities(repo, gw), task_queue=TASK_QUEUE):
            async with httpx.AsyncClient() as h:
                deadline = time.monotonic() + 30
                while True:
                    assert proc.poll() is None, log.read_text()
                    try:
                        if (await h.get(f"{url}/health")).status_code == 200:
                            break
                    except httpx.HTTPError:
                        pass
                    assert time.monotonic() < deadline, log.read_text()
                    await asyncio.sleep(0.1)
            yield Api(url, client, repo, proc, log)
    finally:
        proc.terminate()
        await asyncio.to_thread(proc.wait, 10)
        await gw.aclose()
        await env.shutdown()


def error_of(r: httpx.Response) -> tuple[str | None, str]:
    body = r.json()
    assert set(body) == {"error"} and set(body["error"]) == {"field", "reason"}, body
    return body["error"]["field"], body["error"]["reason"]


# --------------------------------------------------------------------------- the document


async def test_health_connects_at_start_and_says_so(api):
    """Before any request that needs Temporal, the API has connected (it did so at start) and /health says so."""
    async with httpx.AsyncClient() as h:
        deadline = time.monotonic() + 15
        while (body := (await h.get(f"{api.url}/health")).json())["temporal"] != "connected":
            assert body["temporal"] == "connecting" and time.monotonic() < deadline, body
            await asyncio.sleep(0.2)
    assert body == {"status": "ok", "temporal": "connected", "detail": None}


async def test_the_openapi_document_is_served_and_describes_every_route(api):
    async with api.http(auth=False) as c:
        r = await c.get("/openapi.json")
    assert r.status_code == 200
    doc = r.json()
    ops = {(m.upper(), p) for p, item in doc["paths"].items() for m in item}
    assert ops >= {
        ("POST", "/v1/loans/{loan_id}/payments"),
        ("POST", "/v1/loans/{loan_id}/promises"),
        ("POST", "/v1/loans/{loan_id}/plans"),
        ("POST", "/v1/loans/{loan_id}/holds"),
        ("POST", "/v1/loans/{loan_id}/holds/{kind}/release"),
        ("POST", "/v1/loans/{loan_id}/outcomes"),
        ("GET", "/v1/loans/{loan_id}"),
        ("GET", "/v1/cases"),
        ("POST", "/v1/cases"),
    }
    assert doc["components"]["securitySchemes"]["bearerAuth"] == {
        "type": "http",
        "scheme": "bearer",
        "description": doc["components"]["securitySchemes"]["bearerAuth"]["description"],
    }
    assert "bootstrap" in doc["components"]["securitySchemes"]["bearerAuth"]["description"]
    for path, item in doc["paths"].items():
        if not path.startswith("/v1/"):
            continue
        for method, op in item.items():
            assert op["security"] == [{"bearerAuth": []}], (method, path)
            for status in ("401", "422"):
                schema = op["responses"][status]["content"]["application/json"]["schema"]
                assert schema == {"$ref": "#/components/schemas/ErrorBody"}, (method, path, status)
    assert set(doc["paths"]["/v1/loans/{loan_id}/payments"]["post"]["responses"]) >= {"200", "202", "401", "404", "422"}


# --------------------------------------------------------------------------- auth


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic {TOKEN}"}, {"Authorization": "{TOKEN}"}]
)
async def test_a_request_without_a_valid_token_gets_401_and_changes_nothing(api, headers):
    headers = {k: v.replace("{TOKEN}", TOKEN) for k, v in headers.items()}
    loan = f"AUTH-{abs(hash(json.dumps(headers))) % 10**6}"
    await api.start(loan)
    before = await api.status(loan)
    async with httpx.AsyncClient(base_url=api.url, headers=headers) as c:
        responses = [
            await c.post(f"/v1/loans/{loan}/payments", json={"payment_id": f"P-{loan}", "amount": "100.00"}),
            await c.post(f"/v1/loans/{loan}/holds", json={"kind": "dispute"}),
            await c.post(
                "/v1/cases", json={"loan_id": f"{loan}-X", "borrower_id": "B", "principal": "10", "due_date": "2026-10-01"}
            ),
            await c.get(f"/v1/loans/{loan}"),
            await c.get("/v1/cases"),
        ]
    for r in responses:
        assert r.status_code == 401, r.text
        assert r.headers["www-authenticate"] == "Bearer"
        assert error_of(r)[0] == "authorization"
    assert essentials(await api.status(loan)) == essentials(before)
    assert api.repo.payments(loan_id=loan) == [] and api.repo.loan(f"{loan}-X") is None


# --------------------------------------------------------------------------- cases and inputs


async def test_open_a_case_post_payments_and_read_the_status(api):
    result = await api.start("API-1")
    assert result == {
        "workflow_id": "loan-API-1",
        "started": True,
        "message": "started loan-API-1",
        "unapplied_payments": [],
        "payment": None,
    }
    assert api.repo.borrower("B-API-1").name == "张伟" and api.repo.loan("API-1").principal == 500_000
    async with api.http() as c:
        # the running case's own terms (other terms are refused: issue 14, hole 1)
        again = await c.post(
            "/v1/cases",
            json={
                "loan_id": "API-1",
                "borrower_id": "B-API-1",
                "principal": "5000.00",
                "due_date": api.repo.loan("API-1").due_date.isoformat(),
            },
        )
        assert again.status_code == 200 and again.json()["started"] is False

        st = (await c.get("/v1/loans/API-1")).json()
        assert (st["workflow_id"], st["status"], st["currency"], st["outstanding"]["total"]) == (
            "loan-API-1",
            "active",
            "CNY",
            "5135.50",
        )

        pay = {"payment_id": "BANK-API-1", "amount": "135.50", "paid_at": "2026-11-28T10:15:00+08:00"}
        r = await c.post("/v1/loans/API-1/payments", json=pay)
        assert r.status_code == 200, r.text
        body = r.json()
        assert (body["status"], body["duplicate"], body["applied"], body["outstanding"], body["case_status"]) == (
            "applied",
            False,
            "135.50",
            "5000.00",
            "active",
        )
        assert body["allocation"] == {"fees": "15.00", "interest": "120.50"}

        dup = await c.post("/v1/loans/API-1/payments", json=pay)
        assert dup.status_code == 200 and dup.json()["duplicate"] is True and dup.json()["outstanding"] == "5000.00"
        assert (await c.get("/v1/loans/API-1")).json()["total_paid"] == "135.50"
    for _ in range(50):  # the ledger row is written by the case's activity
        if api.repo.payments(loan_id="API-1"):
            break
        await asyncio.sleep(0.1)
    assert [(p.payment_id, p.status, p.amount) for p in api.repo.payments(loan_id="API-1")] == [("BANK-API-1", "applied", 13_550)]


async def test_a_case_opened_with_a_payment_applies_it_in_the_same_request(api):
    """Update-with-start: the opening data and a payment received with it; sent again, nothing changes; a payment
    the case would refuse starts nothing and writes nothing."""
    async with api.http() as c:
        bad = await c.post(
            "/v1/cases",
            json={
                "loan_id": "API-WS-BAD",
                "borrower_id": "B-API-WS-BAD",
                "principal": "100.00",
                "due_date": (date.today() - timedelta(days=3)).isoformat(),
                "borrower": {"name": "王芳", "phone": "13812345670"},
                "payment": {"payment_id": "WS-BAD", "amount": "500.00"},
            },
        )
        assert bad.status_code == 422 and error_of(bad)[0] == "payment.amount", bad.text
        assert (await c.get("/v1/loans/API-WS-BAD")).status_code == 404
    assert api.repo.loan("API-WS-BAD") is None and api.repo.borrower("B-API-WS-BAD") is None
    pay = {"payment_id": "WS-1", "amount": "135.50"}
    first = await api.start("API-WS", payment=pay)
    assert first["started"] is True and first["payment"]["applied"] == "135.50", first
    assert first["payment"]["outstanding"] == "5000.00" and "payment WS-1: applied 135.50" in first["message"]
    async with api.http() as c:
        body = {"loan_id": "API-WS", "borrower_id": "B-API-WS", "principal": "5000.00", "interest": "120.50", "fees": "15"}
        body["due_date"] = api.repo.loan("API-WS").due_date.isoformat()
        r = await c.post("/v1/cases", json={**body, "payment": pay})
        assert r.status_code == 200, r.text
        again = r.json()
        assert again["started"] is False and again["payment"]["duplicate"] is True, again
        st = (await c.get("/v1/loans/API-WS")).json()
    assert st["total_paid"] == "135.50" and st["outstanding"]["total"] == "5000.00"
    for _ in range(50):  # the ledger row is written by the case's activity
        if api.repo.payments(loan_id="API-WS"):
            break
        await asyncio.sleep(0.1)
    assert [(p.payment_id, p.status) for p in api.repo.payments(loan_id="API-WS")] == [("WS-1", "applied")]


async def test_a_payment_for_a_loan_with_no_open_case_is_kept_as_unapplied(api):
    api.repo.upsert_borrower(id="B-API-U", name="李娜", timezone="Asia/Shanghai", language="zh")
    api.repo.upsert_loan(
        id="API-U",
        borrower_id="B-API-U",
        currency="CNY",
        principal=100_000,
        interest=0,
        fees=0,
        due_date=date(2026, 10, 1),
        policy="default",
    )
    async with api.http() as c:
        r = await c.post("/v1/loans/API-U/payments", json={"payment_id": "LATE-U1", "amount": "50.00"})
        assert r.status_code == 202, r.text
        assert (r.json()["status"], r.json()["duplicate"], r.json()["currency"]) == ("unapplied", False, "CNY")
        again = await c.post("/v1/loans/API-U/payments", json={"payment_id": "LATE-U1", "amount": "50.00"})
        assert again.status_code == 202 and again.json()["duplicate"] is True
        reused = await c.post("/v1/loans/API-U/payments", json={"payment_id": "LATE-U1", "amount": "60.00"})
        assert reused.status_code == 422 and error_of(reused)[0] == "payment_id"

        unknown = await c.post("/v1/loans/NOPE-1/payments", json={"payment_id": "LATE-U2", "amount": "50.00"})
        assert unknown.status_code == 404
        assert error_of(unknown) == (
            "loan_id",
            "NOPE-1 is unknown (no open case and not in the system of record); nothing recorded",
        )
        assert (await c.get("/v1/loans/NOPE-1")).status_code == 404
        assert (await c.post("/v1/loans/NOPE-1/holds", json={"kind": "dispute"})).status_code == 404
    assert [(p.payment_id, p.status, p.amount) for p in api.repo.payments(loan_id="API-U")] == [("LATE-U1", "unapplied", 5_000)]
    assert api.repo.payments(loan_id="NOPE-1") == []


async def test_unapplied_payments_are_named_when_a_case_opens_and_applied_only_when_asked(api):
    api.repo.upsert_borrower(id="B-API-UA", name="李娜", timezone="Asia/Shanghai", language="zh")
    api.repo.upsert_loan(
        id="API-UA",
        borrower_id="B-API-UA",
        currency="CNY",
        principal=500_000,
        interest=12_050,
        fees=1_500,
        due_date=date.today() - timedelta(days=3),
        policy="default",
    )
    async with api.http() as c:
        for pid, amount in (("EARLY-1", "100.00"), ("EARLY-2", "20.00")):
            r = await c.post("/v1/loans/API-UA/payments", json={"payment_id": pid, "amount": amount})
            assert r.status_code == 202, r.text
        none_open = await c.post("/v1/loans/API-UA/payments/apply-unapplied", json={})
        assert none_open.status_code == 404 and error_of(none_open)[0] == "loan_id"
    opened = await api.start("API-UA", borrower_id="B-API-UA")
    assert opened["unapplied_payments"] == ["EARLY-1", "EARLY-2"] and "apply-unapplied" in opened["message"]
    before = await api.status("API-UA")
    assert before["total_paid"] == "0.00"  # nothing applied on its own
    async with api.http() as c:
        bad = await c.post("/v1/loans/API-UA/payments/apply-unapplied", json={"payment_ids": ["NOT-THERE"]})
        assert bad.status_code == 422 and error_of(bad)[0] == "payment_id", bad.text
        assert (await api.status("API-UA"))["total_paid"] == "0.00"  # a refusal changes nothing
        one = await c.post("/v1/loans/API-UA/payments/apply-unapplied", json={"payment_ids": ["EARLY-2"]})
        assert one.status_code == 200, one.text
        assert [(o["payment_id"], o["status"], o["applied"]) for o in one.json()] == [("EARLY-2", "applied", "20.00")]
        rest = await c.post("/v1/loans/API-UA/payments/apply-unapplied", json={})
        assert [o["payment_id"] for o in rest.json()] == ["EARLY-1"]
        empty = await c.post("/v1/loans/API-UA/payments/apply-unapplied", json={})
        assert empty.status_code == 422 and "no unapplied payments" in error_of(empty)[1]
        again = await c.post("/v1/loans/API-UA/payments/apply-unapplied", json={"payment_ids": ["EARLY-2"]})
        assert again.status_code == 200 and again.json()[0]["duplicate"] is True  # a retry: nothing changes
    after = await api.status("API-UA")
    assert after["total_paid"] == "120.00"
    rows = {p.payment_id: p for p in api.repo.payments(loan_id="API-UA")}
    assert {k: (v.status, v.workflow_id) for k, v in rows.items()} == {
        "EARLY-1": ("applied", "loan-API-UA"),
        "EARLY-2": ("applied", "loan-API-UA"),
    }


async def test_apply_unapplied_goes_on_past_a_payment_the_case_refuses(api):
    api.repo.upsert_borrower(id="B-API-UB", name="李娜", timezone="Asia/Shanghai", language="zh")
    api.repo.upsert_loan(
        id="API-UB",
        borrower_id="B-API-UB",
        currency="CNY",
        principal=10_000,
        interest=0,
        fees=0,
        due_date=date.today() - timedelta(days=3),
        policy="default",
    )
    async with api.http() as c:
        for pid, amount in (("UB-1", "60.00"), ("UB-2", "80.00"), ("UB-3", "10.00")):
            assert (await c.post("/v1/loans/API-UB/payments", json={"payment_id": pid, "amount": amount})).status_code == 202
        await api.start("API-UB", borrower_id="B-API-UB", principal="100.00", interest="0", fees="0")
        r = await c.post("/v1/loans/API-UB/payments/apply-unapplied", json={})
        assert r.status_code == 200, r.text
    assert [(o["payment_id"], o["status"]) for o in r.json()] == [("UB-1", "applied"), ("UB-2", "unapplied"), ("UB-3", "applied")]
    assert "more than the outstanding" in r.json()[1]["message"]
    assert {p.payment_id: p.status for p in api.repo.payments(loan_id="API-UB")} == {
        "UB-1": "applied",
        "UB-2": "unapplied",
        "UB-3": "applied",
    }
    assert (await api.status("API-UB"))["total_paid"] == "70.00"


async def test_promise_hold_release_plan_and_outcome_reach_the_case(api):
    await api.start("API-2")
    today = date.today()
    async with api.http() as c:
        r = await c.post("/v1/loans/API-2/holds", json={"kind": "dispute", "reference": "T-77"})
        assert r.status_code == 200, r.text
        assert r.json()["status"] == "paused"
        r = await c.post("/v1/loans/API-2/holds/dispute/release", json={"resolution": "explained"})
        assert r.status_code == 200 and r.json()["status"] == "active", r.text
        r = await c.post("/v1/loans/API-2/promises", json={"amount": "1000.00", "date": (today + timedelta(days=5)).isoformat()})
        assert r.status_code == 200 and r.json()["status"] == "paused", r.text
        r = await c.post(
            "/v1/loans/API-2/plans",
            json={"kind": "instalments", "instalments": 5, "first_due": (today + timedelta(days=7)).isoformat()},
        )
        assert r.status_code == 200, r.text
        assert r.json()["total"] == "5135.50" and len(r.json()["schedule"]) == 5
        st = (await c.get("/v1/loans/API-2")).json()
        assert st["plan"]["kind"] == "instalments" and st["holds"] == []

        # the case's own validators refuse with their field and reason; nothing changes
        before = essentials(st)
        r = await c.post("/v1/loans/API-2/outcomes", json={"kind": "court", "outcome": "judgment"})
        assert r.status_code == 422 and error_of(r)[0] == "kind" and error_of(r)[1].startswith("no lawsuit"), r.text
        r = await c.post(
            "/v1/loans/API-2/outcomes", json={"kind": "court", "outcome": "judgment", "effective_on": today.isoformat()}
        )
        assert r.status_code == 422 and error_of(r)[0] == "performance_ends", r.text  # the judgment's dates come together
        r = await c.post("/v1/loans/API-2/holds/complaint/release", json={})
        assert r.status_code == 422 and error_of(r)[0] == "kind", r.text
        r = await c.post("/v1/loans/API-2/payments", json={"payment_id": "TOO-MUCH", "amount": "999999.00"})
        assert r.status_code == 422 and error_of(r)[0] == "amount", r.text
        assert essentials((await c.get("/v1/loans/API-2")).json()) == before


async def test_the_legal_team_records_a_limitation_suspension_and_a_bad_one_changes_nothing(api):
    await api.start("API-SUSP")
    today = date.today()
    async with api.http() as c:
        body = {
            "cause": "no_heir_or_administrator",
            "starts_on": (today - timedelta(days=30)).isoformat(),
            "ends_on": (today - timedelta(days=1)).isoformat(),
            "reference": "公证书-2026-88",
        }
        r = await c.post("/v1/loans/API-SUSP/limitation/suspension", json=body)
        # a loan that fell due days ago is years from its last six months: recorded, with no effect (民法典 art. 194)
        assert r.status_code == 200 and "no effect" in r.json()["message"], r.text
        st = (await c.get("/v1/loans/API-SUSP")).json()
        assert [x["reference"] for x in st["limitation_suspensions"]] == ["公证书-2026-88"]
        r = await c.post(
            "/v1/loans/API-SUSP/limitation/suspension",
            json={**body, "reference": "X-2", "ends_on": (today - timedelta(days=40)).isoformat()},
        )
        assert r.status_code == 422 and error_of(r)[0] == "ends_on", r.text
        r = await c.post("/v1/loans/API-SUSP/limitation/suspension", json={**body, "cause": "tired"})
        assert r.status_code == 422 and error_of(r)[0] == "cause", r.text
        st2 = (await c.get("/v1/loans/API-SUSP")).json()
        assert st2["limitation_suspensions"] == st["limitation_suspensions"]


@pytest.mark.parametrize(
    "method,path,body,status,field,reason",
    [
        ("post", "/v1/loans/API-3/payments", {"payment_id": "X1", "amount": "1.001"}, 422, "amount", "has 3 decimals"),
        ("post", "/v1/loans/API-3/payments", {"payment_id": "X1", "amount": 5}, 422, "amount", "must be a decimal string"),
        ("post", "/v1/loans/API-3/payments", {"amount": "5"}, 422, "payment_id", "is required"),
        (
            "post",
            "/v1/loans/API-3/payments",
            {"payment_id": "bad id!", "amount": "5"},
            422,
            "payment_id",
            "'bad id!' is not an id",
        ),
        (
            "post",
            "/v1/loans/API-3/payments",
            {"payment_id": "X1", "amount": "5", "note": "x"},
            422,
            "note",
            "is not a known field",
        ),
        ("post", "/v1/loans/API-3/payments", "{not json", 422, "body", "is not valid JSON"),
        (
            "post",
            "/v1/loans/API-3/payments",
            {"payment_id": "X1", "amount": "5", "currency": "USD"},
            422,
            "currency",
            "USD does not match",
        ),
        ("post", "/v1/loans/bad%20id/payments", {"payment_id": "X1", "amount": "5"}, 422, "loan_id", ""),
        ("post", "/v1/loans/API-3/holds", {"kind": "holiday"}, 422, "kind", ""),
        ("post", "/v1/loans/API-3/holds", {"kind": "hardship"}, 422, "until", "a hardship hold needs its end date"),
        ("post", "/v1/loans/API-3/holds/holiday/release", {}, 422, "kind", ""),
        (
            "post",
            "/v1/loans/API-3/plans",
            {"kind": "instalments", "instalments": 70, "first_due": "2030-01-01"},
            422,
            "instalments",
            "",
        ),
        (
            "post",
            "/v1/cases",
            {"loan_id": "API-4", "borrower_id": "B", "principal": "10", "due_date": "2026-10-01", "policy": "../../etc/passwd"},
            422,
            "policy",
            "",
        ),
        (
            "post",
            "/v1/cases",
            {"loan_id": "API-4", "borrower_id": "B", "principal": "0", "due_date": "2026-10-01"},
            422,
            "principal",
            "the loan owes nothing",
        ),
        (
            "post",
            "/v1/cases",
            {"loan_id": "API-4", "borrower_id": "B", "principal": "10", "due_date": "2026-10-01", "timezone": "Moon/Base"},
            422,
            "timezone",
            "unknown IANA time zone",
        ),
        (
            "post",
            "/v1/cases",
            {"loan_id": "API-4", "borrower_id": "B", "principal": "10", "due_date": "1899-10-01"},
            422,
            "due_date",
            "is outside",
        ),
        (
            "post",
            "/v1/cases",
            {
                "loan_id": "API-4",
                "borrower_id": "B",
                "principal": "10",
                "due_date": "2026-10-01",
                "borrower": {"name": "x\u0000y"},
            },
            422,
            "borrower.name",
            "",
        ),
        (
            "post",
            "/v1/cases",
            {"loan_id": "API-4", "borrower_id": "B-NOBODY", "principal": "10", "due_date": "2026-10-01"},
            422,
            "borrower",
            "B-NOBODY is not in the system of record",
        ),
        ("get", "/v1/cases?status=open", None, 422, "status", ""),
        ("get", "/v1/cases?min_amount=lots", None, 422, "min_amount", ""),
        ("get", "/v1/cases?limit=0", None, 422, "limit", ""),
        ("get", "/v1/cases?query=bogus%20%3D%3D%3D", None, 422, "query", "Temporal refused the query"),
        ("get", "/v1/loans/NOPE-2", None, 404, "loan_id", "no case for loan NOPE-2"),
    ],
)
async def test_bad_input_gets_one_error_shape_and_changes_nothing(api, method, path, body, status, field, reason):
    if not api.repo.loan("API-3"):
        await api.start("API-3")
    before = await api.status("API-3")
    async with api.http() as c:
        if isinstance(body, str):
            r = await c.request(method, path, content=body, headers={"content-type": "application/json"})
        else:
            r = await c.request(method, path, json=body)
    assert r.status_code == status, r.text
    got_field, got_reason = error_of(r)
    assert got_field == field and reason in got_reason, r.text
    assert essentials(await api.status("API-3")) == essentials(before)
    assert api.repo.loan("API-4") is None


async def test_list_cases_filters_through_visibility(api):
    for i, principal in enumerate(("800.00", "20000.00", "30000.00"), 1):
        await api.start(f"APL-{i}", principal=principal, segment="apiseg")
    async with api.http() as c:
        r = await c.post("/v1/loans/APL-3/holds", json={"kind": "dispute"})
        assert r.status_code == 200, r.text

        async def listed(**params) -> list[dict]:
            r = await c.get("/v1/cases", params={"segment": "apiseg", **params})
            assert r.status_code == 200, r.text
            return r.json()["items"]

        async def until(want: set[str], **params) -> list[dict]:
            deadline = time.monotonic() + 30
            while True:
                items = await listed(**params)
                if {i["loan_id"] for i in items} == want and all(i["status"] for i in items):
                    return items
                assert time.monotonic() < deadline, items
                await asyncio.sleep(0.5)

        everything = await until({"APL-1", "APL-2", "APL-3"})
        assert all(i["segment"] == "apiseg" and i["execution"] == "Running" for i in everything)
        await until({"APL-2", "APL-3"}, min_amount="10000")
        held = await until({"APL-3"}, on_hold="true")
        assert held[0]["status"] == "paused" and held[0]["on_hold"] is True
        await until({"APL-1", "APL-2"}, on_hold="false", status="active")
        small = await until({"APL-1"}, query="OutstandingAmount < 1000")
        assert small[0]["outstanding"] == "935.50"
        r = await c.get("/v1/cases", params={"query": 'Segment = "apiseg"', "limit": 2})
        assert r.status_code == 200 and r.json()["count"] == 2
        assert r.json()["query"] == 'WorkflowType = "CollectionCase" AND (Segment = "apiseg")'


# --------------------------------------------------------------------------- properties (schemathesis)


async def test_schemathesis_no_server_errors_and_responses_match_the_schema(api, tmp_path):
    """Generated requests against every operation: never a 5xx, every response (status code,
    content type, body) as the OpenAPI document says, and no operation that ignores auth."""
    st = shutil.which("st", path=str(Path(sys.executable).parent)) or shutil.which("st")
    assert st, "schemathesis is a dev dependency (pip install -e '.[dev]')"
    await api.start("ST-1")  # an open case, so that some generated inputs reach a validator
    args = [
        st,
        "run",
        f"{api.url}/openapi.json",
        "--header",
        f"Authorization: Bearer {TOKEN}",
        "--checks",
        "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,ignored_auth",
        "--phases",
        "examples,coverage,fuzzing",
        "--max-examples",
        "15",
        "--max-time",
        "25",
        "--seed",
        "20261128",
        "--workers",
        "1",
        "--request-timeout",
        "20",
        "--no-color",
        "--warnings",
        "off",
        "--report",
        "junit",
        "--report-junit-path",
        str(tmp_path / "junit.xml"),
    ]
    proc = await asyncio.create_subprocess_exec(
        *args, cwd=tmp_path, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, env=dict(os.environ, NO_COLOR="1")
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 90)
    text = out.decode(errors="replace")
    assert proc.returncode == 0, text[-6000:]
    print("\n".join(line for line in text.splitlines() if "generated" in line or "passed" in line))
    junit = (tmp_path / "junit.xml").read_text()
    assert 'failures="0"' in junit and 'errors="0"' in junit, junit[:3000]
    assert "/v1/loans/{loan_id}/payments" in junit


def test_the_api_refuses_to_start_without_a_token_when_one_is_required(repo):
    env = dict(os.environ, API_REQUIRE_TOKEN="1", API_PORT=str(free_port()))
    env.pop("API_TOKEN", None)
    r = subprocess.run([sys.executable, "-m", "api"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "refusing to start without a token" in r.stderr, r.stderr
    env["API_TOKEN"] = "dev-token"
    r = subprocess.run([sys.executable, "-m", "api"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and "development token" in r.stderr, r.stderr
