"""The payment provider: a payment page for one payment (the borrower pays by the link on their page), confirmed to
the bank by a signed webhook (domain/webhooks.py) and the borrower sent back. A real HTTP stand-in with the contract
of a payment provider: nothing is applied here, the bank applies what the webhook says.

- POST /v1/payments/checkout (API key): {payment_id, loan_id, amount, currency, webhook_url, return_url} -> {id, url}
- GET /pay/{id}: the page (amount, a button); POST /pay/{id}: paid; the webhook goes out, then 303 to return_url
- POST /admin/payments/{id}/redeliver (API key): the same webhook again (a provider's retry: a duplicate)
- POST /admin/sms/{message_id}/reply (API key): {text, webhook_url}: a reply to that SMS, as the SMS provider would
  deliver it (signed) to the bank
"""

from __future__ import annotations

import datetime as dt
import html
import json
import uuid

import httpx
import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse
from pydantic import BaseModel, ConfigDict

from domain import webhooks
from infra.config import GatewaySettings, load
from sandbox.gateway.common import Amount, ApiError, Body, Currency, Text, parse
from sandbox.gateway.state import Gateway

log = structlog.get_logger("sandbox.gateway")


class CheckoutRequest(Body):
    payment_id: Text(64)
    amount: Amount
    currency: Currency
    webhook_url: Text(500)
    return_url: Text(500)


class ReplyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: Text(500)
    webhook_url: Text(500)


def _secret(gw: Gateway) -> bytes:
    cfg = load(GatewaySettings)
    return cfg.webhook_secret.encode() if cfg.webhook_secret else webhooks.derived_secret(gw.api_key)


async def _deliver(gw: Gateway, url: str, event: dict) -> int:
    body = json.dumps(event).encode()
    headers = {webhooks.HEADER: webhooks.sign(_secret(gw), dt.datetime.now(dt.UTC), body), "Content-Type": "application/json"}
    async with httpx.AsyncClient(timeout=10) as client:
        resp = await client.post(url, content=body, headers=headers)
    log.info("webhook delivered", url=url, status=resp.status_code, event_id=event.get("event_id"))
    return resp.status_code


PAGE = """<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>示范支付</title>
<style>body{{font:17px/1.5 system-ui,"Noto Sans CJK SC",sans-serif;max-width:30rem;margin:2rem auto;padding:0 1rem}}
button{{font:inherit;width:100%;min-height:48px;background:#0b57d0;color:#fff;border:0;border-radius:6px}}</style></head>
<body><h1>示范支付（沙盒）</h1><p>付款金额：<strong data-testid="amount">{amount} {currency}</strong></p><p>{state}</p>
<form method="post" action="/pay/{cid}"><button type="submit" data-testid="confirm">确认付款</button></form></body></html>"""


def payments_router(gw: Gateway) -> APIRouter:
    router = APIRouter()
    checkouts: dict[str, dict] = {}

    @router.post("/v1/payments/checkout")
    async def checkout(request: Request) -> dict:
        gw.check_key(request)
        req = parse(CheckoutRequest, await request.body())
        cid = uuid.uuid4().hex[:16]
        checkouts[cid] = {**req.model_dump(), "paid_at": None, "event_id": f"PAYEV-{cid}"}
        return {"id": cid, "url": f"{str(request.base_url).rstrip('/')}/pay/{cid}"}

    def _found(cid: str) -> dict:
        if cid not in checkouts:
            raise ApiError(404, "id", f"no payment page {cid!r}")
        return checkouts[cid]

    @router.get("/pay/{cid}", response_class=HTMLResponse)
    async def page(cid: str) -> HTMLResponse:
        c = _found(cid)
        state = "已付款" if c["paid_at"] else "沙盒中不会真实扣款。"
        return HTMLResponse(
            PAGE.format(amount=html.escape(c["amount"]), currency=html.escape(c["currency"]), state=state, cid=cid)
        )

    def _event(c: dict) -> dict:
        return {
            "event_id": c["event_id"],
            "payment_id": c["payment_id"],
            "loan_id": c["loan_id"],
            "amount": c["amount"],
            "currency": c["currency"],
            "paid_at": c["paid_at"],
        }

    @router.post("/pay/{cid}")
    async def pay(cid: str) -> RedirectResponse:
        c = _found(cid)
        if c["paid_at"] is None:
            c["paid_at"] = dt.datetime.now(dt.UTC).isoformat()
            await _deliver(gw, c["webhook_url"], _event(c))
        return RedirectResponse(c["return_url"], status_code=303)

    @router.post("/admin/payments/{cid}/redeliver")
    async def redeliver(request: Request, cid: str) -> dict:
        gw.check_key(request)
        c = _found(cid)
        if c["paid_at"] is None:
            raise ApiError(409, "id", "not paid yet")
        return {"status": await _deliver(gw, c["webhook_url"], _event(c))}

    @router.post("/admin/sms/{message_id}/reply")
    async def reply(request: Request, message_id: str) -> dict:
        gw.check_key(request)
        req = parse(ReplyRequest, await request.body())
        sent = [i for i in gw.store.items(channel="sms", limit=100_000) if i["id"] == message_id]
        if not sent:
            raise ApiError(404, "message_id", f"no SMS {message_id!r} was sent")
        event = {
            "event_id": f"SMSIN-{uuid.uuid4().hex[:16]}",
            "in_reply_to": message_id,
            "sender": sent[0]["body"]["to"],
            "text": req.text,
            "received_at": dt.datetime.now(dt.UTC).isoformat(),
        }
        return {"status": await _deliver(gw, req.webhook_url, event), "event_id": event["event_id"]}

    return router
