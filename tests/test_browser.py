"""The Temporal Web UI in a real browser: an operator's query finds the cases, and the codec server
shows a case's payloads decrypted to whoever signed in with its token, and only to them.

A Temporal CLI dev server with its UI (and `--ui-codec-endpoint`), a worker, the codec server and
headless Chromium from Debian's package (/usr/bin/chromium) driven by Playwright; never a downloaded
browser. Screenshots go to var/screenshots/ (COLLECTIONS_VAR_DIR). Without Chromium the test is
skipped and says why, unless REQUIRE_BROWSER=1 (CI), where that is a failure.
"""

from __future__ import annotations

import asyncio
import os
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from devstack.binaries import find
from domain.policy import load_policy, parse_policy
from encryption import codec
from encryption.codec_server import free_port, running_codec_server
from tests.conftest import DATA_CONVERTER, Cases
from worker import build_worker
from workflows import search

CHROMIUM = Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TASK_QUEUE = "collections-browser"
QUERY = 'CollectionStage = "reminder"'
CODEC_TOKEN = "browser-test-codec-token-" + "y" * 16


def browser_or_skip():
    """Playwright's async API, or a skip (a failure under REQUIRE_BROWSER=1) saying what is missing."""
    missing = None
    if not CHROMIUM.exists():
        missing = f"{CHROMIUM} is missing (Debian: apt-get install chromium)"
    else:
        try:
            from playwright.async_api import async_playwright
        except ImportError:
            missing = "the playwright package is not installed (pip install -e '.[dev]')"
    if missing:
        if os.environ.get("REQUIRE_BROWSER") == "1":
            pytest.fail(f"browser test required (REQUIRE_BROWSER=1) but {missing}")
        pytest.skip(f"no browser test: {missing}")
    return async_playwright


async def wait_for(what: str, check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.2)


async def test_the_ui_finds_cases_by_stage_and_shows_payloads_to_codec_token_holders(repo, gateway):
    async_playwright = browser_or_skip()
    shots = codec.var_dir() / "screenshots"
    shots.mkdir(parents=True, exist_ok=True)
    ui_port, codec_port = free_port(), free_port()
    ui = f"http://127.0.0.1:{ui_port}"
    codec_url = f"http://127.0.0.1:{codec_port}"

    with running_codec_server({"CODEC_TOKEN": CODEC_TOKEN, "CODEC_DEV": "", "CODEC_CORS_ORIGINS": ui}, port=codec_port):
        env = await WorkflowEnvironment.start_local(
            dev_server_existing_path=find("temporal"),
            ui=True,
            ui_port=ui_port,
            search_attributes=search.ALL,
            data_converter=DATA_CONVERTER,
            dev_server_log_level="error",
            dev_server_extra_args=["--ui-codec-endpoint", codec_url, "--ui-disable-news-fetch"],
            dev_server_startup_timeout=timedelta(seconds=30),
        )
        gw = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
        try:
            async with build_worker(env.client, CaseActivities(repo, gw), task_queue=TASK_QUEUE):
                cases = Cases(env, repo, task_queue=TASK_QUEUE)
                reminder = [await cases.start(dpd=1) for _ in range(3)]
                # a case at another stage: a policy whose ladder starts with the first call
                data = load_policy("default").model_dump(mode="json")
                data.update(
                    name="calls-first",
                    steps=[
                        {"key": "first_call", "stage": "first_call", "dpd": 1, "actions": ["call"]},
                        {
                            "key": "reminder_notice",
                            "stage": "reminder",
                            "dpd": 30,
                            "actions": ["sms", "letter"],
                            "letter": "reminder_notice",
                        },
                    ],
                )
                later = await cases.start(dpd=1, policy=parse_policy(data))

                async def stage_of(h) -> str | None:
                    return (await h.describe()).typed_search_attributes.get(search.STAGE)

                for h in reminder:
                    await wait_for(f"{h.id} at reminder", lambda h=h: _eq(stage_of(h), "reminder"))
                await wait_for(f"{later.id} at first_call", lambda: _eq(stage_of(later), "first_call"))

                async def listed() -> set[str]:  # what the UI will list: the visibility store's answer
                    return {w.id async for w in env.client.list_workflows(QUERY)}

                await wait_for(
                    "visibility to list the reminder cases",
                    lambda: _true(listed(), lambda ids: {h.id for h in reminder} <= ids and later.id not in ids),
                )
                async with httpx.AsyncClient() as http:
                    await wait_for("the UI to answer", lambda: _ok(http.get(ui)))

                async with async_playwright() as pw:
                    browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                    try:
                        await check_ui(browser, ui, codec_url, shots, reminder, later)
                    finally:
                        await browser.close()
                await cases.terminate_all()
        finally:
            await gw.aclose()
            await env.shutdown()


async def _eq(coro, value) -> bool:
    return (await coro) == value


async def _true(coro, predicate) -> bool:
    return predicate(await coro)


async def _ok(coro) -> bool:
    try:
        return (await coro).status_code == 200
    except httpx.HTTPError:
        return False


async def check_ui(browser, ui: str, codec_url: str, shots: Path, reminder, later) -> None:
    context = await browser.new_context(viewport={"width": 1440, "height": 900})
    # The UI's own Codec Server settings, as a person sets them once: this endpoint, with credentials
    # (the codec server's session cookie); the UI keeps them in its origin's localStorage.
    await context.add_init_script(f"""
        if (location.origin === {ui!r}) {{
            localStorage.setItem("endpoint", JSON.stringify({codec_url!r}));
            localStorage.setItem("includeCredentials", "true");
            localStorage.setItem("overrideRemoteCodecConfiguration", "true");
        }}""")
    page = await context.new_page()
    page.set_default_timeout(30_000)

    # 1. the operator's query lists the cases at that stage
    await page.goto(f"{ui}/namespaces/default/workflows?query={quote(QUERY)}")
    for h in reminder:
        await page.get_by_text(h.id, exact=True).first.wait_for(state="visible")
    shot = shots / "ui-reminder-query.png"
    await page.screenshot(path=str(shot), full_page=True)
    text = await page.inner_text("body")
    for h in reminder:
        assert h.id in text
    assert later.id not in text, "a case at another stage is listed"
    assert shot.stat().st_size > 10_000

    # 2. a case's input, before signing in to the codec server: still ciphertext
    case = reminder[0]
    borrower = f"B{case.id.removeprefix('loan-')}"  # in the input payload only
    detail = f"{ui}/namespaces/default/workflows/{quote(case.id)}/{case.result_run_id or case.first_execution_run_id}/history"
    await page.goto(detail)
    await page.get_by_text(case.id).first.wait_for(state="visible")
    await page.wait_for_timeout(2_000)
    assert borrower not in await page.inner_text("body")
    await page.screenshot(path=str(shots / "ui-case-encrypted.png"), full_page=True)

    # 3. signed in with the token: the same page shows the input decrypted
    await page.goto(f"{codec_url}/login")
    await page.fill("#token", CODEC_TOKEN)
    await page.click("button[type=submit]")
    await page.get_by_text("Signed in").wait_for(state="visible")
    await page.goto(detail)
    await page.get_by_text(borrower).first.wait_for(state="visible")
    await page.screenshot(path=str(shots / "ui-case-decrypted.png"), full_page=True)
    await context.close()
