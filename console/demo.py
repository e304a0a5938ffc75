"""python -m console.demo: the console's demo operators, after `devstack.demo` has loaded its cases, and what the
demo's cases cannot put on the worklists by themselves.

Creates (once) a collector `demo-collector`, a supervisor `demo-supervisor`, a viewer `demo-viewer` and
`demo-payments` (the bank feed's role), writes each one's token to var/<name>-token (0600, kept while it still works),
and prints where to sign in. The demo's cases fill the dashboard and most worklists (its plan, dispute and hardship
holds, the rejected signal, the lawsuit waiting for a judgment, the collector's call tasks). Then, each once:
- `demo-supervisor` proposes an interest waiver of 30% on one open case without a plan: over the policy's four-eyes
  threshold, it waits on the approvals worklist for a second supervisor (`dev-checker`, var/dev-checker-token);
- `demo-collector` records a small promise due today on another, the one whose borrower's day ends first: on today's
  promises worklist, and, unpaid, broken by the case when that day (and the policy's grace) ends, then on the
  worklist of promises broken since yesterday;
- a promise that breaks while the demo is watched: a borrower living where the day ends first (within about two
  hours) promises CNY 50.00 today; unpaid, the case breaks it at that midnight (the demo's grace lasts seconds);
- the bank feed (`demo-payments`) pays CNY 88.00 on a loan with no case: kept on the unapplied payments worklist;
- `demo-supervisor` opens a case for a borrower with no email: its reminder email is on the undeliverable worklist;
- the daily calendar watch runs now (its schedule triggered): from 1 November, while next year's official calendar
  file is missing, its notice is on the compliance worklist.
Run again, it adds none of them a second time."""

from __future__ import annotations

from collections.abc import Coroutine
from typing import Any

from access.devadmin import var_dir
from access.operators import Operators
from infra.config import StackSettings, load
from infra.private import write_secret

OPERATORS = {
    "demo-collector": ("collector",),
    "demo-supervisor": ("supervisor",),
    "demo-viewer": ("viewer",),
    "demo-payments": ("payments",),
}
# A loan in the system of record that has no case (repaid before it became delinquent): the bank's feed still sends
# a payment for it, which is kept as unapplied (the "Unapplied payments" worklist)
NO_CASE_LOAN = "DEMO-NOCASE-1"
# A borrower whose email the bank never had: the case's reminder email cannot go out (the "Notices undeliverable"
# worklist), while its SMS and letter do
NO_EMAIL_LOAN = "DEMO-NOEMAIL-1"


def ensure(repo) -> dict[str, str]:
    store = Operators(repo)
    out = {}
    for name, roles in OPERATORS.items():
        op = store.ensure(name, roles)
        path = var_dir() / f"{name}-token"
        current = path.read_text().strip() if path.exists() else ""
        if not current or store.authenticate(current) is None:
            write_secret(path, store.issue_token(op.id, days=30).token + "\n")
        out[name] = str(path)
    return out


async def promise_to_break(repo, skip: str | None, client=None) -> str | None:
    """demo-collector records a small promise due today on another open demo case: it is on today's promises
    worklist, and once its deadline passes unpaid the case breaks it and the dashboard counts it broken."""

    from sqlalchemy import select

    from access.permissions import acting_as
    from app import inputs, visibility
    from app.errors import BadInput
    from db.tables import EventRow
    from infra.temporal import connect

    caller = Operators(repo).authenticate((var_dir() / "demo-collector-token").read_text().strip())
    if caller is None:
        return None
    with repo.session() as s:  # run before: its promise is there already
        before = s.scalar(
            select(EventRow.loan_id).where(EventRow.kind == "promise", EventRow.actor.startswith(f"{caller.operator_id}:"))
        )
    if before is not None:
        return before
    client = client or await connect()
    acting_as(caller)
    for loan in sorted(_open_demo_loans(repo), key=lambda x: _day_ends(repo, x)):  # the first to break, first
        if loan == skip:
            continue
        try:
            st = await visibility.case_status(client, loan)
            if st.plan is not None or st.pending_approval is not None or st.holds or _active(st.promise):
                continue
            # due today where the borrower lives (the machine's date is a day behind Beijing's each morning)
            await inputs.send_update(client, loan, "promise", {"amount": "100.00", "date": _borrower_today(repo, loan)})
        except BadInput as exc:
            REFUSED.append(f"{loan}: {exc.field}: {exc.reason}")
            continue
        return loan
    return None


