"""The sandbox channel gateway over real HTTP: a `python -m sandbox` subprocess on a free port."""

from __future__ import annotations

import datetime as dt
import html
import re
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlencode

import httpx
import pytest

from sandbox.gateway import RunningGateway, running_gateway, start_in_subprocess

API_KEY = "test-key"

VALID = {
    "/v1/sms": {"loan_id": "L-1001", "to": "+8613812345678", "text": "您的贷款已逾期，请尽快还款。", "language": "zh"},
    "/v1/email": {
        "loan_id": "L-1001",
        "to": "zhang.san@example.com",
        "subject": "逾期提醒",
        "body": "尊敬的客户：您的贷款已逾期 3 天。",
        "language": "zh",
    },
    "/v1/letters": {
        "loan_id": "L-1001",
        "kind": "overdue_letter",
        "recipient": "张三",
        "address": "上海市浦东新区世纪大道 100 号",
        "content": "逾期信函正文",
        "language": "zh",
    },
    "/v1/calls": {"loan_id": "L-1001", "to": "13812345678", "script": "Reminder call", "language": "en"},
    "/v1/visits": {"loan_id": "L-1001", "address": "上海市浦东新区世纪大道 100 号", "notes": ""},
    "/v1/law-firm": {
        "loan_id": "L-1001",
        "recipient": "张三",
        "address": "上海市",
        "amount": "12345.67",
        "currency": "CNY",
        "content": "律师函",
    },
    "/v1/court": {
        "loan_id": "L-1001",
        "kind": "payment_order",
        "defendant": "张三",
        "address": "上海市",
        "amount": "12345.67",
        "currency": "CNY",
    },
    "/v1/credit-bureau": {"loan_id": "L-1001", "kind": "notice", "amount": "12345.67", "currency": "CNY", "dpd": 88},
    "/v1/agency": {"loan_id": "L-1001", "kind": "place", "amount": "12345.67", "currency": "CNY"},
}
EXPECTED = {  # path -> (channel, fields the response must carry besides the common ones)
    "/v1/sms": ("sms", set()),
    "/v1/email": ("email", set()),
    "/v1/letters": ("letter", set()),
    "/v1/calls": ("call", {"outcome"}),
    "/v1/visits": ("visit", {"visit_id", "scheduled_for"}),
    "/v1/law-firm": ("law_firm", {"matter_id"}),
    "/v1/court": ("court", {"case_number"}),
    "/v1/credit-bureau": ("credit_bureau", {"reference"}),
    "/v1/agency": ("agency", {"placement_id"}),
}


def key() -> str:
    return f"test:{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def gateway():
    with running_gateway(api_key=API_KEY) as gw:
        yield gw


@pytest.fixture
def gw(gateway: RunningGateway):
    gateway.reset()
    return gateway


@pytest.fixture
def client(gw: RunningGateway):
    with gw.client() as c:
        yield c


def post(client: httpx.Client, path: str, body: dict, idem: str | None = None, **kw) -> httpx.Response:
    return client.post(path, json=body, headers={"Idempotency-Key": idem or key()}, **kw)


# ------------------------------------------------------------------ every channel


def test_health_is_open(gw):
    r = httpx.get(gw.url + "/health")
    assert r.status_code == 200 and r.json() == {"status": "ok"}


@pytest.mark.parametrize("path", list(VALID))
def test_each_channel_accepts_a_valid_request(gw, client, path):
    idem = key()
    r = post(client, path, VALID[path], idem)
    assert r.status_code == 200, r.text
    data = r.json()
    channel, extra = EXPECTED[path]
    assert data["channel"] == channel
    assert data["idempotency_key"] == idem and data["duplicate"] is False and data["id"]
    assert dt.datetime.fromisoformat(data["accepted_at"]).tzinfo is not None
    assert extra <= data.keys()
    [item] = gw.outbox()
    assert item["channel"] == channel and item["loan_id"] == "L-1001" and item["idempotency_key"] == idem
    assert item["body"] == VALID[path] and item["response"] == data and item["presented"] == 1


