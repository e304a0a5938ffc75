"""Security: no borrower PII in Temporal, and every service refuses a caller without its credential.

1. A demo-like run on a real Temporal dev server (the local stack's server): six borrowers with names,
   phones, resident ID numbers, emails and addresses (and a guarantor) in the database, their cases
   opened through app.opening.open_case on a 1-second-day copy of the demo policy, walked through
   several steps with payments (one paying in full), a promise, an instalment plan, dispute, hardship and
   complaint holds (released), a visit outcome, and a borrower whose phone the gateway refuses (a failure
   path). Then every workflow in the namespace (listed through visibility) is read back:
   - raw, as the server stores it: the history fetched by a client WITHOUT the payload codec, every event
     serialized, plus describe() (search attributes, summary and details) and the visibility listing;
   - decrypted: every payload of every event (inputs, results, update arguments, local activity results,
     failures) decrypted with the payload keys;
   and none of the names, phones, ID numbers, emails or addresses appears, in UTF-8 or JSON-escaped form.
   The case status the API serves is checked the same way.
2. The payments API (`python -m api`) answers 401 to every /v1 operation of its OpenAPI document without
   a valid bearer token and changes nothing; the codec server (`python -m encryption.codec_server`) decrypts
   nothing without its token; the sandbox gateway (`python -m sandbox`) serves nothing and stores nothing
   without its API key.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
import pytest_asyncio
from google.protobuf import json_format
from temporalio.api.common.v1 import Payloads
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from app import inputs, opening, visibility
from devstack.binaries import find
from domain.dates import local_date
from domain.money import format_amount
from domain.policy import load_policy, parse_policy
from encryption import codec
from encryption.codec_server import COOKIE, running_codec_server
from tests.conftest import DATA_CONVERTER
from tests.workflow_helpers import payloads_in
from worker import build_worker
from workflows import search

ROOT = Path(__file__).resolve().parent.parent
QUEUE = "collections-security"
API_TOKEN = "security-api-token-0123456789"
CODEC_TOKEN = "security-codec-token-" + "y" * 24
TZ = "Asia/Shanghai"

# (loan, dpd, contact) — synthetic people with every kind of PII the database holds
BORROWERS = [
    (
        "SEC-1",
        2,
        opening.Contact(
            name="欧阳建国",
            phone="13812349876",
            email="ouyang.jianguo@example.cn",
            address="上海市黄浦区南京东路100号3室",
            id_number="31010119850307123X",
        ),
    ),
    (
        "SEC-2",
        8,
        opening.Contact(
            name="司马婉清",
            phone="13987654321",
            email="wanqing.sima@example.cn",
            address="北京市朝阳区建国路88号2单元1501",
            id_number="110105199208154321",
        ),
    ),
    (
        "SEC-3",
        31,
        opening.Contact(
            name="Harriet Quill-Ashdown",
            phone="+8613711112222",
            email="h.quillashdown@example.org",
            address="Flat 7, 29 Larkspur Lane, Kowloon",
            id_number="440301198812250017",
            language="en",
        ),
    ),
    (
        "SEC-4",
        46,
        opening.Contact(
            name="诸葛明远",
            phone="13655557777",
            email="zhuge.mingyuan@example.cn",
            address="广州市天河区体育西路191号",
            id_number="440106197701019876",
        ),
    ),
    (
        "SEC-5",
        75,
        opening.Contact(
            name="慕容雪梅",
            phone="13500001234",
            email="murong.xuemei@example.cn",
            address="成都市锦江区春熙路38号",
            id_number="510104199512120028",
        ),
    ),
    # a phone the gateway refuses (the SMS and the call fail with the gateway's reason): a failure path
    (
        "SEC-6",
        95,
        opening.Contact(
            name="上官飞燕",
            phone="5550100",
            email="shangguan.feiyan@example.cn",
            address="杭州市西湖区北山街12号",
            id_number="330106198403033333",
        ),
    ),
]
GUARANTOR = dict(
    id="G-SEC-4",
    name="端木长风",
    phone="13722223333",
    email="duanmu.changfeng@example.cn",
    address="深圳市南山区科技园南路8号",
    id_number="440305196911110011",
    timezone=TZ,
    language="zh",
)


def pii() -> list[str]:
    out = []
    for _, _, c in BORROWERS:
        out += [c.name, c.phone, c.email, c.address, c.id_number]
    out += [GUARANTOR[k] for k in ("name", "phone", "email", "address", "id_number")]
    # parts that would give a person away on their own: the family name + given name split, the street
    out += ["Quill-Ashdown", "Larkspur Lane", "南京东路100号", "建国路88号2单元", "13812349876"[-8:]]
    return out


def forms(s: str) -> list[bytes]:
    """The ways a string can sit in stored bytes: UTF-8, JSON-escaped (\\uXXXX), UTF-16."""
    return list(dict.fromkeys([s.encode(), json.dumps(s)[1:-1].encode(), s.encode("utf-16-le")]))


def leaks(blob: bytes) -> list[str]:
    return [s for s in pii() if any(f in blob for f in forms(s))]


def fast_demo_policy():
    data = load_policy("demo").model_dump(mode="json")
    data.update(name="demo-fast", day_seconds=1, write_off_dpd=3000)
    return parse_policy(data)


@pytest_asyncio.fixture(scope="module")
async def demo_run(repo, gateway):
    """The dev server, a worker, and the demo-like run; yields (env, loans)."""
    env = await WorkflowEnvironment.start_local(
        dev_server_existing_path=find("temporal"),
        search_attributes=search.ALL,
        data_converter=DATA_CONVERTER,
        dev_server_log_level="error",
        dev_server_startup_timeout=dt.timedelta(seconds=60),
        ui=False,
    )
    client = env.client
    gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    policy = fast_demo_policy()
    today = local_date(dt.datetime.now(dt.UTC), TZ)
    try:
        async with build_worker(client, CaseActivities(repo, gw), task_queue=QUEUE):
            repo.upsert_borrower(**GUARANTOR)
            for i, (loan, dpd, contact) in enumerate(BORROWERS):
                inp = opening.case_input(
                    loan_id=loan,
                    borrower_id=f"B-{loan}",
                    principal=f"{8000 + 1000 * i}.00",
                    interest="420.50",
                    fees="30",
                    due_date=today - dt.timedelta(days=dpd),
                    timezone=TZ,
                    policy=policy,
                    guarantor_id="G-SEC-4" if loan == "SEC-4" else None,
                )
                result = await opening.open_case(client, repo, inp, contact, QUEUE)
                assert result.started, result
            await asyncio.sleep(4)  # the first steps run (a policy day is a second)

            async def send(loan, command, fields):
                return await asyncio.wait_for(inputs.send_update(client, loan, command, fields), 30)

            tomorrow = today + dt.timedelta(days=1)
            await inputs.record_payment(client, repo, "SEC-1", payment_id="SEC-PAY-1", amount="1000.00")
            await inputs.record_payment(client, repo, "SEC-1", payment_id="SEC-PAY-1", amount="1000.00")  # duplicate
            await send("SEC-2", "promise", {"amount": "2000.00", "date": tomorrow})
            await send("SEC-3", "plan", {"kind": "instalments", "instalments": 6, "first_due": tomorrow})
            await send("SEC-4", "hold", {"kind": "dispute", "reference": "disputes the fees"})
            await send(
                "SEC-5", "hold", {"kind": "hardship", "until": tomorrow + dt.timedelta(days=30), "reference": "hospital stay"}
            )
            await send("SEC-6", "hold", {"kind": "complaint", "reference": "call at dinner time"})
            await send("SEC-6", "release", {"kind": "complaint", "reviewer": "Compliance Desk"})
            await asyncio.sleep(12)  # more steps: visits, letters, the law firm, the credit bureau
            st = await visibility.case_status(client, "SEC-3")
            if st.awaiting is not None and st.awaiting.kind == "visit":
                await send("SEC-3", "outcome", {"kind": "visit", "outcome": "not_home", "reference": "VR-1"})
            await send("SEC-4", "release", {"kind": "dispute", "resolution": "fees explained"})
            await inputs.record_payment(
                client, repo, "SEC-3", payment_id="SEC-PAY-3", amount=format_amount(st.plan.schedule[0].amount, "CNY")
            )
            total = (await visibility.case_status(client, "SEC-2")).outstanding["total"]
            await inputs.record_payment(client, repo, "SEC-2", payment_id="SEC-PAY-2", amount=total)  # closes it
            await asyncio.sleep(4)
            yield env, [loan for loan, _, _ in BORROWERS]
    finally:
        await gw.aclose()
        await env.shutdown()


# --------------------------------------------------------------------------- 1. no PII in Temporal


async def test_no_borrower_pii_in_any_workflow_history(demo_run, repo, gateway):
    env, loans = demo_run
    # the run did what it should: every case moved, and the database holds the PII it must keep
    for loan, _, contact in BORROWERS:
        b = repo.borrower(f"B-{loan}")
        assert (b.name, b.phone, b.id_number) == (contact.name, contact.phone, contact.id_number)
    statuses = {loan: await visibility.case_status(env.client, loan) for loan in loans}
    assert all(len(s.steps_done) >= 2 for s in statuses.values()), {k: s.steps_done for k, s in statuses.items()}
    assert statuses["SEC-2"].outcome == "paid" and statuses["SEC-3"].plan is not None
    assert any(c.status == "failed" for c in repo.contacts(loan_id="SEC-6"))  # the refused phone
    assert any(c.action.endswith("@guarantor") for c in repo.contacts(loan_id="SEC-4"))
    # the activities did read the PII from the database: it went out to the channels (and nowhere else)
    sent = json.dumps([i["body"] for i in gateway.outbox(loan_id="SEC-1")], ensure_ascii=False).encode()
    assert {"欧阳建国", "13812349876", "ouyang.jianguo@example.cn", "上海市黄浦区南京东路100号3室"} <= set(leaks(sent))
    probe = "|".join(pii()).encode()
    assert len(leaks(probe)) == len(pii()) and len(leaks(json.dumps(pii()).encode())) == len(pii()), (
        "the scanner finds what it looks for"
    )

    plain = await Client.connect(env.client.service_client.config.target_host, namespace=env.client.namespace)
    listed = [wf async for wf in plain.list_workflows("")]
    assert {f"loan-{loan}" for loan in loans} <= {wf.id for wf in listed}
    keys = codec.EncryptionCodec(codec.Keyring.from_env())
    scanned = events = payloads = 0
    for wf in listed:
        assert not leaks(wf.raw_info.SerializeToString()), (wf.id, "visibility", leaks(wf.raw_info.SerializeToString()))
        handle = plain.get_workflow_handle(wf.id, run_id=wf.run_id)
        desc = await handle.describe()
        assert not leaks(desc.raw_description.SerializeToString()), (wf.id, "describe")
        history = await handle.fetch_history()
        for event in history.events:
            raw = event.SerializeToString()
            assert not (found := leaks(raw)), (wf.id, event.event_id, "raw", found)
            for where, p in payloads_in(event):
                payloads += 1
                if p.metadata.get("encoding") == b"binary/encrypted":
                    [p] = await keys.decode([p])
                    assert p.metadata["encoding"] != b"binary/encrypted"
                assert not (found := leaks(p.SerializeToString())), (wf.id, event.event_id, where, found)
            events += 1
        scanned += 1
    print(
        f"\nscanned {scanned} workflow histories, {events} events, {payloads} payloads (decrypted where "
        f"encrypted), for {len(pii())} PII strings: none found"
    )
    assert scanned >= len(loans) and payloads > 100


# --------------------------------------------------------------------------- 2. credentials


def _wait_http(url: str, proc: subprocess.Popen, log: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        assert proc.poll() is None, log.read_text(errors="replace")
        try:
            if httpx.get(url, timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        assert time.monotonic() < deadline, log.read_text(errors="replace")
        time.sleep(0.1)


@pytest.fixture(scope="module")
def api_process(demo_run, repo, tmp_path_factory):
    env, _ = demo_run
    port = __import__("sandbox.gateway", fromlist=["free_port"]).free_port()
    log = tmp_path_factory.mktemp("security-api") / "api.log"
    e = dict(
        os.environ,
        TEMPORAL_ADDRESS=env.client.service_client.config.target_host,
        TEMPORAL_TASK_QUEUE=QUEUE,
        DATABASE_URL=repo.engine.url.render_as_string(hide_password=False),
        API_TOKEN=API_TOKEN,
        API_REQUIRE_TOKEN="1",
        API_PORT=str(port),
        LOG_FORMAT="json",
    )
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "api", "--exit-with-parent", str(os.getpid())],
            cwd=ROOT,
            env=e,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_http(f"{url}/health", proc, log)
        yield url
    finally:
        proc.terminate()
        proc.wait(10)


def essentials(st) -> dict:
    """What an input would change (the ladder itself moves on meanwhile)."""
    return st.model_dump(mode="json", include={"outstanding", "total_paid", "holds", "plan", "promise", "outcome"})


BAD_AUTH = [
    {},
    {"Authorization": "Bearer wrong-token"},
    {"Authorization": f"Basic {API_TOKEN}"},
    {"Authorization": API_TOKEN},
    {"Authorization": f"Bearer {API_TOKEN}x"},
    {"Authorization": "Bearer"},
    {"X-Api-Key": API_TOKEN},
]


async def test_the_api_refuses_every_operation_without_a_valid_token(api_process, demo_run, repo):
    env, _ = demo_run
    url = api_process
    async with httpx.AsyncClient(base_url=url, timeout=30) as http:
        doc = (await http.get("/openapi.json")).json()
        ops_ = [(m.upper(), p) for p, item in doc["paths"].items() if p.startswith("/v1/") for m in item]
        assert len(ops_) >= 9, ops_
        before = essentials(await visibility.case_status(env.client, "SEC-1"))
        bodies = {
            "/v1/loans/{loan_id}/payments": {"payment_id": "SEC-NOAUTH", "amount": "1.00"},
            "/v1/loans/{loan_id}/holds": {"kind": "dispute"},
            "/v1/cases": {"loan_id": "SEC-NOAUTH", "borrower_id": "B-X", "principal": "10", "due_date": "2026-10-01"},
        }
        for method, path in ops_:
            target = path.replace("{loan_id}", "SEC-1").replace("{kind}", "dispute")
            for headers in BAD_AUTH:
                r = await http.request(method, target, headers=headers, json=bodies.get(path, {}))
                assert r.status_code == 401, (method, target, headers, r.status_code, r.text)
                assert r.json()["error"]["field"] == "authorization"
                assert not leaks(r.content)
        # an operator's token gets through (API_TOKEN is only the bootstrap admin's, which may not read cases)
        from access.operators import Operators

        store = Operators(repo)
        viewer = store.issue_token(store.ensure("security viewer", ["viewer"]).id).token
        r = await http.get("/v1/loans/SEC-1", headers={"Authorization": f"Bearer {API_TOKEN}"})
        assert r.status_code == 403 and r.json()["error"]["field"] == "authorization"
        good = {"Authorization": f"Bearer {viewer}"}
        r = await http.get("/v1/loans/SEC-1", headers=good)
        assert r.status_code == 200 and r.json()["loan_id"] == "SEC-1"
        assert not leaks(r.content), "the case status served by the API holds no PII"
        r = await http.get("/v1/cases", headers=good, params={"limit": 10})
        assert r.status_code == 200 and not leaks(r.content)
    assert repo.payments(loan_id="SEC-1") and all(p.payment_id != "SEC-NOAUTH" for p in repo.payments(loan_id="SEC-1"))
    assert repo.loan("SEC-NOAUTH") is None
    assert essentials(await visibility.case_status(env.client, "SEC-1")) == before


async def test_the_codec_server_decrypts_nothing_without_its_token(demo_run):
    env, _ = demo_run
    history = await env.client.get_workflow_handle("loan-SEC-1").fetch_history()
    sealed = [p for e in history.events for _, p in payloads_in(e) if p.metadata.get("encoding") == b"binary/encrypted"][:5]
    assert sealed
    body = json_format.MessageToDict(Payloads(payloads=sealed))
    with running_codec_server({"CODEC_TOKEN": CODEC_TOKEN, "CODEC_DEV": "", "TEMPORAL_UI_PORT": "8233"}) as url:
        async with httpx.AsyncClient(base_url=url, timeout=10) as http:
            for headers in [
                {},
                {"Authorization": "Bearer wrong"},
                {"Authorization": f"Basic {CODEC_TOKEN}"},
                {"Authorization": f"Bearer {CODEC_TOKEN[:-1]}"},
                {"Authorization": CODEC_TOKEN},
                {"Cookie": f"{COOKIE}=9999999999.forged"},
            ]:
                for path in ("/decode",):
                    r = await http.post(path, json=body, headers=headers)
                    assert r.status_code == 401, (path, headers, r.text)
                    assert "payloads" not in r.text
            r = await http.post("/login", data={"token": "not-the-token"})
            assert r.status_code == 401 and COOKIE not in r.cookies
            r = await http.post("/decode", json=body, headers={"Authorization": f"Bearer {CODEC_TOKEN}"})
            assert r.status_code == 200
            decoded = json_format.ParseDict(r.json(), Payloads()).payloads
            assert all(p.metadata["encoding"] != b"binary/encrypted" for p in decoded)


def test_the_sandbox_gateway_requires_its_api_key(gateway):
    body = {"loan_id": "SEC-GW", "to": "13812349876", "text": "hello", "language": "zh"}
    with httpx.Client(base_url=gateway.url, timeout=10) as http:
        for headers in [
            {},
            {"Authorization": "Bearer wrong-key"},
            {"Authorization": f"Basic {gateway.api_key}"},
            {"Authorization": gateway.api_key},
            {"X-Api-Key": gateway.api_key},
        ]:
            h = {**headers, "Idempotency-Key": "sec-gw-1"}
            for method, path, kw in [
                ("POST", "/v1/sms", {"json": body}),
                ("POST", "/v1/letters", {"json": {}}),
                ("GET", "/outbox", {}),
                ("GET", "/outbox.html", {}),
                ("GET", "/admin/faults", {}),
                ("POST", "/admin/faults", {"json": {"error_rate": 1}}),
                ("DELETE", "/admin/faults", {}),
                ("GET", "/admin/stats", {}),
                ("POST", "/admin/reset", {}),
                ("POST", "/admin/call-outcomes", {"json": {}}),
            ]:
                r = http.request(method, path, headers=h, **kw)
                assert r.status_code == 401, (method, path, headers, r.status_code)
                assert r.json()["error"]["field"] == "authorization"
        assert http.get("/outbox.html", params={"key": "wrong-key"}).status_code == 401
        assert http.get("/outbox.html", params={"key": gateway.api_key}).status_code == 200
        assert http.get("/outbox", params={"key": gateway.api_key}).status_code == 401  # ?key= is for the page only
    assert gateway.outbox(loan_id="SEC-GW") == []
    assert gateway.clear_faults()["error_rate"] == 0  # the unauthenticated POST /admin/faults changed nothing
