"""The restore drill: a backup of the application database, cases moving on after it (payments, a closure, a hold, a
promise, a case opened, contacts sent), the old backup restored, then app.restore.reconcile. After it the case rows
match every workflow, the payments acknowledged after the backup are back in the ledger (or listed for a person),
the holds the gate reads are back, and the contacts sent since are counted again: as the cases go on, no step is
delivered twice and no borrower gets more than the caps across their loans."""

from __future__ import annotations

import contextlib
import datetime as dt
import sqlite3
import uuid
from pathlib import Path

from sqlalchemy import select
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner

from activities.case import CaseActivities
from activities.gateway import GatewayClient, GatewaySettings
from activities.jobs import live_case
from app import inputs, restore
from bench.chaos import Check, Model, caps_across_loans
from db.engine import make_engine, migrate
from db.repo import Repo
from db.tables import CaseRow, ContactRow, HoldRow, PaymentRow, utcnow
from domain.models import CaseStatus
from domain.money import parse_amount
from tests.conftest import LADDER_POLICY, Cases, today_in
from worker import build_worker

QUEUE = "restore-drill"


def sqlite_copy(src: Path, dst: Path) -> None:
    """SQLite's online backup (consistent while the database is in use), as a bank's backup job takes one."""
    with contextlib.closing(sqlite3.connect(src)) as a, contextlib.closing(sqlite3.connect(dst)) as b:
        a.backup(b)


@contextlib.asynccontextmanager
async def drill_worker(env, repo, gateway):
    client = GatewayClient(GatewaySettings(url=gateway.url, api_key=gateway.api_key, timeout=5))
    w = build_worker(
        env.client,
        CaseActivities(repo, client),
        task_queue=QUEUE,
        workflow_failure_exception_types=[Exception],
        workflow_runner=SandboxedWorkflowRunner(),
    )
    try:
        async with w:
            yield w
    finally:
        await client.aclose()


def ledger(repo: Repo) -> dict[str, tuple[str, int, str]]:
    with repo.session() as s:
        return {r.payment_id: (r.loan_id, r.amount, r.status) for r in s.scalars(select(PaymentRow))}


