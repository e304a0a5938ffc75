"""How long the portfolio dashboard takes with N cases in the database.

    python -m console.bench_dashboard                 # 10,000 cases in a fresh SQLite file
    python -m console.bench_dashboard --cases 10000 --database-url postgresql+psycopg://...  # an empty database

Fills a migrated database with N loans, their cases spread over the stages, DPD buckets and
outcomes, ~8 events and ~3 contact attempts a case (promises, gate refusals, write-offs), then
times dashboard.build (the queries) and the rendered page (GET /console/dashboard, signed in).
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import random
import statistics
import tempfile
import time
from pathlib import Path

STAGE_BY_DPD = (
    (8, "reminder"),
    (15, "first_call"),
    (30, "home_visit"),
    (45, "overdue_letter"),
    (60, "lawyers_letter"),
    (90, "credit_bureau"),
    (180, "litigation"),
    (10**6, "enforcement"),
)
RULES = ("contact_window", "holiday", "daily_cap", "min_interval", "call_cap_7d", "dispute", "hardship")


def seed(repo, n: int, now: dt.datetime | None = None, seed: int = 7) -> None:
    """N loans with cases, events and contacts, written in batches (Core inserts)."""
    rnd = random.Random(seed)
    now = now or dt.datetime.now(dt.UTC)
    today = now.date()
    batch = _Batch()
    for i in range(n):
        _one_loan(batch, rnd, i, now, today)
        if len(batch.cases) >= 1000:
            batch.flush(repo)
    batch.flush(repo)


@dataclasses.dataclass
class _Batch:
    """Rows waiting to be written, one list per table: a thousand cases at a time keeps a large seed's memory flat."""

    borrowers: list[dict] = dataclasses.field(default_factory=list)
    loans: list[dict] = dataclasses.field(default_factory=list)
    cases: list[dict] = dataclasses.field(default_factory=list)
    events: list[dict] = dataclasses.field(default_factory=list)
    contacts: list[dict] = dataclasses.field(default_factory=list)

    def flush(self, repo) -> None:
        """Writes every waiting row in one transaction, parents before children, and empties the lists."""
        from db.tables import BorrowerRow, CaseRow, ContactRow, EventRow, LoanRow

        with repo.session() as s:
            for table, rows in (
                (BorrowerRow, self.borrowers),
                (LoanRow, self.loans),
                (CaseRow, self.cases),
                (EventRow, self.events),
                (ContactRow, self.contacts),
            ):
                if rows:
                    s.execute(table.__table__.insert(), rows)
                rows.clear()
            s.commit()


def _one_loan(b: _Batch, rnd: random.Random, i: int, now: dt.datetime, today: dt.date) -> None:
    """Loan i: its borrower, loan and case rows, with a DPD, stage and outcome drawn from `rnd`, then its history."""
    loan, wid, bid = f"BL{i:06d}", f"loan-BL{i:06d}", f"BB{i:06d}"
    dpd = rnd.choice((rnd.randint(1, 30), rnd.randint(1, 30), rnd.randint(31, 60), rnd.randint(61, 90), rnd.randint(91, 400)))
    due = today - dt.timedelta(days=dpd)
    opened = now - dt.timedelta(days=max(dpd - 1, 0), hours=rnd.randint(0, 20))
    stage = next(st for limit, st in STAGE_BY_DPD if dpd < limit)
    principal = rnd.randint(1_000, 80_000) * 100
    closed = rnd.random() < 0.2
    outcome = rnd.choice(("paid", "paid", "settled", "written_off", "deceased")) if closed else None
    status = "closed" if closed else rnd.choice(("active", "active", "active", "paused"))
    closed_at = now - dt.timedelta(days=rnd.randint(0, 40)) if closed else None
    if closed_at is not None and closed_at < opened:
        closed_at = opened + dt.timedelta(days=1)
    b.borrowers.append(_borrower_row(bid, i, opened))
    b.loans.append(_loan_row(loan, bid, principal, due, opened))
    outstanding = 0 if outcome in ("paid", "settled") else principal + principal // 20 + 3000
    b.cases.append(
        dict(
            workflow_id=wid,
            loan_id=loan,
            stage=stage,
            status=status,
            outcome=outcome,
            currency="CNY",
            outstanding=outstanding,
            total_paid=0,
            opened_at=opened,
            updated_at=closed_at or now,
            closed_at=closed_at,
        )
    )
    _history(b, rnd, wid, loan, bid, dpd, stage, opened, now, today)


def _borrower_row(bid: str, i: int, opened: dt.datetime) -> dict:
    """Borrower i, in Shanghai, reachable by phone only."""
    return dict(
        id=bid,
        name=f"借款人{i}",
        phone=f"138{i:08d}",
        email=None,
        address="上海市",
        id_number=None,
        timezone="Asia/Shanghai",
        language="zh",
        created_at=opened,
        updated_at=opened,
    )


