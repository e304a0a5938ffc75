"""The console's demo (console/demo.py, run by `make demo` after devstack.demo) fills the worklists: a waiver waiting
for a second supervisor, a promise due today that the case breaks once its day ends unpaid (then on the "promises
broken since yesterday" worklist, the same evening), and a payment for a loan with no open case (unapplied). Run
here on the suite's time-skipping server with demo-like cases (loan ids DEMO-...), not on the dev stack: the demo's
ports stay free."""

from __future__ import annotations

import datetime as dt

import pytest

from console import demo, worklists
from db.tables import EventRow
from tests.conftest import LADDER_POLICY, today_in


@pytest.fixture
def var(tmp_path, monkeypatch):
    monkeypatch.setenv("COLLECTIONS_VAR_DIR", str(tmp_path))
    return tmp_path


async def test_the_demo_records_a_promise_that_breaks_and_fills_the_broken_promises_worklist(env, cases, repo, var):
    from sqlmodel import select

    handles = [await cases.start(dpd=8, policy=LADDER_POLICY, loan_id=f"DEMO-W{i}") for i in range(3)]
    paths = demo.ensure(repo)
    assert set(paths) >= {"demo-collector", "demo-supervisor", "demo-viewer"}
    waiver = await demo.propose_waiver(repo, env.client)
    assert waiver in {h.id.removeprefix("loan-") for h in handles}
    promised = await demo.promise_to_break(repo, waiver, env.client)
    assert promised is not None and promised != waiver, "no promise recorded"
    handle = next(h for h in handles if h.id == f"loan-{promised}")
    st = await cases.status(handle)
    assert st.promise is not None and st.promise.date == today_in(await cases.now())
    due = worklists.LISTS["promises-due"].query(today_in(await cases.now()))
    with repo.session() as s:
        assert promised in [r[0] for r in s.execute(due)]
    assert await demo.promise_to_break(repo, waiver, env.client) == promised, "a second run records a second promise"

    # unpaid, the promise breaks once its day (and the policy's grace) has passed; the next day's worklist lists it
    await cases.advance(days=LADDER_POLICY.promise.grace_days + 2)
    st = await cases.status(handle)
    assert st.promise is not None and st.promise.status == "broken", st.promise
    with repo.session() as s:
        [broken] = s.exec(select(EventRow).where(EventRow.kind == "promise_broken", EventRow.loan_id == promised)).all()
    broken_on = worklists.local_date(broken.at, worklists.FLOOR_ZONE)
    for day, listed_then in (
        (broken_on, True),
        (broken_on + dt.timedelta(days=1), True),
        (broken_on + dt.timedelta(days=2), False),
    ):
        with repo.session() as s:
            listed = [r[0] for r in s.execute(worklists.LISTS["promises-broken"].query(day))]
        assert (promised in listed) is listed_then, (day, listed)  # the day it broke and the next


async def test_the_demo_keeps_a_payment_for_a_loan_with_no_case_as_unapplied(env, repo, var):
    demo.ensure(repo)
    loan = await demo.unapplied_payment(repo, env.client)
    assert loan == demo.NO_CASE_LOAN
    rows = [r for r in repo.payments(loan_id=loan) if r.status == "unapplied"]
    assert len(rows) == 1 and rows[0].amount == 88_00
    assert await demo.unapplied_payment(repo, env.client) == loan and len(repo.payments(loan_id=loan)) == 1
    with repo.session() as s:
        listed = [r[0] for r in s.execute(worklists.LISTS["unapplied"].query(dt.date.today()))]
    assert loan in listed


async def test_the_demo_opens_a_case_whose_reminder_email_is_undeliverable(env, worker, repo, var):
    from tests.conftest import TASK_QUEUE, Cases

    demo.ensure(repo)
    loan = await demo.undeliverable_notice(repo, env.client, TASK_QUEUE, policy=LADDER_POLICY)
    assert loan == demo.NO_EMAIL_LOAN
    cases = Cases(env, repo)
    handle = env.client.get_workflow_handle(f"loan-{loan}")
    try:
        await cases.advance(hours=2)
        with repo.session() as s:
            rows = list(s.execute(worklists.LISTS["undeliverable"].query(today_in(await cases.now()))))
        failed = [r for r in rows if r[0] == loan]
        assert failed and failed[0][2] == "email" and "no email" in failed[0][4], rows
        assert not [r for r in rows if r[0] == loan and r[2] != "email"], "the SMS and letter went out"
    finally:
        await handle.terminate("test done")


async def test_the_demo_records_a_promise_that_breaks_within_hours_where_the_borrowers_day_ends_first(env, worker, repo, var):
    from tests.conftest import TASK_QUEUE, Cases

    cases = Cases(env, repo)
    now = await cases.now()  # the test server's clock (earlier tests of the module moved it on)
    tz, breaks = demo.soonest_midnight(now)
    assert dt.timedelta(0) < breaks - now <= dt.timedelta(hours=2), (tz, breaks)
    demo.ensure(repo)
    loan, zone_name, at = await demo.promise_abroad(repo, env.client, TASK_QUEUE, policy=LADDER_POLICY, now=now)
    assert (loan, zone_name, at) == (demo.ABROAD_LOAN, tz, breaks)
    handle = env.client.get_workflow_handle(f"loan-{loan}")
    try:
        st = await cases.status(handle)
        assert st.promise is not None and st.promise.status == "active" and st.status == "paused"
        await cases.advance(hours=2, days=LADDER_POLICY.promise.grace_days)
        st = await cases.status(handle)
        assert st.promise.status == "broken", st.promise
        broke = worklists.local_date(await cases.now(), worklists.FLOOR_ZONE)
        with repo.session() as s:
            listed = [r[0] for r in s.execute(worklists.LISTS["promises-broken"].query(broke))]
        assert loan in listed
        again = await demo.promise_abroad(repo, env.client, TASK_QUEUE, policy=LADDER_POLICY, now=await cases.now())
        assert again is not None and again[0] == loan, "run again, it records no second promise"
    finally:
        await handle.terminate("test done")
