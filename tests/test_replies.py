"""A borrower's SMS reply reaches the case: matched by the message it answers, written on the timeline, a keyword
acted on as a promise, anything else left for a person; never acted on twice."""

from __future__ import annotations

import asyncio
import datetime as dt

import httpx
import pytest_asyncio

from app.replies import replies
from domain import webhooks
from tests.test_webhooks import signed


@pytest_asyncio.fixture(scope="module")
async def api(env, worker, repo):
    from api.server import create_app

    app = create_app(["replies-test-bootstrap"], client=env.client, repo=repo)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


async def sent_sms(repo, loan: str):
    for _ in range(100):
        rows = [r for r in repo.contacts(loan_id=loan) if r.channel == "sms" and r.reference]
        if rows:
            return rows[0]
        await asyncio.sleep(0.05)
    raise AssertionError("no SMS was sent")


def reply(event_id: str, text: str, in_reply_to: str | None) -> dict:
    return {
        "event_id": event_id,
        "in_reply_to": in_reply_to,
        "sender": "13812345678",
        "text": text,
        "received_at": dt.datetime.now(dt.UTC).isoformat(),
    }


async def test_a_reply_1_becomes_a_promise_of_the_whole_amount_within_3_days(api, cases, repo, gateway):
    from tests.test_channels import outbox

    h = await cases.start(dpd=2)
    loan = h.id.removeprefix("loan-")
    sms = await sent_sms(repo, loan)
    [text] = [i["body"]["text"] for i in outbox(gateway, loan) if i["channel"] == "sms"]
    assert "回复1：3日内还清" in text  # the SMS says what the keyword does
    body, headers = signed(reply("RE-1", " 1 ", sms.reference))
    r = await api.post("/webhooks/sms", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "acted", r.text
    st = await cases.status(h)
    assert st.promise is not None and st.promise.status == "active"
    assert st.promise.amount == 1_052_000 and (st.promise.date - st.as_of.date()).days in (3, 2)  # (the borrower's day)
    again = await api.post("/webhooks/sms", content=body, headers=headers)  # delivered twice
    assert again.json()["duplicate"] is True
    assert len([e for e in (await cases.status(h)).events if e.kind == "promise"]) == 1
    timeline = [e for e in repo.events(h.id) if e.kind == "reply_received"]
    assert len(timeline) == 1 and "keyword 1" in timeline[0].detail and timeline[0].actor.startswith("borrower:")


async def test_any_other_reply_and_one_matching_no_case_reach_a_person(api, cases, repo):
    h = await cases.start(dpd=2)
    loan = h.id.removeprefix("loan-")
    sms = await sent_sms(repo, loan)
    body, headers = signed(reply("RE-2", "我下周发工资后还", sms.reference))
    r = await api.post("/webhooks/sms", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "needs_person"
    assert (await cases.status(h)).promise is None
    body, headers = signed(reply("RE-3", "who is this?", "NO-SUCH-MESSAGE"))
    r = await api.post("/webhooks/sms", content=body, headers=headers)
    assert r.json()["status"] == "needs_person" and r.json()["loan_id"] is None
    waiting = {x.event_id: x for x in replies(repo)}
    assert waiting["RE-2"].loan_id == loan and waiting["RE-2"].text == "我下周发工资后还"
    assert waiting["RE-2"].sender_tail == "5678" and waiting["RE-3"].loan_id is None
    assert [e.kind for e in repo.events(h.id) if e.kind == "reply_received"] == ["reply_received"]
    r = await api.post("/webhooks/sms", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["field"] == webhooks.HEADER
