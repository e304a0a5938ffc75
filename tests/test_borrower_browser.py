"""The borrower's page in a real browser on a phone (Playwright driving Debian's Chromium, 390 x 844, touch), as a
borrower would use it, from the link in the SMS the case really sent:

- open the link, ask for the code, type the code the gateway delivered, see the amount due by component;
- pay part of it by the payment link: the sandbox's payment page confirms it to the API by its signed webhook, and
  back on the page the amount due has fallen;
- ask for an instalment plan inside the policy's limits (agreed at once, its schedule shown) and for an interest
  waiver beyond them (the page says it waits; a supervisor approves it in the console; the page then shows it);
- complain about how they were treated: a complaint hold on every loan of theirs, the reference on the page, the row
  on the console's reviews worklist.

axe-core checks each page (no serious or critical violation). Screenshots (Chinese, and English for the case) go to
var/screenshots/borrower-*.png; the README shows the copies in docs/. A font that covers Chinese must be installed
(Debian's fonts-noto-cjk): without one every Chinese character would be an empty box in the screenshots.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re
import shutil
import subprocess

import pytest
import pytest_asyncio
import uvicorn
from temporalio.testing import WorkflowEnvironment

from access.operators import Operators
from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from api.server import create_app
from db.engine import make_engine, migrate
from db.repo import GateStore, Repo
from devstack.binaries import find
from encryption import codec
from sandbox.gateway.process import free_port
from tests.conftest import DATA_CONVERTER, Cases, register_search_attributes, today_in
from tests.test_borrower_page import last_code, links_of
from tests.test_borrower_pays import environ
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, wait_for
from tests.test_console_browser import PHONE_VIEWPORT, accessible, sign_in
from worker import build_worker

TASK_QUEUE = "collections-borrower-browser"


@pytest_asyncio.fixture(loop_scope="session")
async def env():
    """A time-skipping server of this test's own, its clock at the wall clock (the page counts today by it)."""
    own = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=find("temporal-test-server")
    )
    await register_search_attributes(own.client)
    yield own
    await own.shutdown()


def chinese_font_or_fail() -> None:
    listed = (
        subprocess.run(["fc-list", ":lang=zh", "family"], capture_output=True, text=True) if shutil.which("fc-list") else None
    )
    if listed is None or not listed.stdout.strip():
        pytest.fail(
            "no font covering Chinese is installed (Debian: apt-get install fonts-noto-cjk): screenshots would show boxes"
        )


async def test_a_borrower_on_a_phone_goes_from_the_sms_to_a_paid_plan_and_a_complaint(env, gateway, tmp_path):
    async_playwright = browser_or_skip()
    chinese_font_or_fail()
    shots = codec.var_dir() / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp_path / 'borrower.db'}"
    migrate(url)
    repo = Repo(make_engine(url))
    store = Operators(repo)
    supervisor = store.issue_token(store.ensure("Zhou Supervisor", ["supervisor"]).id).token
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    with environ(COLLECTIONS_PUBLIC_URL=base, GATEWAY_API_KEY=gateway.api_key, GATEWAY_URL=gateway.url):
        app = create_app(tokens=["borrower-browser-bootstrap-0123456789"], client=env.client, repo=repo)
        gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=10))
        app.state.borrower_gateway = gw
        server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
        serving = asyncio.create_task(server.serve())

        async def started() -> bool:
            return server.started

        try:
            await wait_for("the API to start", started)
            async with build_worker(env.client, CaseActivities(repo, gw), task_queue=TASK_QUEUE):
                cases = Cases(env, repo, task_queue=TASK_QUEUE)
                try:
                    payer = await cases.start(dpd=5)
                    asker = await cases.start(dpd=5)
                    both = [
                        await cases.start(dpd=3, borrower_id="B-BROWSER-2"),
                        await cases.start(dpd=40, borrower_id="B-BROWSER-2"),
                    ]
                    async with async_playwright() as pw:
                        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                        try:
                            await pay_flow(browser, base, gateway, cases, payer, shots)
                            await plan_flow(browser, base, gateway, cases, asker, supervisor, shots)
                            await complaint_flow(browser, base, gateway, cases, both, repo, supervisor, shots)
                        finally:
                            await browser.close()
                finally:
                    await cases.terminate_all()
        finally:
            server.should_exit = True
            await serving
            await gw.aclose()


async def phone(browser):
    context = await browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    return page


async def open_page(page, base, gateway, loan: str, shots=None):
    """From the SMS's link to the case: the code page (nothing about the debt), the code, the amount due."""
    [token] = await links_of(gateway, loan, "sms")
    await page.goto(f"{base}/b/{token}")
    body = await page.locator("main").inner_text()
    assert "验证码" in body and "10520" not in body and loan not in body
    await accessible(page, "borrower code page")
    if shots:
        await page.screenshot(path=str(shots / "borrower-code-phone-zh.png"), full_page=True)
    await page.click("[data-testid=send-code]")
    await page.fill("#code", last_code(gateway, loan))
    await page.click("[data-testid=open]")
    await page.locator("[data-testid=amounts]").wait_for()
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE_VIEWPORT["width"], f"the page is {width}px wide on a 390px screen"
    return token


