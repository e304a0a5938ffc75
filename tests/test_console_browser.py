"""The console in a real browser (Playwright driving Debian's Chromium, as tests/test_browser.py does):
sign in, the dashboard shows the stages of running cases, a collector sees the borrower's phone (the
view is logged), records a promise through the case page (a bad amount gets its field error first) and
the case pauses; the promise is on today's worklist; a viewer sees no action and no phone number; a
supervisor's plan with a waiver over the policy's threshold waits for a second supervisor, who finds it on
the approvals worklist and approves it (its maker cannot).

Cases run on a time-skipping test server of the test's own (its clock starts at the wall clock), with a
worker of their own and a fresh database; the API (with the console) runs in this process on a loopback
port. Screenshots go to var/screenshots/console-*.png.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest_asyncio
import uvicorn
from temporalio.testing import WorkflowEnvironment

from access.operators import Operators
from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from api.server import create_app
from db.engine import make_engine, migrate
from db.repo import Repo
from devstack.binaries import find
from domain.policy import load_policy, parse_policy
from domain.tasks import Teams
from encryption import codec
from encryption.codec_server import free_port
from tests.conftest import DATA_CONVERTER, Cases, register_search_attributes, today_in
from tests.test_browser import CHROMIUM, CHROMIUM_ARGS, browser_or_skip, wait_for
from worker import build_worker

TASK_QUEUE = "collections-console-browser"
PHONE = "13812345678"


@pytest_asyncio.fixture(loop_scope="session")
async def env():
    """A time-skipping server of this test's own, whose clock starts at the wall clock: the console's worklists
    count "today" by the wall clock, and the suite's shared server has been moved years ahead by then."""
    own = await WorkflowEnvironment.start_time_skipping(
        data_converter=DATA_CONVERTER, test_server_existing_path=find("temporal-test-server")
    )
    await register_search_attributes(own.client)
    yield own
    await own.shutdown()


async def test_the_console_in_a_browser(env, gateway, tmp_path):
    async_playwright = browser_or_skip()
    shots = codec.var_dir() / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    url = f"sqlite:///{tmp_path / 'console.db'}"
    migrate(url)
    repo = Repo(make_engine(url))
    store = Operators(repo)
    tokens = {
        name: store.issue_token(store.ensure(name, roles).id).token
        for name, roles in (
            ("Li Na", ["collector"]),
            ("Viewer Wu", ["viewer"]),
            ("Qian Checker", ["supervisor"]),
        )
    }

    app = create_app(tokens=["console-browser-bootstrap-0123456789"], client=env.client, repo=repo)
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning", lifespan="off"))
    serving = asyncio.create_task(server.serve())
    base = f"http://127.0.0.1:{port}"
    gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    try:
        await wait_for("the API to start", lambda: _started(server))
        async with build_worker(env.client, CaseActivities(repo, gw, teams=FLOOR), task_queue=TASK_QUEUE):
            cases = Cases(env, repo, task_queue=TASK_QUEUE)
            try:
                handles = [await cases.start(dpd=1), await cases.start(dpd=2)]
                floor_cases = [
                    await cases.start(dpd=7, policy=floor_policy(), tz=zone_at(range(10, 18)), contact=SHANGHAI),
                    await cases.start(dpd=7, policy=floor_policy(), tz=zone_at(range(21, 23)), contact=SHANGHAI),
                ]
                loan = handles[0].id.removeprefix("loan-")
                await wait_for("the projection", lambda: _projected(repo, len(handles)))
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                    try:
                        await collector_flow(browser, base, tokens["Li Na"], loan, shots, cases, handles[0])
                        await floor_flow(browser, base, tokens["Li Na"], floor_cases, cases, repo, shots)
                        await viewer_flow(browser, base, tokens["Viewer Wu"], loan)
                        # a collector proposes a plan beyond the threshold; a supervisor approves it
                        await four_eyes_flow(browser, base, tokens["Li Na"], tokens["Qian Checker"], handles[1], cases, shots)
                    finally:
                        await browser.close()
            finally:
                await cases.terminate_all()
    finally:
        server.should_exit = True
        await serving
        await gw.aclose()


FLOOR = Teams.model_validate({"teams": [{"name": "Floor", "members": ["Li Na"]}]})
SHANGHAI = {"address": "上海市黄浦区南京东路1号"}