def test_channel_specific_fields(client):
    call = post(client, "/v1/calls", VALID["/v1/calls"]).json()
    assert call["outcome"] == "answered" and "promise_amount" not in call
    visit = post(client, "/v1/visits", VALID["/v1/visits"]).json()
    scheduled = dt.datetime.fromisoformat(visit["scheduled_for"])
    assert dt.timedelta(days=1) < scheduled - dt.datetime.fromisoformat(visit["accepted_at"]) <= dt.timedelta(days=3)
    court = post(client, "/v1/court", VALID["/v1/court"]).json()
    assert "民督" in court["case_number"]


# ------------------------------------------------------------------ idempotency


def test_same_key_twice_is_a_duplicate_and_stores_one_item(gw, client):
    idem = key()
    first = post(client, "/v1/sms", VALID["/v1/sms"], idem).json()
    second = post(client, "/v1/sms", VALID["/v1/sms"], idem)
    assert second.status_code == 200
    assert second.json() == first | {"duplicate": True}
    [item] = gw.outbox()
    assert item["presented"] == 2 and item["response"]["duplicate"] is False
    stats = gw.stats()
    assert (stats["requests"], stats["accepted"], stats["duplicates"], stats["rejected"]) == (2, 1, 1, 0)


def test_key_reused_with_a_different_body_or_channel_is_409(gw, client):
    idem = key()
    assert post(client, "/v1/sms", VALID["/v1/sms"], idem).status_code == 200
    changed = post(client, "/v1/sms", VALID["/v1/sms"] | {"text": "another text"}, idem)
    assert changed.status_code == 409
    assert changed.json() == {"error": {"field": "Idempotency-Key", "reason": "reused with a different request"}}
    other_channel = post(client, "/v1/calls", VALID["/v1/calls"], idem)
    assert other_channel.status_code == 409
    [item] = gw.outbox()
    assert item["body"]["text"] == VALID["/v1/sms"]["text"] and item["presented"] == 1


def test_concurrent_requests_with_one_key_deliver_once(gw):
    idem = key()

    def send(_):
        with gw.client() as c:
            return post(c, "/v1/email", VALID["/v1/email"], idem).json()

    with ThreadPoolExecutor(8) as pool:
        results = list(pool.map(send, range(16)))
    assert len({r["id"] for r in results}) == 1
    assert sorted(r["duplicate"] for r in results) == [False] + [True] * 15
    [item] = gw.outbox()
    assert item["presented"] == 16


# ------------------------------------------------------------------ rejections


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": API_KEY}])
def test_auth_is_required(gw, headers):
    with httpx.Client(base_url=gw.url, headers=headers) as c:
        responses = [
            c.post("/v1/sms", json=VALID["/v1/sms"], headers={"Idempotency-Key": key()}),
            c.get("/outbox"),
            c.get("/outbox.html"),
            c.get("/admin/stats"),
            c.post("/admin/reset"),
            c.post("/admin/faults", json={"error_rate": 1}),
        ]
    for r in responses:
        assert r.status_code == 401, r.request.url
        assert r.json()["error"]["field"] == "authorization" and r.json()["error"]["reason"]
    assert gw.outbox() == []
    assert gw.stats()["rejected"] == 1


def test_outbox_page_takes_the_key_as_a_query_parameter(gw):
    assert httpx.get(gw.url + "/outbox.html", params={"key": API_KEY}).status_code == 200
    assert httpx.get(gw.url + "/outbox.html", params={"key": "wrong"}).status_code == 401
    assert httpx.get(gw.url + "/outbox", params={"key": API_KEY}).status_code == 401


@pytest.mark.parametrize("headers", [{}, {"Idempotency-Key": ""}, {"Idempotency-Key": "k" * 201}])
def test_idempotency_key_is_required(gw, client, headers):
    r = client.post("/v1/sms", json=VALID["/v1/sms"], headers=headers)
    assert r.status_code == 400
    assert r.json()["error"]["field"] == "Idempotency-Key"
    assert gw.outbox() == []


def test_idempotency_key_of_200_characters_is_accepted(client):
    assert post(client, "/v1/sms", VALID["/v1/sms"], "k" * 200).status_code == 200


