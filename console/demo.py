"""python -m console.demo: the console's demo operators, after `devstack.demo` has loaded its cases.

Creates (once) a collector `demo-collector`, a supervisor `demo-supervisor` and a viewer `demo-viewer`,
writes each one's token to var/<name>-token (0600, kept while it still works), and prints where to sign
in. The demo's cases fill the dashboard and the worklists (its promise, plan, dispute and hardship holds,
and the lawsuit waiting for a judgment). Then `demo-supervisor` proposes an interest waiver of 30% on
one open case without a plan: over the policy's four-eyes threshold, it waits on the approvals worklist
for a second supervisor (`dev-checker`, token in var/dev-checker-token); and `demo-collector` records a
small promise due today on another. Run again, it adds neither a second time."""

from __future__ import annotations

import os

from access.devadmin import var_dir
from access.operators import Operators
from infra.private import write_secret

OPERATORS = {"demo-collector": ("collector",), "demo-supervisor": ("supervisor",), "demo-viewer": ("viewer",)}


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


async def promise_to_break(repo, skip: str | None) -> str | None:
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
    client = await connect()
    acting_as(caller)
    for loan in _open_demo_loans(repo):
        if loan == skip:
            continue
        try:
            st = await visibility.case_status(client, loan)
            if st.plan is not None or st.pending_approval is not None or st.holds or st.promise is not None:
                continue
            # due today where the borrower lives (the machine's date is a day behind Beijing's each morning)
            await inputs.send_update(client, loan, "promise", {"amount": "100.00", "date": _borrower_today(repo, loan)})
        except BadInput:
            continue
        return loan
    return None


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


async def propose_waiver(repo) -> str | None:
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
    client = await connect()
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


def main() -> int:
    import asyncio

    from db.engine import make_engine
    from db.repo import Repo

    repo = Repo(make_engine())
    paths = ensure(repo)
    try:
        loan = asyncio.run(propose_waiver(repo))
    except Exception as exc:  # noqa: BLE001 - the demo goes on without the proposal
        loan, why = None, f"{type(exc).__name__}: {exc}"
    else:
        why = "no open demo case could take it"
    print(
        f"demo: demo-supervisor proposed a 30% interest waiver on {loan}; it waits for a second supervisor"
        if loan
        else f"demo: no waiver proposed ({why})"
    )
    try:
        promised = asyncio.run(promise_to_break(repo, loan))
    except Exception as exc:  # noqa: BLE001
        promised, why = None, f"{type(exc).__name__}: {exc}"
    print(
        f"demo: demo-collector recorded a promise of CNY 100.00 due today on {promised}; it is on today's "
        "promises worklist, and broken (on the dashboard) once its deadline passes unpaid"
        if promised
        else f"demo: no promise recorded ({why})"
    )
    port = os.environ.get("API_PORT", "8800")
    print(f"\nConsole: http://127.0.0.1:{port}/console  (API docs: http://127.0.0.1:{port}/docs)")
    for name, path in paths.items():
        print(f"  sign in as {name:<16} with the token in {path}")
    print(f"  demo-collector's call tasks (the demo's first call is agent mode): http://127.0.0.1:{port}/console/tasks")
    return 0


if __name__ == "__main__":
    from infra.process import leave

    leave(main())
