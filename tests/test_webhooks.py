"""The gateway's signed payment webhook (a borrower paid by the link on their page): the signature, the time, the
event id and the payment id are each checked, and nothing is applied otherwise."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest_asyncio

from api.server import create_app
from app.webhooks import webhook_secret
from domain import webhooks


@pytest_asyncio.fixture(scope="module")
async def api(env, worker, repo):
    app = create_app(["webhook-test-bootstrap"], client=env.client, repo=repo)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as c:
        yield c


def signed(event: dict, at: dt.datetime | None = None, secret: bytes | None = None) -> tuple[bytes, dict]:
    body = json.dumps(event).encode()
    sig = webhooks.sign(secret or webhook_secret(), at or dt.datetime.now(dt.UTC), body)
    return body, {webhooks.HEADER: sig, "Content-Type": "application/json"}


def payment(loan: str, event_id: str, payment_id: str, amount: str = "100.00") -> dict:
    return {
        "event_id": event_id,
        "payment_id": payment_id,
        "loan_id": loan,
        "amount": amount,
        "currency": "CNY",
        "paid_at": dt.datetime.now(dt.UTC).isoformat(),
    }


async def test_a_signed_payment_applies_once_and_a_duplicate_delivery_changes_nothing(api, cases):
    h = await cases.start(dpd=5)
    loan = h.id.removeprefix("loan-")
    body, headers = signed(payment(loan, "EV-1", "PL-1"))
    r = await api.post("/webhooks/payments", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["status"] == "applied", r.text
    assert (await cases.status(h)).total_paid == "100.00"
    r = await api.post("/webhooks/payments", content=body, headers=headers)  # the same delivery again
    assert r.status_code == 200 and r.json()["status"] == "duplicate"
    body, headers = signed(payment(loan, "EV-2", "PL-1"))  # a new event for the same payment
    r = await api.post("/webhooks/payments", content=body, headers=headers)
    assert r.status_code == 200 and r.json()["duplicate"] is True
    assert (await cases.status(h)).total_paid == "100.00"


async def test_an_unsigned_altered_replayed_or_malformed_webhook_applies_nothing(api, cases):
    h = await cases.start(dpd=5)
    loan = h.id.removeprefix("loan-")
    event = payment(loan, "EV-X1", "PL-X1")
    body, headers = signed(event)
    r = await api.post("/webhooks/payments", content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 401 and r.json()["error"]["field"] == webhooks.HEADER
    altered = body.replace(b"100.00", b"900.00")
    r = await api.post("/webhooks/payments", content=altered, headers=headers)
    assert r.status_code == 401 and "does not match" in r.json()["error"]["reason"]
    old, old_headers = signed(event, at=dt.datetime.now(dt.UTC) - dt.timedelta(minutes=6))
    r = await api.post("/webhooks/payments", content=old, headers=old_headers)
    assert r.status_code == 401 and "replay" in r.json()["error"]["reason"]
    r = await api.post("/webhooks/payments", content=body, headers={**headers, webhooks.HEADER: "t=1,v1=00"})
    assert r.status_code == 401
    foreign, foreign_headers = signed(event, secret=b"another gateway")
    r = await api.post("/webhooks/payments", content=foreign, headers=foreign_headers)
    assert r.status_code == 401
    bad, bad_headers = signed({k: v for k, v in event.items() if k != "amount"})
    r = await api.post("/webhooks/payments", content=bad, headers=bad_headers)
    assert r.status_code == 422 and r.json()["error"]["field"] == "amount"
    assert (await cases.status(h)).total_paid == "0.00"


def test_the_signature_rule_from_its_parts():
    now = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)
    sig = webhooks.sign(b"k", now, b"{}")
    assert webhooks.problem(b"k", sig, b"{}", now) is None
    assert webhooks.problem(b"k", sig, b"{}", now + webhooks.TOLERANCE + dt.timedelta(seconds=1)) is not None
    assert webhooks.problem(b"k", sig, b"{ }", now) == "the signature does not match"
    assert webhooks.problem(b"k", None, b"{}", now) == "no X-Signature header"
    assert "is not" in webhooks.problem(b"k", "garbage", b"{}", now)