def _loan_row(loan: str, bid: str, principal: int, due: dt.date, opened: dt.datetime) -> dict:
    """A personal loan of `principal` minor units, with 5% interest and 30.00 of fees."""
    return dict(
        id=loan,
        borrower_id=bid,
        guarantor_id=None,
        currency="CNY",
        principal=principal,
        interest=principal // 20,
        fees=3000,
        due_date=due,
        product="personal_loan",
        segment="retail",
        policy="default",
        created_at=opened,
        updated_at=opened,
    )


def _history(
    b: _Batch,
    rnd: random.Random,
    wid: str,
    loan: str,
    bid: str,
    dpd: int,
    stage: str,
    opened: dt.datetime,
    now: dt.datetime,
    today: dt.date,
) -> None:
    """A case's events and contacts: a few contact attempts (some refused by the gate), maybe a promise (kept or
    broken once its date has passed) and, far past due, a write-off proposal."""

    def ev(kind: str, detail: str, at: dt.datetime, cause: dict | None = None) -> None:
        b.events.append(
            dict(
                workflow_id=wid,
                loan_id=loan,
                at=at,
                kind=kind,
                detail=detail,
                cause=json.dumps(cause or {}),
                dedupe_key=None,
                actor=None,
            )
        )

    ev("opened", f"{dpd} days past due", opened)
    for k in range(rnd.randint(2, 5)):
        at = opened + dt.timedelta(days=k * 3)
        if rnd.random() < 0.3:
            rule = rnd.choice(RULES)
            ev("contact_refused", f"{stage}/call: {rule}: refused", at, {"rule": rule})
        else:
            ev("contact_allowed", f"{stage}/sms: allowed: all rules pass", at, {"rule": "allowed"})
            b.contacts.append(
                dict(
                    idempotency_key=f"{wid}:{k}",
                    workflow_id=wid,
                    loan_id=loan,
                    borrower_id=bid,
                    step=stage,
                    channel=rnd.choice(("sms", "call", "letter")),
                    action="remind",
                    status=rnd.choice(("delivered", "delivered", "delivered", "failed")),
                    outcome=None,
                    reason=None,
                    reference=None,
                    attempts=1,
                    at=at,
                    frozen=None,
                    created_at=at,
                    updated_at=at,
                )
            )
    if rnd.random() < 0.3:
        pdate = today + dt.timedelta(days=rnd.randint(-5, 10))
        ev("promise", f"CNY 1,000.00 by {pdate.isoformat()}; ladder paused", now - dt.timedelta(days=3))
        if pdate < today:
            ev(
                "promise_broken" if rnd.random() < 0.5 else "promise_kept",
                f"CNY 1,000.00 by {pdate}",
                now - dt.timedelta(days=(today - pdate).days - 1),
            )
    if dpd > 180 and rnd.random() < 0.3:
        ev("write_off_proposed", "180 days past due", now - dt.timedelta(days=2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cases", type=int, default=10_000)
    ap.add_argument("--database-url", default=None, help="an empty database (default: a fresh SQLite file)")
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args(argv)

    from console import dashboard
    from db.engine import make_engine, migrate
    from db.repo import Repo

    with tempfile.TemporaryDirectory() as tmp:
        url = args.database_url or f"sqlite:///{Path(tmp) / 'bench.db'}"
        migrate(url)
        repo = Repo(make_engine(url))
        t0 = time.perf_counter()
        seed(repo, args.cases)
        print(f"seeded {args.cases} cases in {time.perf_counter() - t0:.1f}s ({repo.engine.dialect.name})")
        build = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            d = dashboard.build(repo)
            build.append(time.perf_counter() - t)
        print(
            f"dashboard.build: median {statistics.median(build) * 1000:.0f} ms, best {min(build) * 1000:.0f} ms "
            f"over {args.repeat} runs ({d.total_cases} cases, {d.open_cases} open)"
        )
        page = asyncio.run(_page(repo, args.repeat))
        print(
            f"GET /console/dashboard (signed in, rendered): median {statistics.median(page) * 1000:.0f} ms, "
            f"best {min(page) * 1000:.0f} ms"
        )
    return 0


async def _page(repo, repeat: int) -> list[float]:
    import httpx

    from access.operators import Operators
    from api.server import create_app

    store = Operators(repo)
    token = store.issue_token(store.ensure("bench viewer", ["viewer"]).id).token
    app = create_app(tokens=["bench-bootstrap-token-000000"], repo=repo)
    out = []
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://console.test") as c:
        r = await c.post("/console/login", data={"token": token}, headers={"Origin": "http://console.test"})
        assert r.status_code == 303, r.text
        for _ in range(repeat):
            t = time.perf_counter()
            r = await c.get("/console/dashboard")
            out.append(time.perf_counter() - t)
            assert r.status_code == 200, r.text[:500]
    return out


if __name__ == "__main__":
    raise SystemExit(main())
