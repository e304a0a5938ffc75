"""Real HTTP end to end: the borrower pays by the link on their page at the sandbox's payment page, which confirms it
to the API by its signed webhook; a reply to an SMS reaches the case the same way. The API is served by uvicorn on a
free loopback port (the gateway, a process of its own, calls it back)."""

from __future__ import annotations

import asyncio
import contextlib
import os
import re

import httpx
import pytest_asyncio
import uvicorn

from activities.gateway import GatewayClient, GatewaySettings
from api.server import create_app
from infra.config import settings
from sandbox.gateway.process import free_port
from tests.test_borrower_page import csrf_of, links_of, signed_in


@contextlib.contextmanager
def environ(**values: str):
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    settings.cache_clear()
    try:
        yield
    finally:
        for k, v in old.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        settings.cache_clear()


@pytest_asyncio.fixture(scope="module")
async def served(env, worker, repo, gateway):
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    # the links point here, and the webhooks' secret is derived from the suite gateway's key on both sides
    with environ(COLLECTIONS_PUBLIC_URL=base, GATEWAY_API_KEY=gateway.api_key, GATEWAY_URL=gateway.url):
        app = create_app(["pays-test-bootstrap"], client=env.client, repo=repo)
        gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=10))
        app.state.borrower_gateway = gw
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
        task = asyncio.create_task(server.serve())
        for _ in range(200):
            if server.started:
                break
            await asyncio.sleep(0.02)
        try:
            yield app, base
        finally:
            server.should_exit = True
            await task
            await gw.aclose()


async def test_a_borrower_pays_in_full_by_the_link_and_the_case_closes(served, cases, gateway):
    app, base = served
    h = await cases.start(dpd=5)
    loan = h.id.removeprefix("loan-")
    [token] = await links_of(gateway, loan, "sms")
    async with signed_in(app, gateway, loan, token) as page:
        html = (await page.get(f"/b/{token}")).text
        total = re.search(r'name="amount" inputmode="decimal" value="([0-9.]+)"', html).group(1)
        assert total == "10520.00"
        r = await page.post(f"/b/{token}/pay", data={"csrf": csrf_of(html), "amount": "99999.00"})
        assert r.status_code == 422 and 'data-field="amount"' in r.text and "未能处理：金额：" in r.text
        # more than is due: refused, nothing opened
        r = await page.post(f"/b/{token}/pay", data={"csrf": csrf_of(html), "amount": total})
        assert r.status_code == 303 and r.headers["location"].startswith(gateway.url + "/pay/"), r.text
        checkout = r.headers["location"]
    async with httpx.AsyncClient(timeout=20) as browser:  # the borrower at the payment provider's page
        shown = await browser.get(checkout)
        assert shown.status_code == 200 and "10520.00 CNY" in shown.text
        paid = await browser.post(checkout)
        assert paid.status_code == 303 and paid.headers["location"] == f"{base}/b/{token}?note=payment_sent"
    st = await cases.status(h)
    assert st.status == "closed" and st.outcome == "paid" and st.total_paid == "10520.00"
    # the provider delivers the same webhook again: nothing is applied twice
    cid = checkout.rsplit("/", 1)[1]
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.api_key}"}) as admin:
        again = await admin.post(f"/admin/payments/{cid}/redeliver")
        assert again.status_code == 200 and again.json()["status"] == 200
    assert (await cases.status(h)).total_paid == "10520.00"


async def test_a_reply_to_our_sms_from_the_sms_provider_becomes_the_borrowers_promise(served, cases, gateway, repo):
    _app, base = served
    h = await cases.start(dpd=5)
    loan = h.id.removeprefix("loan-")
    await links_of(gateway, loan, "sms")
    [sms] = [r for r in repo.contacts(loan_id=loan) if r.channel == "sms"]
    async with httpx.AsyncClient(base_url=gateway.url, headers={"Authorization": f"Bearer {gateway.api_key}"}) as admin:
        r = await admin.post(f"/admin/sms/{sms.reference}/reply", json={"text": "1", "webhook_url": f"{base}/webhooks/sms"})
        assert r.status_code == 200 and r.json()["status"] == 200, r.text
    st = await cases.status(h)
    assert st.promise is not None and st.promise.amount == 1_052_000 and st.status == "paused"