@pytest.mark.parametrize(
    ("path", "change", "field"),
    [
        ("/v1/sms", {"to": "12345"}, "to"),
        ("/v1/sms", {"to": "+86 138 1234 5678"}, "to"),
        ("/v1/calls", {"to": "23812345678"}, "to"),
        ("/v1/email", {"to": "not-an-email"}, "to"),
        ("/v1/letters", {"kind": "love_letter"}, "kind"),
        ("/v1/sms", {"priority": "high"}, "priority"),
        ("/v1/sms", {"text": "x" * 1001}, "text"),
        ("/v1/sms", {"language": "fr"}, "language"),
        ("/v1/law-firm", {"amount": 12345.67}, "amount"),
        ("/v1/court", {"amount": "12,345"}, "amount"),
        ("/v1/agency", {"currency": "cny"}, "currency"),
        ("/v1/credit-bureau", {"dpd": -1}, "dpd"),
        ("/v1/visits", {"loan_id": "bad id!"}, "loan_id"),
    ],
)
def test_invalid_body_is_422_naming_the_field(gw, client, path, change, field):
    r = post(client, path, VALID[path] | change)
    assert r.status_code == 422
    error = r.json()["error"]
    assert error["field"] == field and error["reason"]
    assert set(r.json()) == {"error"}
    assert gw.outbox() == []


def test_missing_field_and_non_json_body_are_422(gw, client):
    body = dict(VALID["/v1/email"])
    del body["subject"]
    r = post(client, "/v1/email", body)
    assert r.status_code == 422 and r.json()["error"] == {"field": "subject", "reason": "Field required"}
    r = client.post("/v1/email", content=b"{not json", headers={"Idempotency-Key": key(), "Content-Type": "application/json"})
    assert r.status_code == 422 and r.json()["error"]["field"] == "body"
    assert gw.outbox() == [] and gw.stats()["rejected"] == 2


# ------------------------------------------------------------------ outbox


def test_outbox_filters_by_loan_and_channel_oldest_first(gw, client):
    sent = []
    for loan in ("L-1", "L-2"):
        for path in ("/v1/sms", "/v1/email", "/v1/sms"):
            sent.append(post(client, path, VALID[path] | {"loan_id": loan}).json()["id"])
    assert [i["id"] for i in gw.outbox()] == sent
    assert [i["id"] for i in gw.outbox(loan_id="L-2")] == sent[3:]
    assert [i["id"] for i in gw.outbox(channel="sms")] == [sent[0], sent[2], sent[3], sent[5]]
    assert [i["id"] for i in gw.outbox(loan_id="L-1", channel="email")] == [sent[1]]
    assert [i["id"] for i in gw.outbox(limit=2)] == sent[:2]
    r = client.get("/outbox", params={"loan_id": "L-1"})
    assert r.json()["count"] == 3 and set(r.json()["items"][0]) == {
        "id",
        "channel",
        "loan_id",
        "idempotency_key",
        "accepted_at",
        "body",
        "response",
        "presented",
    }
    assert client.get("/outbox", params={"channel": "fax"}).status_code == 422


def test_outbox_page_escapes_content_and_shows_chinese(gw, client):
    post(client, "/v1/sms", VALID["/v1/sms"] | {"text": "<script>alert('x')</script> 请还款"})
    r = httpx.get(gw.url + "/outbox.html", params={"key": API_KEY})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html") and "utf-8" in r.headers["content-type"].lower()
    page = r.text
    assert "<script>" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "请还款" in page and "L-1001" in page
    filtered = httpx.get(gw.url + "/outbox.html", params={"key": API_KEY, "loan_id": "L-other"}).text
    assert "请还款" not in filtered and "no deliveries" in filtered


def test_outbox_page_pages_back_past_its_limit(gw, client):
    """The page shows `limit` deliveries, newest first, with a link to the older ones until none are left."""
    for i in range(5):
        post(client, "/v1/sms", VALID["/v1/sms"] | {"loan_id": f"L-PG{i}"})
    seen, url = [], gw.url + "/outbox.html?" + urlencode({"key": API_KEY, "limit": 2})
    for _ in range(5):
        page = httpx.get(url).text
        seen += re.findall(r">(L-PG[0-9])</a>", page)
        more = re.search(r'<a rel=next href="([^"]+)"', page)
        if not more:
            break
        url = gw.url + html.unescape(more.group(1))
    assert seen == [f"L-PG{i}" for i in range(4, -1, -1)], seen


# ------------------------------------------------------------------ faults