def floor_policy():
    """The default ladder from the first call (a task for the floor), the default contact window (08:00-21:00) on
    the borrower's clock only, any day: what is checked is the window, whatever day the test runs on."""
    data = load_policy("default").model_dump(mode="json")
    data["steps"] = [s for s in data["steps"] if s["key"] != "reminder_notice"]
    for s in data["steps"]:
        if s["key"] == "first_call":
            s["modes"] = {"call": "agent"}
    data["min_gap_days"] = 0
    data["contact"].update(public_holidays=False, window_in_beijing_time=False)
    return parse_policy(data)


def zone_at(hours: range) -> str:
    """A fixed-offset zone whose clock now shows one of `hours` (the borrower's clock decides the window)."""
    now = dt.datetime.now(dt.UTC)
    for offset in range(-12, 15):
        if (now.hour + offset) % 24 in hours:
            return "Etc/GMT" if offset == 0 else f"Etc/GMT{'-' if offset > 0 else '+'}{abs(offset)}"
    raise AssertionError(f"no zone shows {hours}")


async def floor_flow(browser, base, token, handles, cases, repo, shots) -> None:
    """My tasks; click to call where the borrower's clock is inside the window: the number, then a promise
    that pauses the case; where it is after 21:00: refused, with the reason and when the window opens."""
    from sqlmodel import select

    from db.tables import TaskRow

    with repo.session() as s:
        ids = {t.loan_id: t.id for t in s.exec(select(TaskRow)).all()}
    day_task, late_task = (ids[h.id.removeprefix("loan-")] for h in handles)
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    await sign_in(page, base, token)
    await page.click("[data-testid=nav-tasks]")
    await page.locator(f"[data-testid=task-{day_task}]").wait_for()
    await page.locator(f"[data-testid=task-{late_task}]").wait_for()
    await page.screenshot(path=str(shots / "console-tasks.png"), full_page=True)

    await page.click(f"[data-testid=task-{day_task}]")
    assert PHONE not in await page.inner_text("body")
    await page.click("[data-testid=call]")
    await page.locator("[data-testid=call-allowed]").wait_for()
    assert await page.locator("[data-testid=phone]").inner_text() == PHONE
    await page.select_option("[data-testid=outcome]", "promise")
    await page.fill("[data-testid=amount]", "300.00")
    await page.fill("[data-testid=date]", (today_in(await cases.now()) + dt.timedelta(days=3)).isoformat())
    await page.fill("[data-testid=notes]", "pays on Friday")
    await page.click("[data-testid=record-outcome]")
    await page.locator("[data-testid=done]").wait_for()
    assert "done" in await page.locator("[data-testid=task-status]").inner_text()
    st = await cases.status(handles[0])
    assert st.status == "paused" and st.promise is not None and st.promise.amount == 300_00

    await page.goto(f"{base}/console/tasks/{late_task}")
    await page.click("[data-testid=call]")
    refused = page.locator("[data-testid=call-refused]")
    await refused.wait_for()
    text = await refused.inner_text()
    assert "contact_window" in text and "outside 08:00-21:00" in text and "from" in text, text
    assert PHONE not in await page.inner_text("body")
    await page.screenshot(path=str(shots / "console-task-refused.png"), full_page=True)
    await context.close()


async def _started(server) -> bool:
    return server.started


async def _projected(repo, n: int) -> bool:
    from sqlalchemy import func, select

    from db.tables import CaseRow

    with repo.session() as s:
        return (s.scalar(select(func.count()).select_from(CaseRow)) or 0) >= n


async def sign_in(page, base: str, token: str) -> None:
    await page.goto(f"{base}/console/dashboard")
    assert "/console/login" in page.url
    await page.fill("#token", token)
    await page.click("button[type=submit]")
    await page.wait_for_url(f"{base}/console/dashboard")