def _active(promise) -> bool:
    return promise is not None and promise.status == "active"  # a kept or broken promise leaves room for a new one


REFUSED: list[str] = []  # why the cases tried refused the demo's promise (printed when none took it)


async def unapplied_payment(repo, client=None) -> str | None:
    """demo-payments records the bank feed's payment of CNY 88.00 for NO_CASE_LOAN, a loan with no case: it is kept
    as unapplied, on its worklist, until someone applies or returns it. Run again, the same payment id changes nothing."""
    import datetime as dt

    from access.permissions import acting_as
    from app import inputs
    from infra.temporal import connect

    caller = Operators(repo).authenticate((var_dir() / "demo-payments-token").read_text().strip())
    if caller is None:
        return None
    repo.upsert_borrower(id="DEMO-NOCASE-B1", name="周敏", timezone="Asia/Shanghai", language="zh")
    repo.upsert_loan(
        id=NO_CASE_LOAN,
        borrower_id="DEMO-NOCASE-B1",
        currency="CNY",
        principal=2_000_00,
        interest=0,
        fees=0,
        due_date=dt.date.today() + dt.timedelta(days=20),
        policy="demo",
    )
    client = client or await connect()
    acting_as(caller)
    await inputs.record_payment(client, repo, NO_CASE_LOAN, payment_id=f"{NO_CASE_LOAN}-feed-1", amount="88.00")
    return NO_CASE_LOAN


async def undeliverable_notice(repo, client=None, task_queue: str | None = None, policy=None) -> str | None:
    """demo-supervisor opens NO_EMAIL_LOAN, 2 days past due, for a borrower with a phone and an address but no email:
    its reminder's email fails ("borrower has no email on record") and is on the undeliverable worklist."""
    import datetime as dt

    from access.permissions import acting_as
    from app.opening import Contact, case_input, open_case
    from domain.dates import local_date
    from infra.temporal import connect

    caller = Operators(repo).authenticate((var_dir() / "demo-supervisor-token").read_text().strip())
    if caller is None:
        return None
    client = client or await connect()
    acting_as(caller)
    inp = case_input(
        loan_id=NO_EMAIL_LOAN,
        borrower_id="DEMO-NOEMAIL-B1",
        principal="6800.00",
        interest="210.50",
        due_date=local_date(dt.datetime.now(dt.UTC), "Asia/Shanghai") - dt.timedelta(days=2),
        policy=policy or "demo",
    )
    contact = Contact(name="吴磊", phone="13800009901", address="上海市浦东新区世纪大道100号")
    await open_case(client, repo, inp, contact, task_queue)
    return NO_EMAIL_LOAN


# Where a borrower of the demo may live when their day must end soon: the zone whose midnight comes first
ABROAD_ZONES = (
    "Asia/Shanghai",
    "Asia/Urumqi",
    "Asia/Tokyo",
    "Asia/Kolkata",
    "Asia/Dubai",
    "Europe/Moscow",
    "Europe/Berlin",
    "Europe/London",
    "Atlantic/Azores",
    "America/Sao_Paulo",
    "America/New_York",
    "America/Chicago",
    "America/Denver",
    "America/Los_Angeles",
    "America/Anchorage",
    "Pacific/Honolulu",
    "Pacific/Auckland",
    "Australia/Sydney",
    "Asia/Kathmandu",
    "Asia/Tehran",
    "Atlantic/South_Georgia",
)
ABROAD_LOAN = "DEMO-ABROAD-1"


def soonest_midnight(now) -> tuple[str, object]:
    """The zone of ABROAD_ZONES whose day ends first after `now`, and that instant."""
    import datetime as dt

    from domain.dates import local_date, local_midnight

    return min(((tz, local_midnight(local_date(now, tz) + dt.timedelta(days=1), tz)) for tz in ABROAD_ZONES), key=lambda z: z[1])