def test_error_rate_one_gives_503_and_stores_nothing(gw, client):
    gw.set_faults(error_rate=1.0)
    idem = key()
    for _ in range(3):
        assert post(client, "/v1/sms", VALID["/v1/sms"], idem).status_code == 503
    assert gw.outbox() == []
    gw.clear_faults()
    r = post(client, "/v1/sms", VALID["/v1/sms"], idem)
    assert r.status_code == 200 and r.json()["duplicate"] is False
    assert gw.stats()["faults"]["503"] == 3 and len(gw.outbox()) == 1


def test_lost_response_is_502_but_stored_and_the_retry_is_a_duplicate(gw, client):
    gw.set_faults(lost_response_rate=1.0)
    idem = key()
    lost = post(client, "/v1/letters", VALID["/v1/letters"], idem)
    assert lost.status_code == 502
    [item] = gw.outbox()
    assert item["idempotency_key"] == idem
    gw.clear_faults()
    retry = post(client, "/v1/letters", VALID["/v1/letters"], idem)
    assert retry.status_code == 200
    assert retry.json() == item["response"] | {"duplicate": True}
    assert len(gw.outbox()) == 1 and gw.outbox()[0]["presented"] == 2
    stats = gw.stats()
    assert stats["faults"]["502"] == 1 and stats["accepted"] == 1 and stats["duplicates"] == 1


def test_burst_of_429_with_retry_after_then_success(gw, client):
    assert gw.set_faults(burst_429=2, retry_after_s=3)["burst_429"] == 2
    idem = key()
    for _ in range(2):
        r = post(client, "/v1/agency", VALID["/v1/agency"], idem)
        assert r.status_code == 429 and r.headers["Retry-After"] == "3"
    assert gw.outbox() == []
    assert post(client, "/v1/agency", VALID["/v1/agency"], idem).status_code == 200
    assert gw.stats()["faults"]["429"] == 2 and len(gw.outbox()) == 1
    assert client.get("/admin/faults").json()["burst_429"] == 0


def test_latency_is_added(gw, client):
    gw.set_faults(latency_ms=300)
    started = time.perf_counter()
    r = post(client, "/v1/sms", VALID["/v1/sms"])
    assert r.status_code == 200 and time.perf_counter() - started >= 0.3


def test_seeded_faults_are_reproducible(gw, client):
    def run() -> list[int]:
        gw.set_faults(error_rate=0.5, seed=7)
        return [post(client, "/v1/sms", VALID["/v1/sms"]).status_code for _ in range(12)]

    first, second = run(), run()
    assert first == second and {200, 503} == set(first)


def test_fault_settings_are_validated_and_reset(gw, client):
    r = client.post("/admin/faults", json={"error_rate": 2})
    assert r.status_code == 422 and r.json()["error"]["field"] == "error_rate"
    gw.set_faults(error_rate=0.2, latency_ms=5)
    assert client.delete("/admin/faults").json() == {
        "error_rate": 0.0,
        "lost_response_rate": 0.0,
        "latency_ms": 0,
        "burst_429": 0,
        "retry_after_s": 1,
        "seed": None,
        "visit_outside": 0,
    }


# ------------------------------------------------------------------ scripted calls


def test_scripted_call_outcomes(gw, client):
    gw.script_calls(
        {
            "L-promise": {"outcome": "promise", "promise_amount": "500.00", "promise_date": "2026-07-01"},
            "L-seq": [{"outcome": "no_answer"}, {"outcome": "wrong_number"}],
        }
    )
    call = post(client, "/v1/calls", VALID["/v1/calls"] | {"loan_id": "L-promise"}).json()
    assert (call["outcome"], call["promise_amount"], call["promise_date"]) == ("promise", "500.00", "2026-07-01")
    seq = [post(client, "/v1/calls", VALID["/v1/calls"] | {"loan_id": "L-seq"}).json()["outcome"] for _ in range(3)]
    assert seq == ["no_answer", "wrong_number", "wrong_number"]
    assert post(client, "/v1/calls", VALID["/v1/calls"] | {"loan_id": "L-other"}).json()["outcome"] == "answered"
    bad = client.post("/admin/call-outcomes", json={"L-x": {"outcome": "promise"}})
    assert bad.status_code == 422 and bad.json()["error"]["field"] == "L-x"


# ------------------------------------------------------------------ restart


