"""5. Import: CSV rows per second into started cases (app.portfolio.import_portfolio, what
`starter.py import` runs), against the raw start rate of item 1 on the same server and worker."""

from __future__ import annotations

import csv
import datetime as dt
import time
import uuid
from pathlib import Path

from temporalio.client import Client

from app.portfolio import COLUMNS, import_portfolio
from bench.harness import TZ, Database, FirstSteps, open_hours_toml
from bench.report import Row, Table
from domain.dates import local_date


def write_csv(path: Path, prefix: str, n: int) -> list[str]:
    due = (local_date(dt.datetime.now(dt.UTC), TZ) - dt.timedelta(days=1)).isoformat()
    ids = []
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for i in range(n):
            loan = f"{prefix}{i:06d}"
            ids.append(loan)
            w.writerow(
                [
                    loan,
                    f"B{loan}",
                    "张伟",
                    "13812345678",
                    "zhang.wei@example.cn",
                    "上海市黄浦区南京东路1号",
                    TZ,
                    "CNY",
                    "10000.00",
                    "500.00",
                    "20.00",
                    due,
                    "personal_loan",
                    "retail",
                ]
            )
    return ids


async def run(
    client: Client,
    db: Database,
    watcher: FirstSteps,
    task_queue: str,
    folder: Path,
    n: int,
    concurrency: int,
    noop_rate: float,
    case_rate: float,
) -> Table:
    tag = uuid.uuid4().hex[:6]
    path = folder / f"portfolio-{tag}.csv"
    ids = write_csv(path, f"I{tag}", n)
    policy = open_hours_toml(folder / "default-open.toml")
    t = time.perf_counter()
    summary = await import_portfolio(client, db.repo, path, policy=str(policy), task_queue=task_queue, concurrency=concurrency)
    imported = time.perf_counter() - t
    assert summary.started == n and not summary.rejected and not summary.failed, summary
    await watcher.all_done(ids, timeout=max(120.0, n * 2.0))
    stepped = time.perf_counter() - t
    table = Table("5. Import: CSV rows into started cases").add(
        Row(
            "rows per second, started",
            n / imported,
            noop_rate,
            "/s",
            note="import (parse, validate, upsert borrowers and loans, start) vs item 1's no-op start rate",
        ),
        Row(
            "rows per second, first step done",
            n / stepped,
            case_rate,
            "/s",
            note="until every imported case's reminder is delivered vs item 1's case start rate",
        ),
    )
    table.facts = {"rows": n, "concurrency": concurrency, "import's own figure (rows/s)": summary.rows_per_second}
    return table