async def promise_abroad(
    repo, client=None, task_queue: str | None = None, policy=None, now=None
) -> tuple[str, str, object] | None:
    """A promise that breaks while the demo is watched: demo-supervisor opens ABROAD_LOAN for a borrower living where
    the day ends first (at most a couple of hours away), and demo-collector records their promise of CNY 50.00 due
    today there. Unpaid, the case breaks it at that midnight (and the policy's grace: seconds on the demo's clock), and
    it is on the worklist of promises broken since yesterday. (loan, zone, when it breaks) or None."""
    import datetime as dt

    from access.permissions import acting_as
    from app import inputs
    from app.errors import Busy
    from app.opening import Contact, case_input, open_case
    from domain.dates import local_date
    from infra.temporal import connect

    store = Operators(repo)
    supervisor = store.authenticate((var_dir() / "demo-supervisor-token").read_text().strip())
    collector = store.authenticate((var_dir() / "demo-collector-token").read_text().strip())
    if supervisor is None or collector is None:
        return None
    client = client or await connect()
    with repo.session() as s:
        from db.tables import BorrowerRow, EventRow

        done = s.scalar(select_promise(EventRow, ABROAD_LOAN))
        b = s.get(BorrowerRow, "DEMO-ABROAD-B1")
    if done is not None and b is not None:  # run before
        return ABROAD_LOAN, b.timezone, None
    now = now or dt.datetime.now(dt.UTC)  # the cases' clock (the wall clock on the dev stack)
    tz, breaks = soonest_midnight(now)
    acting_as(supervisor)
    inp = case_input(
        loan_id=ABROAD_LOAN,
        borrower_id="DEMO-ABROAD-B1",
        principal="3200.00",
        due_date=local_date(now, tz) - dt.timedelta(days=3),
        timezone=tz,
        policy=policy or "demo",
    )
    contact = Contact(name="郑洁", phone="13800009902", email="zheng.jie@example.com", address="上海市静安区南京西路200号")
    await open_case(client, repo, inp, contact, task_queue)
    acting_as(collector)
    for _ in range(20):  # the case answers its first update once its first workflow task has run
        try:
            await inputs.send_update(client, ABROAD_LOAN, "promise", {"amount": "50.00", "date": local_date(now, tz)})
            break
        except Busy:
            continue
    return ABROAD_LOAN, tz, breaks


def select_promise(e, loan_id: str):
    from sqlalchemy import select

    return select(e.id).where(e.loan_id == loan_id, e.kind == "promise").limit(1)


async def compliance_notice(client=None) -> str | None:
    """Runs the daily calendar watch now (its Temporal Schedule, triggered as an operator's "run now"), as 07:30 would:
    from 1 November, while next year's official calendar is missing, it writes the compliance worklist's notice.
    None when the year ahead is there already (the job then has nothing to say)."""
    import datetime as dt

    from activities.job_contracts import CALENDAR_WATCH_JOB
    from domain.calendar import missing_warning
    from domain.dates import local_date
    from infra.temporal import connect

    warning = missing_warning(local_date(dt.datetime.now(dt.UTC), "Asia/Shanghai"))
    if not warning:
        return None
    client = client or await connect()
    await client.get_schedule_handle(CALENDAR_WATCH_JOB).trigger()
    return warning


def _day_ends(repo, loan_id: str):
    """When the borrower's today ends (their next local midnight): a promise due today breaks from then on."""
    import datetime as dt

    from domain.dates import local_midnight

    with repo.session() as s:
        from db.tables import BorrowerRow, LoanRow

        loan = s.get(LoanRow, loan_id)
        borrower = s.get(BorrowerRow, loan.borrower_id) if loan else None
    tz = borrower.timezone if borrower else "Asia/Shanghai"
    return local_midnight(_borrower_today(repo, loan_id) + dt.timedelta(days=1), tz)


def _borrower_today(repo, loan_id: str):
    import datetime as dt

    from db.tables import BorrowerRow, LoanRow
    from domain.dates import local_date

    with repo.session() as s:
        loan = s.get(LoanRow, loan_id)
        borrower = s.get(BorrowerRow, loan.borrower_id) if loan else None
    return local_date(dt.datetime.now(dt.UTC), borrower.timezone if borrower else "Asia/Shanghai")


def _open_demo_loans(repo) -> list[str]:
    from sqlalchemy import select

    from db.tables import CaseRow

    with repo.session() as s:
        return list(
            s.scalars(
                select(CaseRow.loan_id)
                .where(CaseRow.status != "closed", CaseRow.loan_id.like("DEMO-%"))
                .order_by(CaseRow.loan_id)
            )
        )