async def test_restore_drill(env, gateway, tmp_path):
    gateway.clear_faults()
    live_db, backup_db = tmp_path / "collections.db", tmp_path / "backup.db"
    url = f"sqlite:///{live_db}"
    migrate(url)
    repo = Repo(make_engine(url))
    tag = uuid.uuid4().hex[:6]
    cases = Cases(env, repo, task_queue=QUEUE)
    loans: dict[str, str] = {}  # loan id -> borrower id
    try:
        async with drill_worker(env, repo, gateway):
            # two loans of one borrower, three of their own
            for n, borrower in ((1, "A"), (2, "A"), (3, "B"), (4, "C"), (5, "D")):
                loan = f"R{tag}-{n}"
                loans[loan] = f"B-R{tag}-{borrower}"
                await cases.start(dpd=2, policy=LADDER_POLICY, loan_id=loan, borrower_id=loans[loan])
            l1, l2, l3, l4, l5 = loans
            await inputs.record_payment(env.client, repo, l1, payment_id=f"P{tag}-before", amount="100.00")
            await cases.advance(days=3)
            sqlite_copy(live_db, backup_db)  # ---- the backup ----
            before = ledger(repo)

            # the cases move on after it
            total3 = (await cases.status(env.client.get_workflow_handle(f"loan-{l3}"))).outstanding["total"]
            acknowledged = {
                f"P{tag}-after-1": (l1, "200.00"),
                f"P{tag}-after-2": (l2, "50.00"),
                f"P{tag}-full-3": (l3, total3),
            }
            for pid, (loan, amount) in acknowledged.items():
                out = await inputs.record_payment(env.client, repo, loan, payment_id=pid, amount=amount)
                assert out.status == "applied", out
            await inputs.send_update(env.client, l4, "hold", {"kind": "dispute", "reference": "disputes the fees"})
            await inputs.send_update(env.client, l5, "promise", {"amount": "100.00", "date": str(await _tomorrow(cases))})
            l6 = f"R{tag}-6"
            loans[l6] = f"B-R{tag}-A"  # a third loan of borrower A, opened after the backup
            await cases.start(dpd=2, policy=LADDER_POLICY, loan_id=l6, borrower_id=loans[l6])
            await cases.advance(days=6)  # reminders and first calls go out
            for h in cases.started:
                await cases.settle(h, must=False)
            late_unapplied = f"P{tag}-late-3"  # kept as unapplied for the closed loan: in no workflow
            out = await inputs.record_payment(env.client, repo, l3, payment_id=late_unapplied, amount="5.00")
            assert out.status == "unapplied"
            outbox_before_restore = {i["idempotency_key"] for loan in loans for i in gateway.outbox(loan_id=loan)}

            # ---- the restore: the old backup put back under the (idle: no time passes) worker ----
            repo.engine.dispose()
            sqlite_copy(backup_db, live_db)
            assert ledger(repo) == before  # the ledger is last night's again
            with repo.session() as s:  # a payment id the restored ledger holds otherwise (a person decides)
                s.add(
                    PaymentRow(
                        payment_id=f"P{tag}-after-2",
                        loan_id=l2,
                        amount=777,
                        currency="CNY",
                        paid_at=utcnow(),
                        status="unapplied",
                        note="from another source",
                    )
                )
                s.commit()
            deliveries = [i for loan in loans for i in gateway.outbox(loan_id=loan)]
            duplicates_before = gateway.stats()["duplicates"]

            report = await restore.reconcile(env.client, repo, deliveries, workflow_ids=[f"loan-{loan}" for loan in loans])
            print("\n" + report.summary(), *report.for_a_person, sep="\n  ")
            assert report.cases == 6 and not report.unreadable
            # payments acknowledged after the backup: back in the ledger, applied
            got = ledger(repo)
            assert got[f"P{tag}-after-1"] == (l1, 20_000, "applied")
            assert got[f"P{tag}-full-3"][2] == "applied"
            assert sorted(report.payments_restored) == sorted([f"P{tag}-after-1", f"P{tag}-full-3"])
            # the one the restored ledger holds otherwise: listed, not overwritten
            assert got[f"P{tag}-after-2"] == (l2, 777, "unapplied")
            assert any(f"P{tag}-after-2" in x for x in report.for_a_person)
            assert any(l6 in x and "import" in x for x in report.for_a_person)  # opened after the backup
            assert late_unapplied not in got  # in no workflow: the feed sends it again (below)
            # the projection matches every workflow
            for loan in loans:
                st = await env.client.get_workflow_handle(f"loan-{loan}").query("status", result_type=CaseStatus)
                live = live_case(st)
                with repo.session() as s:
                    row = s.get(CaseRow, f"loan-{loan}")
                assert row is not None, loan
                assert (row.stage, row.status, row.outstanding, row.total_paid) == (
                    live.stage,
                    live.status,
                    live.outstanding,
                    live.total_paid,
                ), loan
            # the dispute hold placed after the backup: back where the gate reads it
            with repo.session() as s:
                held = list(s.scalars(select(HoldRow).where(HoldRow.loan_id == l4, HoldRow.released_at.is_(None))))  # type: ignore[arg-type,union-attr]
                keys = {c.idempotency_key for c in s.scalars(select(ContactRow).where(ContactRow.loan_id.in_(list(loans))))}  # type: ignore[attr-defined]
            assert [h.kind for h in held] == ["dispute"]
            assert outbox_before_restore <= keys  # every delivery since the backup has its contact row again
            assert set(report.contacts_restored) <= outbox_before_restore and report.contacts_restored

            # the payment feed sent again from the backup's time: the unapplied one comes back, the rest change nothing
            for pid, (loan, amount) in [*acknowledged.items(), (late_unapplied, (l3, "5.00"))]:
                with contextlib.suppress(inputs.BadInput):  # the one a person must look at is refused, named
                    await inputs.record_payment(env.client, repo, loan, payment_id=pid, amount=amount)
            assert ledger(repo)[late_unapplied] == (l3, 500, "unapplied")

            # the cases go on: no step delivered twice, no borrower over the caps across their loans
            await cases.advance(days=10)
            for h in cases.started:
                await cases.settle(h, must=False)
            st1 = await env.client.get_workflow_handle(f"loan-{l1}").query("status", result_type=CaseStatus)
            assert parse_amount(st1.total_paid, "CNY") == 30_000  # before the backup and after it: both kept
        per_action: dict[tuple[str, str], int] = {}
        for loan in loans:
            for i in gateway.outbox(loan_id=loan):
                _wf, _opened, step, action = i["idempotency_key"].split(":", 3)
                per_action[(loan, f"{step}/{action}")] = per_action.get((loan, f"{step}/{action}"), 0) + 1
        assert max(per_action.values()) == 1, per_action
        assert gateway.stats()["duplicates"] == duplicates_before  # no send went out again for a lost contact row
        with repo.session() as s:
            contacts = list(s.scalars(select(ContactRow).where(ContactRow.loan_id.in_(list(loans)))))  # type: ignore[attr-defined]
        models = {
            loan: Model(loan_id=loan, kind="quiet", principal=0, interest=0, fees=0, dpd=0, borrower_id=b)
            for loan, b in loans.items()
        }
        caps = Check("caps")
        caps_across_loans(models, contacts, LADDER_POLICY, caps)
        assert not caps.failures, caps.failures
    finally:
        await cases.terminate_all()
        repo.engine.dispose()


async def _tomorrow(cases: Cases) -> dt.date:
    return today_in(await cases.now()) + dt.timedelta(days=1)


def test_restore_reconcile_refuses_a_delivery_log_it_cannot_read(tmp_path, capsys):
    import starter

    bad = tmp_path / "outbox.json"
    bad.write_text("not json", encoding="utf-8")
    assert starter.main(["restore-reconcile", "--deliveries", str(bad)]) == 2
    assert "deliveries: cannot read" in capsys.readouterr().err
    bad.write_text('{"items": [{"loan_id": "L1"}]}', encoding="utf-8")
    assert starter.main(["restore-reconcile", "--deliveries", str(bad)]) == 2
    assert "deliveries: a JSON list" in capsys.readouterr().err
