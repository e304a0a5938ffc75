"""The console in a real browser (Playwright driving Debian's Chromium, as tests/test_browser.py does):
sign in, the dashboard shows the stages of running cases in Chinese, in the ladder's order, with grouped amounts; the
operator switches to English and back; the header's search finds a case by a phone's last four digits and by
loan id; a collector sees the borrower's phone (the
view is logged), records a promise through the case page (a bad amount gets its field error first) and
the case pauses; the promise is on today's worklist; a viewer sees no action and no phone number; a
supervisor's plan with a waiver over the policy's threshold waits for a second supervisor, who finds it on
the approvals worklist and approves it (its maker cannot); a visiting collector works the day's visits and records an
outcome on a 390-pixel-wide phone. axe-core (the axe-playwright-python wheel's axe.min.js, nothing fetched) checks
every page for serious or critical accessibility violations.

Cases run on a time-skipping test server of the test's own (its clock starts at the wall clock), with a
worker of their own and a fresh database; the API (with the console) runs in this process on a loopback
port. Screenshots go to var/screenshots/console-*.png (Chinese and English, desktop and phone; the README's copies
are in docs/).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import re

import pytest_asyncio
import uvicorn
from axe_playwright_python.async_playwright import Axe
from temporalio.testing import WorkflowEnvironment

from access.operators import Operators
from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from api.server import create_app
from db.engine import make_engine, migrate
from db.repo import Repo
from devstack.binaries import find
from domain import display
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
                visit_cases = [
                    await cases.start(dpd=30, policy=visit_policy(), contact={"address": address})
                    for address in (XUHUI, SHANGHAI["address"])
                ]
                loan = handles[0].id.removeprefix("loan-")
                await wait_for("the projection", lambda: _projected(repo, len(handles)))
                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                    try:
                        await collector_flow(browser, base, tokens["Li Na"], loan, shots, cases, handles[0])
                        await floor_flow(browser, base, tokens["Li Na"], floor_cases, cases, repo, shots)
                        await phone_flow(browser, base, tokens["Li Na"], visit_cases, cases, repo, shots)
                        await viewer_flow(browser, base, tokens["Viewer Wu"], loan)
                        # a collector proposes a plan beyond the threshold; a supervisor approves it
                        await four_eyes_flow(browser, base, tokens["Li Na"], tokens["Qian Checker"], handles[1], cases, shots)
                        print("accessibility (axe-core), per page:", CHECKED)
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
XUHUI = "上海市徐汇区漕溪北路1号"
PHONE_VIEWPORT = {"width": 390, "height": 844}
AXE = Axe()


async def accessible(page, what: str) -> None:
    """axe-core on the page as it is: no serious or critical violation (labels, contrast, names, roles, language)."""
    results = await AXE.run(page)
    violations = results.response["violations"]
    serious = [v for v in violations if v["impact"] in ("serious", "critical")]
    CHECKED[what] = f"{len(serious)} serious or critical; others: {', '.join(v['id'] for v in violations) or 'none'}"
    assert not serious, f"{what}: " + results.generate_report()


CHECKED: dict[str, str] = {}  # page -> the violations found (printed at the end)


def visit_policy():
    """The default ladder from the home visit (a task for the floor's visiting collector), contacts on any day."""
    data = load_policy("default").model_dump(mode="json")
    data["steps"] = [s for s in data["steps"] if s["key"] not in ("reminder_notice", "first_call")]
    for s in data["steps"]:
        if s["key"] == "home_visit":
            s["modes"] = {"visit": "agent"}
    data["min_gap_days"] = 0
    data["contact"].update(public_holidays=False, window_in_beijing_time=False)
    return parse_policy(data)


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
    await accessible(page, "my tasks")

    await page.click(f"[data-testid=task-{day_task}]")
    assert PHONE not in await page.inner_text("body")
    await accessible(page, "a call task")
    await page.click("[data-testid=call]")
    await page.locator("[data-testid=call-allowed]").wait_for()
    assert await page.locator("[data-testid=phone]").inner_text() == PHONE
    await page.select_option("[data-testid=outcome]", "promise")
    await page.fill("[data-testid=amount]", "300.00")
    await page.fill("[data-testid=date]", (today_in(await cases.now()) + dt.timedelta(days=3)).isoformat())
    await page.fill("[data-testid=notes]", "pays on Friday")
    await page.click("[data-testid=record-outcome]")
    await page.locator("[data-testid=done]").wait_for()
    assert await page.locator("[data-testid=task-status]").get_attribute("data-status") == "done"
    assert "已完成" in await page.locator("[data-testid=task-status]").inner_text()
    st = await cases.status(handles[0])
    assert st.status == "paused" and st.promise is not None and st.promise.amount == 300_00

    await page.goto(f"{base}/console/tasks/{late_task}")
    await page.click("[data-testid=call]")
    refused = page.locator("[data-testid=call-refused]")
    await refused.wait_for()
    text = await refused.inner_text()
    assert await refused.get_attribute("data-rule") == "contact_window"
    assert "联系时段" in text and "不在允许联系的时段 08:00-21:00 内" in text and "最早可于" in text, text
    assert "借款人当地时间" in text, text
    assert "borrower-time" in await page.content()
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

    # the dashboard, in Chinese: the stages of the running cases by their names in the ladder's order, grouped amounts
    stages = page.locator("[data-testid=by-stage]")
    await stages.get_by_text("提醒通知").first.wait_for()
    await page.wait_for_function("() => window.Chart && Chart.getChart('chart-stage')")
    assert await page.get_attribute("html", "lang") == "zh-CN"
    keys = await stages.locator("td[data-stage]").evaluate_all("cells => cells.map(c => c.dataset.stage)")
    assert keys == sorted(keys, key=display.stage_rank) and keys[0] == "reminder", keys
    labels = await page.evaluate("() => Chart.getChart('chart-stage').data.labels")
    assert labels == [display.name("stage", k) for k in keys], labels
    amounts = await stages.locator("tbody td.num").all_inner_texts()
    money = [a for a in amounts if a.startswith("¥")]
    assert money and all(re.fullmatch(r"¥\d{1,3}(,\d{3})*\.\d{2}", a) for a in money), amounts
    assert any("," in a for a in money), "an amount of ten thousand yuan and more is grouped"
    total = await stages.locator("[data-testid=total]").inner_text()
    assert "合计" in total and "¥" in total
    align = await stages.locator("tbody td.num").first.evaluate("c => getComputedStyle(c).textAlign")
    assert align == "right"
    await page.screenshot(path=str(shots / "console-dashboard-zh.png"), full_page=True)
    await accessible(page, "dashboard (zh)")
    assert all(u.startswith(base) for u in requests), [u for u in requests if not u.startswith(base)]

    # English, chosen in the header, remembered on the next page; then back to Chinese
    await page.click("[data-testid=lang-en]")
    await page.wait_for_url(f"{base}/console/dashboard")
    await stages.get_by_text("Reminder notice").first.wait_for()
    assert await page.get_attribute("html", "lang") == "en"
    assert "Open cases by stage" in await page.inner_text("main")
    await page.wait_for_function("() => window.Chart && Chart.getChart('chart-stage')")
    await page.screenshot(path=str(shots / "console-dashboard-en.png"), full_page=True)
    await accessible(page, "dashboard (en)")
    await page.goto(f"{base}/console/worklists/promises-due")
    assert "Promises due today" in await page.inner_text("h1")
    await page.click("[data-testid=lang-zh_CN]")
    await page.wait_for_url(f"{base}/console/worklists/promises-due")
    assert await page.inner_text("h1") == "今日到期的还款承诺"

    # the header's search: by the phone's last four digits (masked), then by the loan id (straight to the case)
    await page.keyboard.press("Tab")  # keyboard: the skip link comes first, and it is visible when focused
    skip = page.locator("a.skip")
    assert await skip.evaluate("a => a === document.activeElement")
    outline = await skip.evaluate("a => getComputedStyle(a).outlineStyle")
    assert outline != "none", "the focus is not visible"
    for _ in range(5):  # on, by the keyboard alone, to the header's search box (skip link, brand, search)
        if await page.evaluate("() => document.activeElement.id") == "header-q":
            break
        await page.keyboard.press("Tab")
    assert await page.evaluate("() => document.activeElement.id") == "header-q", "the search box is not reachable by Tab"
    ring = await page.locator("#header-q").evaluate(
        "e => getComputedStyle(e).outlineStyle + ' ' + getComputedStyle(e).outlineWidth"
    )
    assert ring.startswith("solid") and not ring.endswith(" 0px"), ring
    await page.keyboard.type(PHONE[-4:])
    await page.keyboard.press("Enter")
    await page.locator("[data-testid=search-results]").wait_for()
    assert await page.locator(f"[data-testid=found-{loan}]").count() == 1
    masked = await page.locator("[data-testid=masked-phone]").all_inner_texts()
    assert masked and set(masked) == {"138****5678"} and PHONE not in await page.inner_text("body")
    await page.screenshot(path=str(shots / "console-search-zh.png"), full_page=True)
    await accessible(page, "search results")
    await page.fill("[data-testid=search]", loan)
    await page.keyboard.press("Enter")
    await page.wait_for_url(f"{base}/console/cases/{loan}")

    # the case page: no phone until asked; asked, it is shown and the view is logged
    assert await page.locator("[data-testid=stage]").inner_text() == "提醒通知"
    assert await page.locator("[data-testid=stage]").get_attribute("data-stage") == "reminder"
    assert PHONE not in await page.inner_text("body")
    link = await page.locator("[data-testid=temporal-link]").get_attribute("href")
    assert link.endswith(f"/namespaces/default/workflows/loan-{loan}"), link
    balance = await page.locator("[data-testid=balance]").inner_text()
    assert "开案余额" in balance and "¥10,520.00" in balance, balance
    assert "借款人当地时间" in await page.locator("[data-testid=borrower-time]").inner_text()
    clocks = await page.locator("[data-testid=clock]").all_inner_texts()
    assert clocks and all("依据：" in c for c in clocks), clocks
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
    assert (await err.inner_text()).startswith("金额："), await err.inner_text()  # the field named, and why
    assert await promise.locator("input[name=amount]").get_attribute("aria-invalid") == "true"
    await accessible(page, "a case with a field error")
    promise = page.locator("form[action$='/promise']")
    assert await promise.locator("input[name=amount]").input_value() == "12.345", "the form keeps what was typed"
    await promise.locator("input[name=amount]").fill("500.00")
    await promise.locator("input[name=date]").fill(today.isoformat())
    await promise.locator("button").click()
    await page.locator("[data-testid=done]").wait_for()
    assert "已记录还款承诺" in await page.locator("[data-testid=done]").inner_text()
    st = await cases.status(handle)
    assert st.status == "paused" and st.promise is not None and st.promise.amount == 500_00
    timeline = await page.locator("[data-testid=timeline]").inner_text()
    assert "记录还款承诺" in timeline and "查看联系方式" in timeline and "通过搜索找到案件" in timeline
    assert "Li Na (催收员)" in timeline
    await page.screenshot(path=str(shots / "console-case-zh.png"), full_page=True)
    await accessible(page, "case page")

    # today's promises worklist lists it, its amount right-aligned and added up
    await page.goto(f"{base}/console/worklists/promises-due")
    await page.locator("[data-testid=worklist]").get_by_text(loan).wait_for()
    assert "本页合计" in await page.locator("[data-testid=worklist] [data-testid=total]").inner_text()
    await page.screenshot(path=str(shots / "console-worklist-zh.png"), full_page=True)
    await accessible(page, "worklist")
    await page.goto(f"{base}/console/worklists/nope")
    assert "没有工作清单" in await page.locator("[data-testid=error-message]").inner_text()
    await context.close()


async def viewer_flow(browser, base, token, loan) -> None:
    context = await browser.new_context(viewport={"width": 1400, "height": 900})
    page = await context.new_page()
    page.set_default_timeout(20_000)
    await page.goto(f"{base}/")  # the front door: a person is sent to the console's sign-in
    await page.wait_for_url(re.compile(r".*/console/login.*"))
    assert await page.inner_text("h1") == "登录"
    await accessible(page, "sign-in")
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
    assert await maker.locator("[data-testid=own-proposal]").count() == 1
    assert await maker.locator("[data-testid=approve]").count() == 0, "the maker is offered the approval"
    assert (await cases.status(handle)).plan is None

    checker = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
    checker.set_default_timeout(20_000)
    await sign_in(checker, base, checker_token)
    await checker.goto(f"{base}/console/worklists/approvals")
    await checker.locator("[data-testid=worklist]").get_by_text(loan).click()
    await checker.locator("[data-testid=pending-approval]").wait_for()
    assert "Li Na (催收员)" in await checker.locator("[data-testid=pending-approval]").inner_text()
    await checker.screenshot(path=str(shots / "console-approval.png"), full_page=True)
    await checker.click("[data-testid=approve]")
    await checker.locator("[data-testid=done]").wait_for()
    st = await cases.status(handle)
    assert st.plan is not None and st.plan.kind == "interest_waiver" and st.pending_approval is None
    timeline = await checker.locator("[data-testid=timeline]").inner_text()
    assert "已批准" in timeline and "Qian Checker (主管)" in timeline and "Li Na (催收员)" in timeline


async def phone_flow(browser, base, token, handles, cases, repo, shots) -> None:
    """The visiting collector on a 390-pixel-wide phone: the day's visits in route order, district by district, one
    column, large targets; the task page with the address and a geo: link; the outcome form sent with thumbs."""
    from sqlmodel import select

    from db.tables import TaskRow
    from domain.dates import zone

    loans = {h.id.removeprefix("loan-") for h in handles}
    with repo.session() as s:
        visits = [t for t in s.exec(select(TaskRow).where(TaskRow.action == "visit")).all() if t.loan_id in loans]
    assert len(visits) == 2, visits
    day = min(t.slot_start for t in visits).astimezone(zone("Asia/Shanghai")).date()
    todays = sorted((t for t in visits if t.slot_start.astimezone(zone("Asia/Shanghai")).date() == day), key=lambda t: t.id)
    context = await browser.new_context(viewport=PHONE_VIEWPORT, is_mobile=True, has_touch=True, device_scale_factor=2)
    page = await context.new_page()
    page.set_default_timeout(20_000)
    await sign_in(page, base, token)
    await page.goto(f"{base}/console/tasks?day={day.isoformat()}&action=visit")
    route = page.locator("[data-testid=route]")
    await route.wait_for()
    districts = await route.locator("[data-testid=route-district]").all_inner_texts()
    assert districts and all("区" in d for d in districts) and len(set(districts)) == len(districts), districts
    slots = [t.split("–")[0] for t in await route.locator("a[data-testid^=visit-]").all_inner_texts()]
    assert slots == sorted(slots), f"the visits are not in route order: {slots}"
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= PHONE_VIEWPORT["width"], f"the page is {width}px wide on a 390px screen"
    first = page.locator(f"[data-testid=visit-{todays[0].id}]")
    box = await first.bounding_box()
    assert box and box["height"] >= 44, box
    await page.screenshot(path=str(shots / "console-visits-phone-zh.png"), full_page=True)
    await accessible(page, "visits of the day (phone)")

    # the borrower asked, on their own page, never to be contacted at work: the visiting collector is told
    from db.preferences import PreferenceStore
    from domain.compliance import Preferences

    borrower_id = repo.loan(todays[0].loan_id).borrower_id
    PreferenceStore(repo).set(borrower_id, Preferences(not_at_work=True), by="borrower:test", at=dt.datetime.now(dt.UTC))
    await first.tap()
    await page.locator("[data-testid=outcome-form]").wait_for()
    assert "不得到工作单位联系" in await page.locator("[data-testid=wishes]").inner_text()
    address = await page.locator("[data-testid=address]").inner_text()
    assert "上海市" in address
    geo = await page.locator("[data-testid=map-link]").get_attribute("href")
    assert geo.startswith("geo:0,0?q=") and "%E4%B8%8A%E6%B5%B7" in geo, geo  # 上海, no map service named
    form = page.locator("[data-testid=outcome-form]")
    fields = form.locator("select, input:not([type=hidden]), textarea, button")
    for i in range(await fields.count()):
        b = await fields.nth(i).bounding_box()
        assert b and b["height"] >= 44 and b["width"] >= 300, (i, b)  # one column, thumb-sized
    labels = await form.locator("label[for]").evaluate_all("ls => ls.map(l => !!document.getElementById(l.htmlFor))")
    assert labels and all(labels), "a label is tied to no input"
    await page.screenshot(path=str(shots / "console-visit-phone-zh.png"), full_page=True)
    await accessible(page, "visit task and outcome form (phone)")
    await page.select_option("[data-testid=outcome]", "met_borrower")
    await page.fill("[data-testid=notes]", "见到本人，下周还款")
    await page.click("[data-testid=record-outcome]")
    await page.locator("[data-testid=done]").wait_for()
    assert await page.locator("[data-testid=task-status]").get_attribute("data-status") == "done"

    # the same pages in English, for the README
    await page.goto(f"{base}/console/language/en?next=/console/tasks%3Fday%3D{day.isoformat()}%26action%3Dvisit")
    await route.wait_for()
    assert "The day's visits in route order" in await page.inner_text("main")
    await page.screenshot(path=str(shots / "console-visits-phone-en.png"), full_page=True)
    other = [t for t in todays if t.id != todays[0].id] or [t for t in visits if t.id != todays[0].id]
    await page.goto(f"{base}/console/tasks/{other[0].id}")
    await page.locator("[data-testid=outcome-form]").wait_for()
    assert "Open in the map app" in await page.inner_text("main")
    await page.screenshot(path=str(shots / "console-visit-phone-en.png"), full_page=True)
    await accessible(page, "visit task (phone, en)")
    await context.close()
