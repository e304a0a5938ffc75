"""Watch a running demo move: per window, how many of the open cases changed stage or status, and the stage counts.

    python -m devstack.watch --minutes 30 --window 150       # a row every 150 s for 30 minutes
    python -m devstack.watch --minutes 30 --markdown          # the same rows as a Markdown table

It reads the cases' search attributes through the API (GET /v1/cases, as demo-viewer) every `--every` seconds. A
case open at a window's start *changed* when, at any reading in the window, its stage or status differed from the
reading before (closing counts); `net` counts those whose stage or status at the window's end differs from its start.
`new` are cases opened during the window (not counted in either), `closed` the open ones that closed in it. The last
column is the open cases by stage at the window's end. At the end, the console dashboard's promises, roll rates and
cures (console/dashboard.py, from the database). Exit code 0 when every window met `--target` (a fifth), else 1.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx

State = tuple[str, str]  # (stage, status)


@dataclass
class Window:
    start: dict[str, State]
    changed: set[str] = field(default_factory=set)
    last: dict[str, State] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.last = dict(self.start)

    @property
    def open_at_start(self) -> list[str]:
        return [k for k, (_, status) in self.start.items() if status != "closed"]

    def see(self, now: dict[str, State]) -> None:
        for loan in self.open_at_start:
            cur = now.get(loan)
            if cur is not None and cur != self.last.get(loan):
                self.changed.add(loan)
        self.last.update(now)

    def row(self, end: dict[str, State], order: list[str]) -> dict:
        opened = self.open_at_start
        net = [k for k in opened if end.get(k, self.start[k]) != self.start[k]]
        closed = [k for k in opened if end.get(k, ("", ""))[1] == "closed"]
        new = [k for k in end if k not in self.start]
        stages = Counter(stage for stage, status in end.values() if status != "closed")
        shown = [s for s in order if stages.get(s)] + sorted(s for s in stages if s not in order)
        return {
            "open": len(opened),
            "changed": len(self.changed),
            "net": len(net),
            "closed": len(closed),
            "new": len(new),
            "stages": ", ".join(f"{s} {stages[s]}" for s in shown),
            "share": len(self.changed) / len(opened) if opened else 1.0,
        }


async def reading(http: httpx.AsyncClient, policy: str) -> dict[str, State]:
    r = await http.get("/v1/cases", params={"policy": policy, "limit": 1000})
    r.raise_for_status()
    return {it["loan_id"]: (it.get("stage") or "new", it.get("status") or "active") for it in r.json()["items"]}


def stage_order(policy: str) -> list[str]:
    from domain.policy import load_policy

    return ["new", *dict.fromkeys(s.stage for s in load_policy(policy).steps)]


async def watch(api: str, token: str, minutes: float, window: float, every: float, policy: str, out) -> list[dict]:
    order = stage_order(policy)
    rows: list[dict] = []
    async with httpx.AsyncClient(base_url=api, headers={"Authorization": f"Bearer {token}"}, timeout=30) as http:
        began = time.monotonic()
        current = Window(await reading(http, policy))
        ends = began + window
        while time.monotonic() < began + minutes * 60 - 1:
            await asyncio.sleep(max(0.0, min(every, ends - time.monotonic())))
            try:
                now = await reading(http, policy)
            except httpx.HTTPError as exc:
                print(f"  (no reading: {type(exc).__name__})", file=sys.stderr, flush=True)
                continue
            current.see(now)
            if time.monotonic() >= ends - 0.05:
                row = current.row(now, order)
                row["minute"] = (time.monotonic() - began) / 60
                rows.append(row)
                out(row)
                current = Window(now)
                ends += window
    return rows


def text_row(row: dict) -> str:
    return (
        f"{row['minute']:6.1f}  {row['changed']:>3}/{row['open']:<3} {100 * row['share']:5.0f}%  net {row['net']:>3}"
        f"  closed {row['closed']:>3}  new {row['new']:>3}  | {row['stages']}"
    )


def markdown_row(row: dict) -> str:
    return (
        f"| {row['minute']:.1f} | {row['changed']}/{row['open']} | {100 * row['share']:.0f}% | {row['net']} "
        f"| {row['closed']} | {row['new']} | {row['stages']} |"
    )


HEADERS = {
    "text": "minute  changed/open share  net     closed     new     | open cases by stage",
    "markdown": "| minute | changed / open | share | net | closed | new | open cases by stage at the window's end |\n"
    "|---:|---:|---:|---:|---:|---:|---|",
}


def dashboard_lines() -> list[str]:
    """The console dashboard's figures that the demo's life fills: promises, roll rates, cures, cases by status."""
    from console.dashboard import BUCKETS, build
    from db.engine import make_engine
    from db.repo import Repo

    d = build(Repo(make_engine()))
    rolls = {b: d.roll_rate(b) for b in BUCKETS[:-1]}
    return [
        f"dashboard: {d.open_cases} open of {d.total_cases} cases; by status: "
        + ", ".join(f"{r.key} {r.cases}" for r in d.by_status),
        "  promises (30 days): " + ", ".join(f"{k} {v}" for k, v in d.promises.items()),
        "  roll rates (30 days): " + ", ".join(f"{b} {'-' if r is None else f'{100 * r:.0f}%'}" for b, r in rolls.items()),
        "  cures by stage (30 days): " + (", ".join(f"{k} {v}" for k, v in d.cures.items()) or "none"),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m devstack.watch", description=__doc__.split("\n\n")[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--window", type=float, default=150.0, help="seconds per row (default 150)")
    parser.add_argument("--every", type=float, default=5.0, help="seconds between readings (default 5)")
    parser.add_argument("--policy", default="demo")
    parser.add_argument("--target", type=float, default=0.2, help="the share of open cases each window should change")
    parser.add_argument("--markdown", action="store_true")
    parser.add_argument("--no-dashboard", action="store_true", help="without the dashboard's figures at the end")
    args = parser.parse_args(argv)
    from access.devadmin import var_dir
    from infra.config import StackSettings, load

    token_file = var_dir() / "demo-viewer-token"
    if not token_file.exists():
        print(f"watch: {token_file} is missing: make demo first", file=sys.stderr)
        return 2
    api = f"http://127.0.0.1:{load(StackSettings).api_port}"
    fmt = "markdown" if args.markdown else "text"
    print(HEADERS[fmt], flush=True)
    line = markdown_row if args.markdown else text_row
    rows = asyncio.run(
        watch(
            api,
            token_file.read_text().strip(),
            args.minutes,
            args.window,
            args.every,
            args.policy,
            lambda r: print(line(r), flush=True),
        )
    )
    short = [r for r in rows if r["share"] < args.target]
    worst = min((r["share"] for r in rows), default=1.0)
    print(
        f"{len(rows)} window(s); lowest share {100 * worst:.0f}%; "
        + ("every window met" if not short else f"{len(short)} below")
        + f" the target of {100 * args.target:.0f}%",
        flush=True,
    )
    if not args.no_dashboard:
        for line in dashboard_lines():
            print(line, flush=True)
    return 0 if not short else 1


if __name__ == "__main__":
    sys.exit(main())