async def pay_flow(browser, base, gateway, cases, h, shots) -> None:
    loan = h.id.removeprefix("loan-")
    page = await phone(browser)
    token = await open_page(page, base, gateway, loan, shots)
    assert await page.locator("[data-testid=total]").inner_text() == "10520.00 元"
    assert "本金" in await page.locator("[data-testid=amounts]").inner_text()
    assert "如在" in await page.locator("[data-testid=next]").inner_text()  # the next step and its date, in words
    await accessible(page, "borrower case page")
    await page.screenshot(path=str(shots / "borrower-case-phone-zh.png"), full_page=True)
    await page.fill("#pay-amount", "3000.00")
    await page.click("[data-testid=pay]")
    await page.wait_for_url(re.compile(re.escape(gateway.url) + "/pay/"))
    assert "3000.00 CNY" in await page.content()
    await page.screenshot(path=str(shots / "borrower-checkout-phone.png"), full_page=True)
    await page.click("[data-testid=confirm]")  # the provider's page: its webhook reaches the API, then back
    await page.wait_for_url(re.compile(re.escape(f"{base}/b/{token}") + r"\?note=payment_sent"))
    assert "付款已提交" in await page.locator("main").inner_text()
    st = await cases.status(h)
    assert st.total_paid == "3000.00" and st.outstanding["total"] == "7520.00"
    await page.reload()
    assert await page.locator("[data-testid=total]").inner_text() == "7520.00 元"  # the balance has fallen
    assert "3000.00 元" in await page.locator("main").inner_text()  # among the payments received
    await page.screenshot(path=str(shots / "borrower-paid-phone-zh.png"), full_page=True)
    await page.goto(f"{base}/b/{token}?lang=en")
    assert "Amount due" in await page.locator("main").inner_text()
    await accessible(page, "borrower case page, English")
    await page.screenshot(path=str(shots / "borrower-case-phone-en.png"), full_page=True)
    await page.context.close()


async def plan_flow(browser, base, gateway, cases, h, supervisor, shots) -> None:
    loan = h.id.removeprefix("loan-")
    today = today_in(await cases.now())
    page = await phone(browser)
    await open_page(page, base, gateway, loan)
    await page.click("[data-testid=plan] summary")
    # beyond the plain limits: a waiver over the policy's 20% waits for a supervisor
    await page.fill("#pw-pct", "40")
    await page.fill("#pw-by", (today + dt.timedelta(days=20)).isoformat())
    await page.click("[data-testid=plan-waiver]")
    await page.locator("[data-testid=waiting]").wait_for()
    assert "主管审核" in await page.locator("main").inner_text()
    await accessible(page, "borrower plan waiting")
    await page.screenshot(path=str(shots / "borrower-plan-waits-phone-zh.png"), full_page=True)
    st = await cases.status(h)
    assert st.plan is None and st.pending_approval is not None and st.pending_approval.maker.operator_id == f"borrower:{loan}"
    # the supervisor finds it on the approvals worklist and approves it
    desk = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
    desk.set_default_timeout(20_000)
    await sign_in(desk, base, supervisor)
    await desk.goto(f"{base}/console/worklists/approvals")
    await desk.locator("[data-testid=worklist]").get_by_text(loan).click()
    await desk.locator("[data-testid=pending-approval]").wait_for()
    await desk.click("[data-testid=approve]")
    await desk.locator("[data-testid=done]").wait_for()
    await desk.context.close()
    st = await cases.status(h)
    assert st.plan is not None and st.plan.kind == "interest_waiver" and st.pending_approval is None
    await page.reload()
    text = await page.locator("main").inner_text()
    assert "减免利息" in text and "等待主管审核" not in text
    await page.context.close()
    # inside the limits, on another loan: six instalments, agreed at once, the schedule on the page
    other = await cases.start(dpd=4)
    page = await phone(browser)
    await open_page(page, base, gateway, other.id.removeprefix("loan-"))
    await page.click("[data-testid=plan] summary")
    await page.fill("#pi-n", "6")
    await page.fill("#pi-first", (today + dt.timedelta(days=10)).isoformat())
    await page.click("[data-testid=plan-instalments]")
    await page.wait_for_url(re.compile(r"note=plan_agreed"))
    assert "还款计划已生效" in await page.locator("main").inner_text()
    st = await cases.status(other)
    assert st.plan is not None and st.plan.kind == "instalments" and len(st.plan.schedule) == 6
    assert await page.locator("section[aria-labelledby=plan] tbody tr").count() == 6
    assert "宽限期" in await page.locator("[data-testid=terms]").inner_text()  # the terms in the borrower's language
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE_VIEWPORT["width"], f"the schedule makes the page {width}px wide on a 390px screen"
    await page.screenshot(path=str(shots / "borrower-plan-agreed-phone-zh.png"), full_page=True)
    await page.context.close()


async def complaint_flow(browser, base, gateway, cases, handles, repo, supervisor, shots) -> None:
    loan = handles[0].id.removeprefix("loan-")
    page = await phone(browser)
    await open_page(page, base, gateway, loan)
    await page.click("text=投诉催收方式")
    await page.fill("#c-note", "催收员在电话里威胁我，还打电话到我单位")
    await page.click("[data-testid=complaint-submit]")
    await page.wait_for_url(re.compile(r"note=complaint_done"))
    text = await page.locator("main").inner_text()
    ref = re.search(r"C-\d{8}-[0-9A-F]{6}", text)
    assert ref and "停止" in text, text
    await page.screenshot(path=str(shots / "borrower-complaint-phone-zh.png"), full_page=True)
    await page.context.close()
    for h in handles:  # every loan of the borrower, at once
        assert [x.kind for x in (await cases.status(h)).holds] == ["complaint"]
    held = [x for x in GateStore(repo).holds("B-BROWSER-2") if x.kind == "complaint" and x.released_at is None]
    assert len(held) == 2
    desk = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
    desk.set_default_timeout(20_000)
    await sign_in(desk, base, supervisor)
    await desk.goto(f"{base}/console/worklists/reviews")
    rows = await desk.locator("[data-testid=worklist]").inner_text()
    assert loan in rows and ref.group(0) in rows, rows
    await desk.context.close()
