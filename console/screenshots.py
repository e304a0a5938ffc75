"""python -m console.screenshots: the README's screenshots of a running console (after `make demo`).

    python -m console.screenshots --token-file var/demo-collector-token [--url http://127.0.0.1:8800] [--out docs]

Headless Chromium from Debian's package (/usr/bin/chromium, or CHROMIUM) driven by Playwright:
signs in, then saves the dashboard, the first worklist that has rows, and the case page of the
first case on the dashboard's stage with a promise or a plan."""

from __future__ import annotations

import argparse
import asyncio
import os
import re
from pathlib import Path

ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


async def shoot(url: str, token: str, out: Path, loan: str | None, worklist: str | None = None) -> list[Path]:
    from playwright.async_api import async_playwright

    out.mkdir(parents=True, exist_ok=True)
    saved = []
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=os.environ.get("CHROMIUM", "/usr/bin/chromium"), args=ARGS)
        page = await (await browser.new_context(viewport={"width": 1400, "height": 900})).new_page()
        await page.goto(f"{url}/console/login")
        await page.fill("#token", token)
        await page.click("button[type=submit]")
        await page.wait_for_url(f"{url}/console/dashboard")
        await page.wait_for_function("() => window.Chart && Chart.getChart('chart-stage')")
        saved.append(out / "console-dashboard.png")
        await page.screenshot(path=str(saved[-1]), full_page=True)
        for name in ([worklist] if worklist else []) + ["promises-due", "reviews", "court", "undeliverable"]:
            await page.goto(f"{url}/console/worklists/{name}")
            rows = await page.locator("[data-testid=worklist] a").all_inner_texts()
            if rows:
                saved.append(out / "console-worklist.png")
                await page.screenshot(path=str(saved[-1]), full_page=True)
                loan = loan or rows[0]
                break
        if loan:
            await page.goto(f"{url}/console/cases/{loan}")
            if await page.locator("[data-testid=show-contact]").count():
                await page.click("[data-testid=show-contact]")
                await page.locator("[data-testid=contact-details]").wait_for()
            saved.append(out / "console-case.png")
            await page.screenshot(path=str(saved[-1]), full_page=True)
        await browser.close()
    return saved


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", default=f"http://127.0.0.1:{os.environ.get('API_PORT', '8800')}")
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