def test_restart_with_the_same_db_file_keeps_the_outbox(tmp_path):
    db = tmp_path / "gateway.sqlite3"
    with running_gateway(api_key="restart-key", db_path=db) as gw:
        idem = key()
        with gw.client() as c:
            first = post(c, "/v1/sms", VALID["/v1/sms"], idem).json()
        port = gw.port
        gw.stop()
        assert not gw.running
        gw.start()
        assert gw.port == port
        [item] = gw.outbox()
        assert item["id"] == first["id"]
        with gw.client() as c:
            again = post(c, "/v1/sms", VALID["/v1/sms"], idem).json()
        assert again == first | {"duplicate": True}
        assert len(gw.outbox()) == 1
    assert db.exists()


def test_start_in_subprocess_returns_url_and_process():
    url, process = start_in_subprocess()
    try:
        assert httpx.get(url + "/health").json() == {"status": "ok"}
        assert httpx.get(url + "/admin/stats", headers={"Authorization": "Bearer sandbox-key"}).status_code == 200
    finally:
        process.terminate()
        process.wait(10)
    assert process.returncode is not None


# ------------------------------------------------------------------ visits: the dates and hours they may take place


def _windows(*spans: tuple[str, str]) -> list[dict]:
    return [{"start": s, "end": e} for s, e in spans]


def test_a_visit_is_booked_inside_the_dates_and_hours_it_is_sent(gw, client):
    windows = _windows(
        ("2031-03-04T08:00:00+08:00", "2031-03-04T21:00:00+08:00"), ("2031-03-05T08:00:00+08:00", "2031-03-05T21:00:00+08:00")
    )
    r = post(client, "/v1/visits", {**VALID["/v1/visits"], "windows": windows})
    assert r.status_code == 200, r.text
    at = dt.datetime.fromisoformat(r.json()["scheduled_for"])
    assert dt.datetime.fromisoformat("2031-03-04T08:00:00+08:00") <= at < dt.datetime.fromisoformat("2031-03-04T21:00:00+08:00")
    # the windows are kept with the request, as sent
    assert gw.outbox()[0]["body"]["windows"] == windows


def test_a_window_already_past_is_not_booked(gw, client):
    now = dt.datetime.now(dt.UTC)
    windows = _windows(
        ((now - dt.timedelta(days=2)).isoformat(), (now - dt.timedelta(days=1)).isoformat()),
        ((now + dt.timedelta(days=1)).isoformat(), (now + dt.timedelta(days=1, hours=8)).isoformat()),
    )
    at = dt.datetime.fromisoformat(
        post(client, "/v1/visits", {**VALID["/v1/visits"], "windows": windows}).json()["scheduled_for"]
    )
    assert now + dt.timedelta(days=1) <= at < now + dt.timedelta(days=1, hours=8)


def test_the_visit_outside_fault_books_outside_the_windows_then_stops(gw, client):
    windows = _windows(("2031-03-04T08:00:00+08:00", "2031-03-04T21:00:00+08:00"))
    gw.set_faults(visit_outside=1)
    first = dt.datetime.fromisoformat(
        post(client, "/v1/visits", {**VALID["/v1/visits"], "windows": windows}).json()["scheduled_for"]
    )
    second = dt.datetime.fromisoformat(
        post(client, "/v1/visits", {**VALID["/v1/visits"], "windows": windows, "replaces": "VIS-1"}).json()["scheduled_for"]
    )
    assert first >= dt.datetime.fromisoformat("2031-03-04T21:00:00+08:00")
    assert (
        dt.datetime.fromisoformat("2031-03-04T08:00:00+08:00") <= second < dt.datetime.fromisoformat("2031-03-04T21:00:00+08:00")
    )
    assert gw._call("GET", "/admin/faults")["visit_outside"] == 0


@pytest.mark.parametrize(
    "window, field",
    [
        ({"start": "2031-03-04T08:00:00", "end": "2031-03-04T21:00:00+08:00"}, "windows.0"),
        ({"start": "2031-03-04T21:00:00+08:00", "end": "2031-03-04T08:00:00+08:00"}, "windows.0"),
        ({"start": "tomorrow", "end": "2031-03-04T21:00:00+08:00"}, "windows.0.start"),
    ],
)
def test_bad_visit_windows_are_refused_naming_the_field(gw, client, window, field):
    r = post(client, "/v1/visits", {**VALID["/v1/visits"], "windows": [window]})
    assert r.status_code == 422 and r.json()["error"]["field"] == field, r.text
    assert gw.outbox() == []