async def collector_flow(browser, base, token, loan, shots, cases, handle) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    requests: list[str] = []
    page.on("request", lambda r: requests.append(r.url))
    await sign_in(page, base, token)

    # the dashboard: the stages of the running cases, charts drawn by the locally served chart.js
    stages = page.locator("[data-testid=by-stage]")
    await stages.get_by_text("reminder").first.wait_for()
    await page.wait_for_function("() => window.Chart && Chart.getChart('chart-stage')")
    await page.screenshot(path=str(shots / "console-dashboard.png"), full_page=True)
    assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]

    # the case page: no phone until asked; asked, it is shown and the view is logged
    await page.goto(f"{base}/console/cases/{loan}")
    assert await page.locator("[data-testid=stage]").inner_text() == "reminder"
    assert PHONE not in await page.inner_text("body")
    link = await page.get_by_text("Open in the Temporal Web UI").get_attribute("href")
    assert link.endswith(f"/namespaces/default/workflows/loan-{loan}"), link
    assert "opening balance" in await page.locator("[data-testid=balance]").inner_text()
    clocks = await page.locator("[data-testid=clock]").all_inner_texts()
    assert clocks and all("Source:" in c for c in clocks), clocks
    assert any("art." in c for c in clocks), clocks
    await page.click("[data-testid=show-contact]")
    await page.locator("[data-testid=phone]").wait_for()
    assert await page.locator("[data-testid=phone]").inner_text() == PHONE

    # a promise with a bad amount: the field's error, next to the field; then a good one pauses the case
    promise = page.locator("form[action$='/promise']")
    await promise.locator("input[name=amount]").fill("12.345")
    today = today_in(await cases.now())  # the borrower's day (Beijing is a day ahead of UTC after 16:00 UTC)
    await promise.locator("input[name=date]").fill(today.isoformat())
    await promise.locator("button").click()
    err = page.locator("[data-testid=error-promise-amount]")
    await err.wait_for()
    assert "amount" in (await page.content()) and await err.inner_text()
    promise = page.locator("form[action$='/promise']")
    assert await promise.locator("input[name=amount]").input_value() == "12.345", "the form keeps what was typed"
    await promise.locator("input[name=amount]").fill("500.00")
    await promise.locator("input[name=date]").fill(today.isoformat())
    await promise.locator("button").click()
    await page.locator("[data-testid=done]").wait_for()
    assert "promise recorded" in await page.locator("[data-testid=done]").inner_text()
    st = await cases.status(handle)
    assert st.status == "paused" and st.promise is not None and st.promise.amount == 500_00
    timeline = await page.locator("[data-testid=timeline]").inner_text()
    assert "Promise to pay recorded" in timeline and "Contact details viewed" in timeline
    await page.screenshot(path=str(shots / "console-case.png"), full_page=True)

    # today's promises worklist lists it
    await page.goto(f"{base}/console/worklists/promises-due")
    await page.locator("[data-testid=worklist]").get_by_text(loan).wait_for()
    await page.screenshot(path=str(shots / "console-worklist.png"), full_page=True)
    await context.close()


async def viewer_flow(browser, base, token, loan) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    await sign_in(page, base, token)
    await page.goto(f"{base}/console/cases/{loan}")
    await page.locator("[data-testid=no-contact]").wait_for()
    body = await page.inner_text("body")
    assert PHONE not in body and not re.search(r"1[3-9]\d{9}", body)
    assert await page.locator("[data-testid=actions]").count() == 0
    assert await page.locator("main form").count() == 0, "a viewer is offered a form"
    assert await page.locator("[data-testid=show-contact]").count() == 0
    await context.close()


async def four_eyes_flow(browser, base, maker_token, checker_token, handle, cases, shots) -> None:
    loan = handle.id.removeprefix("loan-")
    pay_by = (today_in(await cases.now()) + dt.timedelta(days=20)).isoformat()
    maker = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
    maker.set_default_timeout(20_000)
    await sign_in(maker, base, maker_token)
    await maker.goto(f"{base}/console/cases/{loan}")
    plan = maker.locator("form[action$='/plan']")
    await plan.locator("select[name=kind]").select_option("interest_waiver")
    await plan.locator("input[name=waiver_percent]").fill("30")
    await plan.locator("input[name=pay_by]").fill(pay_by)
    await plan.locator("button").click()
    await maker.locator("[data-testid=pending-approval]").wait_for()
    assert "You proposed it" in await maker.locator("[data-testid=pending-approval]").inner_text()
    assert await maker.locator("[data-testid=approve]").count() == 0, "the maker is offered the approval"
    assert (await cases.status(handle)).plan is None

    checker = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
    checker.set_default_timeout(20_000)
    await sign_in(checker, base, checker_token)
    await checker.goto(f"{base}/console/worklists/approvals")
    await checker.locator("[data-testid=worklist]").get_by_text(loan).click()
    await checker.locator("[data-testid=pending-approval]").wait_for()
    assert "Li Na (collector)" in await checker.locator("[data-testid=pending-approval]").inner_text()
    await checker.screenshot(path=str(shots / "console-approval.png"), full_page=True)
    await checker.click("[data-testid=approve]")
    await checker.locator("[data-testid=done]").wait_for()
    st = await cases.status(handle)
    assert st.plan is not None and st.plan.kind == "interest_waiver" and st.pending_approval is None
    timeline = await checker.locator("[data-testid=timeline]").inner_text()
    assert "Approved" in timeline and "Qian Checker (supervisor)" in timeline and "Li Na (collector)" in timeline
