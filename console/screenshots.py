"""python -m console.screenshots: the README's screenshots of a running console (after `make demo`).

    python -m console.screenshots --token-file var/demo-collector-token [--url http://127.0.0.1:8800] [--out docs]

Headless Chromium from Debian's package (/usr/bin/chromium, or CHROMIUM) driven by Playwright:
signs in, then saves, in Chinese and in English, the dashboard, the first worklist that has rows and
its first case on a desktop, and the collector's tasks on a 390-pixel phone."""

from __future__ import annotations

import argparse
import asyncio
import re
from pathlib import Path

from infra.config import ScreenshotSettings, load

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


LANGS = {"zh_CN": "zh", "en": "en"}
PHONE = {"width": 390, "height": 844}


async def shoot(url: str, token: str, out: Path, loan: str | None, worklist: str | None = None) -> list[Path]:
    """In Chinese and in English: the dashboard, the first worklist with rows and a case page on a desktop, and the
    collector's tasks on a 390-pixel phone; docs/console-<page>-<zh|en>.png (the phone's -phone-<zh|en>.png)."""
    from playwright.async_api import async_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved = []
    host = url.split("://", 1)[1].split("/")[0].split(":")[0]
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=load(ScreenshotSettings).chromium, args=ARGS)
        for lang, suffix in LANGS.items():
            cookie = {"name": "console_lang", "value": lang, "domain": host, "path": "/console"}
            context = await browser.new_context(viewport={"width": 1400, "height": 900})
            await context.add_cookies([cookie])
            page = await context.new_page()
            await page.goto(f"{url}/console/login")
            await page.fill("#token", token)
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{url}/console/dashboard")
            await page.wait_for_function("() => window.Chart && Chart.getChart('chart-stage')")
            saved.append(out / f"console-dashboard-{suffix}.png")
            await page.screenshot(path=str(saved[-1]), full_page=True)
            shown = loan
            for name in ([worklist] if worklist else []) + ["promises-due", "promises-broken", "reviews", "court"]:
                await page.goto(f"{url}/console/worklists/{name}")
                rows = await page.locator("[data-testid=worklist] a").all_inner_texts()
                if rows:
                    saved.append(out / f"console-worklist-{suffix}.png")
                    await page.screenshot(path=str(saved[-1]), full_page=True)
                    shown = shown or rows[0]
                    break
            if shown:
                await page.goto(f"{url}/console/cases/{shown}")
                saved.append(out / f"console-case-{suffix}.png")
                await page.screenshot(path=str(saved[-1]), full_page=True)
            cookies = await context.cookies()
            await context.close()
            phone = await browser.new_context(viewport=PHONE, is_mobile=True, has_touch=True, device_scale_factor=2)
            await phone.add_cookies(cookies)
            page = await phone.new_page()
            await page.goto(f"{url}/console/tasks")
            saved.append(out / f"console-tasks-phone-{suffix}.png")
            await page.screenshot(path=str(saved[-1]), full_page=True)
            await phone.close()
        await browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=f"http://127.0.0.1:{load(ScreenshotSettings).api_port}")
    ap.add_argument("--token-file", required=True, type=Path)
    ap.add_argument("--out", default=Path("docs"), type=Path)
    ap.add_argument("--loan", default=None, help="the case page's loan (default: the first on a worklist)")
    ap.add_argument("--worklist", default=None, help="the worklist to show first (e.g. approvals)")
    args = ap.parse_args(argv)
    token = args.token_file.read_text().strip()
    if args.loan and not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}", args.loan):
        ap.error("--loan is not a loan id")
    for p in asyncio.run(shoot(args.url.rstrip("/"), token, args.out, args.loan, args.worklist)):
        print(p)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