async def propose_waiver(repo, client=None) -> str | None:
    """demo-supervisor proposes a 30% interest waiver on the first open demo case with no plan or proposal."""
    import datetime as dt

    from sqlalchemy import select

    from access.permissions import acting_as
    from app import inputs, visibility
    from app.errors import BadInput
    from console.worklists import pending_proposals
    from db.tables import CaseRow
    from infra.temporal import connect

    store = Operators(repo)
    caller = store.authenticate((var_dir() / "demo-supervisor-token").read_text().strip())
    if caller is None:
        return None
    waiting = [x for x in pending_proposals(repo, "DEMO-")]
    if waiting:  # run before: its proposal still waits
        return waiting[0]
    with repo.session() as s:
        loans = list(
            s.scalars(
                select(CaseRow.loan_id)
                .where(CaseRow.status != "closed", CaseRow.loan_id.like("DEMO-%"))
                .order_by(CaseRow.loan_id)
            )
        )
    client = client or await connect()
    acting_as(caller)
    for loan in loans:
        try:
            st = await visibility.case_status(client, loan)
        except BadInput:
            continue
        if st.plan is not None or st.pending_approval is not None or st.holds or st.promise is not None:
            continue
        try:
            await inputs.send_update(
                client,
                loan,
                "plan",
                {"kind": "interest_waiver", "waiver_percent": 30, "pay_by": dt.date.today() + dt.timedelta(days=20)},
            )
        except BadInput:
            continue
        return loan
    return None


def _scene(scene: Coroutine[Any, Any, Any], why: str) -> tuple[Any, str]:
    """Runs one of the demo's scenes: (its result, `why`), or (None, the error) when it fails, since the demo goes on
    without a scene that could not be set up. `why` says why a scene that ran has nothing to show."""
    import asyncio

    try:
        return asyncio.run(scene), why
    except Exception as exc:  # noqa: BLE001 - the demo goes on without the scene
        return None, f"{type(exc).__name__}: {exc}"


def main() -> int:
    """Sets up the console's demo scenes, each saying what it left where, then the console's address and tokens."""
    from db.engine import make_engine
    from db.repo import Repo

    repo = Repo(make_engine())
    paths = ensure(repo)
    loan, why = _scene(propose_waiver(repo), "no open demo case could take it")
    print(
        f"demo: demo-supervisor proposed a 30% interest waiver on {loan}; it waits for a second supervisor"
        if loan
        else f"demo: no waiver proposed ({why})"
    )
    promised, why = _scene(promise_to_break(repo, loan), why)
    print(
        f"demo: demo-collector recorded a promise of CNY 100.00 due today on {promised}; it is on today's "
        "promises worklist; unpaid, the case breaks it when the borrower's day ends (and the policy's grace), and it is "
        "on the worklist of promises broken since yesterday"
        if promised
        else f"demo: no promise recorded ({why}{'; refused: ' + ' | '.join(REFUSED[:3]) if REFUSED else ''})"
    )
    kept, why = _scene(unapplied_payment(repo), why)
    print(
        f"demo: the bank feed's payment of CNY 88.00 for {kept} (a loan with no case) is kept on the unapplied worklist"
        if kept
        else f"demo: no unapplied payment ({why})"
    )
    failing, why = _scene(undeliverable_notice(repo), why)
    print(
        f"demo: demo-supervisor opened {failing} for a borrower with no email: its reminder email is undeliverable"
        if failing
        else f"demo: no undeliverable notice ({why})"
    )
    _promise_abroad(repo)
    notice, why = _scene(compliance_notice(), "next year's official calendar is there, or it is before 1 November")
    print(
        f"demo: the daily calendar watch ran now; its notice is on the compliance worklist: {notice}"
        if notice
        else f"demo: no compliance notice ({why})"
    )
    port = load(StackSettings).api_port
    print(f"\nConsole: http://127.0.0.1:{port}/console  (API docs: http://127.0.0.1:{port}/docs)")
    for name, path in paths.items():
        print(f"  sign in as {name:<16} with the token in {path}")
    print(f"  demo-collector's call tasks (the demo's first call is agent mode): http://127.0.0.1:{port}/console/tasks")
    return 0


def _promise_abroad(repo) -> None:
    """The scene of a promise by a borrower abroad, said in Beijing time: when it breaks, unpaid."""
    abroad, why = _scene(promise_abroad(repo), "the demo's operators have no token")
    if abroad and abroad[2] is not None:
        from domain.dates import zone

        at = abroad[2].astimezone(zone("Asia/Shanghai")).strftime("%Y-%m-%d %H:%M")
        print(
            f"demo: demo-collector recorded a promise of CNY 50.00 on {abroad[0]} (the borrower lives in {abroad[1]}); "
            f"unpaid, it breaks at {at} Beijing time and is then on the worklist of promises broken since yesterday"
        )
    elif abroad:
        print(f"demo: the promise on {abroad[0]} ({abroad[1]}) was recorded before")
    else:
        print(f"demo: no promise to break soon ({why})")


if __name__ == "__main__":
    from infra.process import leave

    leave(main())
