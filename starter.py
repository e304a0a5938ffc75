"""The operator's command line for collection cases.

Everyday tasks (LOAN_ID is the bank's loan number; its case is loan-LOAN_ID):

  Load a portfolio of delinquent loans and open their cases (safe to run twice):
    python starter.py import portfolio.csv
    python starter.py import portfolio.csv --dry-run          # check the file only, change nothing
  Find cases:
    python starter.py list --stage litigation
    python starter.py list --on-hold --segment sme
    python starter.py list --status active --min-amount 10000 --limit 50
    python starter.py list --query 'NextActionAt < "2026-12-01T00:00:00Z"'
  Count cases:
    python starter.py count --by stage
  Look at one case:
    python starter.py status L1001
  Record what the borrower did or agreed:
    python starter.py pay L1001 --payment-id BANK-889 --amount 500.00        # same id twice = once
    python starter.py promise L1001 --amount 2000 --date 2026-12-05
    python starter.py plan L1001 --kind instalments --instalments 6 --first-due 2026-12-15
    python starter.py plan L1001 --kind deferral --until 2027-01-31
    python starter.py plan L1001 --kind interest_waiver --waiver-percent 30 --pay-by 2026-12-20
    python starter.py hold L1001 --kind hardship --until 2027-02-01 --reference "lost job"
    python starter.py release L1001 --kind complaint --reviewer "Wang Li"
    python starter.py outcome L1001 --kind visit --outcome not_home
    python starter.py outcome L1001 --kind court --outcome judgment --reference "(2026)沪0101民初123号"
  Open one case by hand:
    python starter.py start --loan-id L1001 --borrower-id B77 --name 张伟 --phone 13812345678 \\
        --principal 12000.00 --interest 640.50 --fees 30 --due-date 2026-10-15 --timezone Asia/Shanghai
  Payments that found no open case (kept as unapplied, never dropped):
    python starter.py payments --unapplied
  The official holiday calendars (policies/calendars/): all valid, next year's there (exit 1 if not):
    python starter.py check
  A year's official calendar as data, without a deploy (role compliance; a second operator approves):
    python starter.py calendars add cn-2027.toml
    python starter.py calendars approve 2027
  The daily jobs' schedules (calendar watch, reconciliation, retention): create or update, list:
    python starter.py schedules apply
    python starter.py schedules list

Add --json to any command for machine-readable output; `python starter.py COMMAND --help`
explains each command. Amounts are in major units with at most the currency's decimals
(CNY: 1234.56). Dates are the borrower's calendar dates, YYYY-MM-DD. Borrower contact details
go to the database only, never into Temporal.

Exit codes: 0 done; 1 some rows of an import were rejected, or Temporal / the database could
not be reached; 2 bad input (the message names the field and the reason; nothing was changed);
3 the operator's token or roles do not allow it (nothing was changed).
Operator: --token or COLLECTIONS_TOKEN (`starter.py operators token NAME`); without one, only on the
local dev stack (Temporal on loopback), the command acts as the local admin and is recorded as such.
Connection: TEMPORAL_ADDRESS (localhost:7233), TEMPORAL_NAMESPACE, TEMPORAL_API_KEY, TEMPORAL_TLS_*,
TEMPORAL_PROFILE (a profile in TEMPORAL_CONFIG_FILE), TEMPORAL_TASK_QUEUE, DATABASE_URL.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import datetime as dt
import json
import os
import sys
import typing
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from app import errors, inputs, opening, portfolio, reversal, visibility
from app.errors import BadInput
from domain import calendar
from domain.dates import utc_text
from domain.inputs import BY_COMMAND
from domain.models import (
    CALL_OUTCOMES,
    COURT_EVENTS,
    OPERATOR_OUTCOMES,
    SUSPENSION_CAUSES,
    VISIT_OUTCOMES,
    HoldIn,
    OutcomeIn,
    PlanIn,
)
from infra.config import CliSettings, SettingsError, load, settings

IMPORT_HELP = """\
Reads a CSV file with a header row and these columns (any order; UTF-8, a BOM is fine):

  loan_id, borrower_id, name, phone, email, address, timezone, currency,
  principal, interest, fees, due_date, product, segment

  loan_id,borrower_id,name,phone,email,address,timezone,currency,principal,interest,fees,due_date,product,segment
  L1001,B77,张伟,13812345678,zhang.wei@example.cn,上海市黄浦区南京东路1号,Asia/Shanghai,CNY,12000.00,640.50,30,2026-10-15,personal_loan,retail

Required in every row: loan_id, borrower_id, name, timezone, currency, principal, due_date.
Empty interest or fees mean 0; empty product/segment mean personal_loan/retail.
Each borrower and loan is written to the database (updated if already there), then one case
is opened per loan. Running the same file again opens nothing new: loans whose case is
already running are counted as "already running".

A bad row is reported with its line, column and reason, e.g.
  line 7: due_date: '2026-02-30' is not a date (YYYY-MM-DD)
and the other rows are still imported; the exit code is then 1. A loan id that appears twice
is rejected the second time. A missing file, a wrong header or an unknown --policy stops the
import before anything is written (exit 2).

Policy: --policy NAME for all rows; otherwise each row's segment uses policies/<segment>.toml
if it exists, else the default policy.

Examples:
  python starter.py import portfolio.csv
  python starter.py import portfolio.csv --dry-run
  python starter.py import portfolio.csv --policy default --json > result.json
"""

LIST_HELP = """\
Lists cases from Temporal's search attributes (the same data the Web UI searches). Filters
are combined with AND. Newest cases first; at most --limit (default 100).

Examples:
  python starter.py list --stage litigation
  python starter.py list --status paused --on-hold
  python starter.py list --min-amount 10000 --segment sme
  python starter.py list --policy demo --not-on-hold --json
  python starter.py list --query 'CollectionStage = "lawyers_letter" AND OutstandingAmount > 5000'

Stages of the default policy: new, reminder, first_call, home_visit, overdue_letter,
lawyers_letter, credit_bureau, litigation, enforcement. Statuses: active, paused (a plan, a
promise or a hold), closed. Outstanding amounts are in major units (CNY 10000 = 10000).
"""

SIMULATE_HELP = """\
Runs both policies over one synthetic portfolio on the real case workflows (time-skipping Temporal
test server, sandbox gateway, a temporary database; nothing touches the local stack), with
simulated borrowers answering through the same updates operators use, and writes a report
(report.md with PNG plots, summary.json) with the figures per policy side by side.

Example:
  python starter.py simulate --policy default --challenger policies/challenger-early-legal.toml \\
      --loans 10000 --days 365 --seed 7
"""


def dump(obj: Any) -> str:
    if isinstance(obj, BaseModel):
        return obj.model_dump_json(indent=2)
    if isinstance(obj, list) and obj and isinstance(obj[0], BaseModel):
        return json.dumps([o.model_dump(mode="json") for o in obj], indent=2, ensure_ascii=False)
    return json.dumps(obj, indent=2, ensure_ascii=False, default=str)


def repo():
    from db.engine import make_engine
    from db.repo import Repo

    return Repo(make_engine())


async def client():
    from infra import tracing
    from infra.temporal import connect

    tracing.setup("collections-cli")  # OTEL_EXPORTER_OTLP_ENDPOINT set: the CLI's inputs start their traces here
    return await connect()


def _pay_by(item, day) -> str:
    """A date the borrower pays by, and the last day it runs to (moved past a rest day: 民法典 art. 203)."""
    if item.last_day is None:
        return f"due {day}"
    moved = f", moved from {item.moved_from} (a rest day)" if item.moved_from else ""
    waits = f", may move: the {item.waits_for_year} calendar is not recorded yet" if item.waits_for_year else ""
    return f"due {day}, pay by 24:00 on {item.last_day}{moved}{waits}"


def show_status(st) -> str:
    lines = [
        f"{st.workflow_id}  {st.status.upper()}  stage={st.stage}" + (f"  outcome={st.outcome}" if st.outcome else ""),
        f"  DPD {st.dpd} ({st.bucket}) · risk class {st.risk_class}"
        f" · policy {st.policy} {st.policy_version} · segment {st.segment}",
        f"  current balance {st.currency} {st.outstanding['total']} (principal {st.outstanding['principal']}, "
        f"interest {st.outstanding['interest']}, fees {st.outstanding['fees']}) · paid {st.total_paid}",
        f"  next: {st.next_action.what}" + (f" at {utc_text(st.next_action.at)} UTC" if st.next_action.at else ""),
    ]
    if st.holds:
        lines.append("  holds: " + ", ".join(h.kind for h in st.holds))
    if st.write_off or st.write_off_deferred:
        lines.append(f"  write-off (核销): {st.write_off or 'deferred: ' + str(st.write_off_deferred)}; the case stays open")
    if st.reversed_payments or st.reopened_from:
        lines.append(
            "  reversed payments: "
            + (", ".join(st.reversed_payments) or "none")
            + (f" · reopened from run(s) {', '.join(st.reopened_from)}" if st.reopened_from else "")
        )
    if st.plan:
        lines.append(f"  plan: {st.plan.kind} {st.plan.status}, {len(st.plan.schedule)} payment(s)")
        lines += [f"    {_pay_by(i, i.due)}" for i in st.plan.schedule[:6]]
        if len(st.plan.schedule) > 6:
            lines.append(f"    ... {len(st.plan.schedule) - 6} more (status --json lists them all)")
        if st.plan.terms:
            lines.append(f"    terms: {st.plan.terms}")
    if st.promise:
        lines.append(f"  promise: {st.promise.status}, {_pay_by(st.promise, st.promise.date)}")
    if st.restructuring:
        r = st.restructuring
        lines.append(
            f"  restructured {r.on}: observation period to {r.observation_ends}, class before it {r.before}"
            + (f", broken {r.broken_on}" if r.broken_on else "")
            + f" · {st.risk_basis}"
        )
    for x in st.limitation_suspensions:
        lines.append(f"  limitation suspended (民法典 art. 194): {x.cause} {x.starts_on} to {x.ends_on} ({x.reference})")
    if st.contacts:
        lines.append("  contacts: " + ", ".join(f"{k}={v}" for k, v in sorted(st.contacts.items())))
    if st.legal_clocks:  # each clock with its rule's source (domain/legal.py)
        lines.append("  legal clocks:")
        lines += [
            f"    {c.name} {c.kind}: {c.note or (f'{c.at:%Y-%m-%d %H:%M}Z' if c.at else 'unknown')}"
            + (f" (restarted {c.restarted_on}: {c.restart_cause})" if c.restarted_on else "")
            + f" [{c.source}]"
            for c in st.legal_clocks
        ]
    elif st.limitation_ends:
        lines.append(
            f"  limitation period ends {st.limitation_ends:%Y-%m-%d}"
            + (f" · credit report dispute answer due {st.dispute_answer_due:%Y-%m-%d}" if st.dispute_answer_due else "")
        )
    if st.calendars:
        lines.append("  calendars the legal clocks count with: " + "; ".join(st.calendars))
    if st.decisions:
        lines.append("  latest contact decisions:")
        lines += [
            f"    {d.at:%Y-%m-%d %H:%M} {d.step}/{d.action}: {'allowed' if d.allowed else 'REFUSED'} ({d.rule})"
            + ("" if d.allowed else f" {d.reason}" + (f"; asks again {d.retry_at:%Y-%m-%d %H:%M}" if d.retry_at else ""))
            for d in st.decisions[-5:]
        ]

    def who(actor: str | None) -> str:
        if not actor:
            return ""
        op, _, role = actor.partition(":")
        return f" [by {st.names.get(op, op)} as {role}]"

    p = st.pending_approval
    if p is not None:
        lines.append(
            f"  WAITING FOR APPROVAL: {p.summary}, proposed by {st.names.get(p.maker.operator_id, p.maker.operator_id)}"
            f" ({p.maker.role}) at {utc_text(p.at)} UTC; expires {utc_text(p.expires_at)} UTC"
        )
    lines.append("  latest events:")
    lines += [f"    {e.at:%Y-%m-%d %H:%M} {e.kind} {e.detail}{who(e.actor)}" for e in st.events[-8:]]
    return "\n".join(lines)


def show_cases(items: list[visibility.CaseSummary]) -> str:
    def when(t: dt.datetime | None) -> str:
        return utc_text(t) if t else "-"

    # a closed case has no next action and no hold to act on: shown as "-" (list_cases leaves them out)
    rows = [
        (
            c.workflow_id,
            c.stage or "-",
            c.status or "-",
            "-" if c.on_hold is None else ("yes" if c.on_hold else "no"),
            c.outstanding or "-",
            when(c.next_action_at),
        )
        for c in items
    ]
    head = ("WORKFLOW ID", "STAGE", "STATUS", "ON HOLD", "OUTSTANDING", "NEXT ACTION AT (UTC)")
    widths = [max(len(str(r[i])) for r in [head, *rows]) for i in range(len(head))]
    fmt = "  ".join(f"{{:{'>' if i == 4 else '<'}{w}}}" for i, w in enumerate(widths))
    out = [fmt.format(*head), *(fmt.format(*r) for r in rows)]
    out.append(f"{len(items)} case(s)")
    return "\n".join(out)


def show_import(s: portfolio.ImportSummary, listed: int = 50) -> str:
    if s.dry_run:
        lines = [f"checked {s.file}: {s.rows} row(s), {s.valid} valid, {s.rejected} rejected; nothing was changed (dry run)"]
    else:
        lines = [
            f"imported {s.file}: {s.rows} row(s) in {s.seconds:.1f}s ({s.rows_per_second:.0f} rows/s)",
            f"  started          {s.started}",
            f"  already running  {s.already_running}",
            f"  rejected         {s.rejected}",
        ]
        if s.failed:
            lines.append(f"  not started      {s.failed} (Temporal error; run the import again)")
        if s.started == 0 and s.already_running and not s.failed:
            lines.append("nothing new started: every valid loan's case was already running")
    if s.rejections:
        lines.append("rejected rows:" if s.rejected else "problems:")
        lines += [f"  {r}" for r in s.rejections[:listed]]
        more = len(s.rejections) - listed + s.rejections_not_listed
        if more > 0:
            lines.append(f"  ... and {more} more (use --json for all)")
    return "\n".join(lines)


async def cmd_import(a: argparse.Namespace) -> int:
    path = a.file
    progress_bar = None
    portfolio.read_portfolio(path, a.policy).close()  # file, header and policy errors before anything else
    c, r = (None, None) if a.dry_run else (await client(), repo())
    if not a.json and sys.stderr.isatty():
        from rich.console import Console
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

        progress_bar = Progress(
            TextColumn("importing"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=Console(stderr=True),
            transient=False,
        )
        task = progress_bar.add_task("import", total=portfolio.count_rows(path))
        progress_bar.start()
    try:
        summary = await portfolio.import_portfolio(
            c,
            r,
            path,
            policy=a.policy,
            concurrency=a.concurrency,
            dry_run=a.dry_run,
            progress=(lambda n: progress_bar.advance(task, n)) if progress_bar else None,
        )
    finally:
        if progress_bar is not None:
            progress_bar.stop()
    print(dump(summary) if a.json else show_import(summary))
    return 1 if summary.rejected or summary.failed else 0


async def cmd_check(a: argparse.Namespace) -> int:
    """`check`: every official holiday calendar file loads, and next year's is there (warned from 1 November).
    0 when all is well, 1 with a warning (a file missing soon or now), 2 when a file is invalid."""
    from zoneinfo import ZoneInfo

    from app import calendars
    from domain.errors import InvalidInput

    calendars.refresh_quietly(repo(), announce=False)  # the approved database years count as the worker counts them
    today = a.today or dt.datetime.now(ZoneInfo("Asia/Shanghai")).date()
    years = calendar.years_available()
    try:
        loaded = [calendar.year_calendar(y) for y in years]
    except InvalidInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    warning = calendar.missing_warning(today)
    left = calendar.days_of_calendar_left(today)
    if a.json:
        print(
            dump(
                {
                    "today": today.isoformat(),
                    "years": years,
                    "days_left": left,
                    "warning": warning,
                    "sources": {c.year: f"{c.title} ({c.number}, {c.published})" for c in loaded},
                    "in_force": {c.year: c.in_force for c in loaded},
                }
            )
        )
    else:
        for c in loaded:
            print(
                f"calendar {c.year}: {c.title} {c.number} of {c.published} ({len(c.rest)} rest days in breaks, "
                f"{len(c.working)} make-up working days) [{c.in_force}]"
            )
        print(f"{left} day(s) of official calendar left from {today}")
        if warning:
            print(f"WARNING {warning}", file=sys.stderr)
    return 1 if warning else 0


async def cmd_simulate(a: argparse.Namespace) -> int:
    from sim.run import main as simulate

    return await simulate(a)


async def cmd_payments(a: argparse.Namespace) -> int:
    items = inputs.payments(repo(), loan_id=a.loan, unapplied=a.unapplied)
    if a.json:
        print(dump(items))
    else:
        print(f"{'payment':<20} {'loan':<14} {'amount':>14} {'status':<10} paid at")
        for i in items:
            print(
                f"{i['payment_id']:<20} {i['loan_id']:<14} {i['currency'] + ' ' + i['amount']:>14}"
                f" {i['status']:<10} {i['paid_at']}"
            )
        print(f"{len(items)} payment(s)")
    return 0


async def cmd_list(a: argparse.Namespace) -> int:
    visibility.check_filters(repo(), stage=a.stage, segment=a.segment, policy=a.policy)
    query = visibility.visibility_query(
        stage=a.stage,
        status=a.status,
        on_hold=a.on_hold,
        min_amount=a.min_amount,
        segment=a.segment,
        policy=a.policy,
        query=a.query,
    )
    items = await visibility.list_cases(await client(), query, a.limit)
    print(dump([i.model_dump(mode="json") for i in items]) if a.json else show_cases(items))
    return 0


async def cmd_count(a: argparse.Namespace) -> int:
    r = repo()
    visibility.check_filters(r, stage=a.stage, segment=a.segment, policy=a.policy)
    query = visibility.visibility_query(
        stage=a.stage,
        status=a.status,
        on_hold=a.on_hold,
        min_amount=a.min_amount,
        segment=a.segment,
        policy=a.policy,
        query=a.query,
    )
    result = await visibility.count_by(await client(), r, a.by, query)
    if a.json:
        print(dump(result))
    else:
        width = max(len(a.by.upper()), *(len(v) for v in result.counts), len("(other)"))
        print(f"{a.by.upper():<{width}}  CASES")
        for value, n in result.counts.items():
            print(f"{value:<{width}}  {n:>5}")
        if result.other:
            print(f"{'(other)':<{width}}  {result.other:>5}")
        print(f"{result.total} case(s)")
    return 0


async def cmd_start(a: argparse.Namespace) -> int:
    inp = opening.case_input(
        loan_id=a.loan_id,
        borrower_id=a.borrower_id,
        principal=a.principal,
        interest=a.interest,
        fees=a.fees,
        currency=a.currency,
        due_date=a.due_date,
        timezone=a.timezone,
        segment=a.segment,
        product=a.product,
        guarantor_id=a.guarantor_id,
        policy=a.policy,
    )
    contact = (
        opening.Contact(name=a.name, phone=a.phone, email=a.email, address=a.address, id_number=a.id_number, language=a.language)
        if a.name
        else None
    )
    result = await opening.open_case(await client(), repo() if contact else None, inp, contact)
    print(dump({"workflow_id": result.workflow_id, "started": result.started}) if a.json else result.message)
    return 0


async def cmd_status(a: argparse.Namespace) -> int:
    loan_id = errors.check_id(a.loan_id)  # checked before connecting
    st = await visibility.case_status(await client(), loan_id, repo())
    if not st.live:  # the case did not answer its query: the database's projection, said plainly (exit 4)
        print(f"warning: the live state of {loan_id} could not be read: {st.unreadable}", file=sys.stderr)
        print("warning: shown is what the database last recorded", file=sys.stderr)
    print(dump(st) if a.json else show_status(st))
    return 0 if st.live else NOT_LIVE


async def cmd_apply_unapplied(a: argparse.Namespace) -> int:
    loan_id = errors.check_id(a.loan_id)
    outcomes = await inputs.apply_unapplied(await client(), repo(), loan_id, a.payment_id or None)
    print(dump(outcomes) if a.json else "\n".join(o.message for o in outcomes))
    return 0


async def cmd_pay(a: argparse.Namespace) -> int:
    loan_id = errors.check_id(a.loan_id)
    outcome = await inputs.record_payment(
        await client(), repo(), loan_id, payment_id=a.payment_id, amount=a.amount, currency=a.currency, paid_at=a.paid_at
    )
    print(dump(outcome) if a.json else outcome.message)
    return 0


async def cmd_reverse(a: argparse.Namespace) -> int:
    loan_id = errors.check_id(a.loan_id)
    out = await reversal.reverse_payment(await client(), loan_id, payment_id=a.payment_id, reason=a.reason or "", at=a.at)
    print(dump(out) if a.json else out.message)
    return 0


async def cmd_hold(a: argparse.Namespace) -> int:
    fields = {f: getattr(a, f, None) for f in FIELDS[a.command]}
    loan_id = errors.check_id(a.loan_id)
    result = await inputs.place_hold(await client(), repo(), loan_id, fields)
    print(dump(result) if a.json else result.message)
    return 0


async def cmd_update(a: argparse.Namespace) -> int:
    """promise, plan, release, outcome: one update to the case, its fields named in FIELDS."""
    fields = {f: getattr(a, f, None) for f in FIELDS[a.command]}
    loan_id = errors.check_id(a.loan_id)
    result = await inputs.send_update(await client(), loan_id, a.command, fields)
    print(dump(result) if a.json else result.message)
    return 0


# command -> the input model's fields the command line passes on (argparse dests of the same names): from the one
# table of inputs, less those only the application layer sets
CLI_SKIPPED = ("actor", "approved", "task_id")
FIELDS = {
    c: tuple(f for f in BY_COMMAND[c].model.model_fields if f not in CLI_SKIPPED)
    for c in ("promise", "plan", "hold", "release", "outcome", "close", "confirm-write-off", "suspend")
}


def choices_of(model: type, field: str) -> list[str]:
    """The values a model's Literal field takes: the command line's choices, so they cannot drift from the model."""
    return list(typing.get_args(model.model_fields[field].annotation))


LOCAL_ADMIN_HOSTS = ("localhost", "127.0.0.1", "::1", "[::1]")


def resolve_caller(a: argparse.Namespace):
    """The operator the command acts as: --token or COLLECTIONS_TOKEN, checked against the database; without
    one, on the local dev stack only (Temporal on loopback, COLLECTIONS_LOCAL_ADMIN not 0), the local admin,
    recorded as `local-admin` on every step it takes."""
    from access.operators import Operators
    from access.permissions import ROLES, Caller, Forbidden

    cfg = load(CliSettings)
    token = getattr(a, "token", None) or cfg.token
    if token:
        caller = Operators(repo()).authenticate(token)
        if caller is None:
            raise Forbidden("the token is unknown, expired or revoked (or its operator disabled)")
        caller.via = "cli-token"
        return caller
    host = cfg.temporal_address.rsplit(":", 1)[0]
    if host in LOCAL_ADMIN_HOSTS and cfg.local_admin:
        return Caller("local-admin", ROLES, via="local-admin")
    raise Forbidden(
        "give --token or set COLLECTIONS_TOKEN (an operator's token: starter.py operators token NAME); "
        "only the local dev stack may act without one"
    )


# commands that act on no case and need no operator: an in-process what-if run; the jobs' schedules (deploy
# tooling, as migrations are: whoever may reach the Temporal namespace may change its schedules with the temporal
# CLI anyway, and the jobs act on no case by an operator's decision)
NO_OPERATOR = {"simulate", "schedules"}


async def run(a: argparse.Namespace) -> int:
    from access.permissions import acting_as

    if a.command not in NO_OPERATOR:
        acting_as(resolve_caller(a))
    return await HANDLERS[a.command](a)


async def cmd_operators(a: argparse.Namespace) -> int:
    """operators add NAME --role R..., token NAME [--days N], revoke TOKEN_ID, disable NAME, list."""
    from access.operators import OperatorError, Operators
    from access.permissions import require

    require("operators.manage")
    store = Operators(repo())
    try:
        if a.action == "list":
            rows = store.list()
            if a.json:
                print(
                    dump(
                        [
                            {
                                "id": o.id,
                                "name": o.display_name,
                                "roles": list(o.roles),
                                "active": o.active,
                                "created_at": o.created_at,
                                "disabled_at": o.disabled_at,
                                "tokens": [{"id": t[0], "expires_at": t[1], "revoked_at": t[2]} for t in o.tokens],
                            }
                            for o in rows
                        ]
                    )
                )
            else:
                for o in rows:
                    live = [t for t in o.tokens if t[2] is None and t[1] > dt.datetime.now(dt.UTC)]
                    print(
                        f"{o.id}  {o.display_name:<24} {','.join(o.roles):<30} "
                        f"{'active' if o.active else 'disabled'}  live tokens: {', '.join(t[0] for t in live) or '-'}"
                    )
                print(f"{len(rows)} operator(s)")
            return 0
        if not a.target:
            raise BadInput("target", f"operators {a.action} needs a NAME" + (" or TOKEN_ID" if a.action == "revoke" else ""))
        if a.action == "add":
            o = store.add(a.target, a.role or [])
            print(
                dump({"id": o.id, "name": o.display_name, "roles": list(o.roles)})
                if a.json
                else f"added {o.id} ({', '.join(o.roles)}); issue a token with: starter.py operators token {o.id}"
            )
        elif a.action == "token":
            t = store.issue_token(a.target, a.days)
            print(
                dump({"token": t.token, "token_id": t.token_id, "operator_id": t.operator_id, "expires_at": t.expires_at})
                if a.json
                else f"{t.token}\n(token {t.token_id} of {t.operator_id}, expires {utc_text(t.expires_at)} UTC; "
                "shown once, only its hash is kept)"
            )
        elif a.action == "revoke":
            if not store.revoke(a.target):
                raise BadInput("token_id", f"no live token {a.target!r}")
            print(f"revoked {a.target}")
        elif a.action == "disable":
            if not store.disable(a.target):
                raise BadInput("operator", f"no operator {a.target!r}")
            print(f"disabled {a.target}")
    except OperatorError as exc:
        raise BadInput(exc.field, exc.reason) from None
    return 0


async def cmd_approvals(a: argparse.Namespace) -> int:
    items = await inputs.list_approvals(await client(), repo())
    if a.json:
        print(dump([i.model_dump(mode="json") for i in items]))
    else:
        for i in items:
            print(
                f"{i.loan_id:<14} {i.kind:<9} {i.summary}  (by {i.maker_name or i.maker}, {utc_text(i.at)} UTC; "
                f"expires {utc_text(i.expires_at)} UTC; may be approved by {', '.join(i.approver_roles)})"
            )
        print(f"{len(items)} waiting for your roles")
    return 0


async def cmd_decide(a: argparse.Namespace) -> int:
    loan_id = errors.check_id(a.loan_id)
    result = await inputs.decide(await client(), repo(), loan_id, a.command, a.note or "")
    print(dump(result) if a.json else result.message)
    return 0


def show_calendar_change(c) -> str:
    decided = f"; {c.status} by {c.checker} at {utc_text(c.decided_at)} UTC" if c.decided_at else ""
    return (
        f"{c.year}  {c.status.upper():<10} {c.title} {c.number} ({c.rest_days} rest days, {c.working_days} make-up "
        f"working days) sha256 {c.sha256[:12]}  added by {c.maker} at {utc_text(c.made_at)} UTC{decided}"
        + (f"  note: {c.note}" if c.note else "")
    )


async def cmd_calendars(a: argparse.Namespace) -> int:
    """calendars add FILE, list [--pending], approve YEAR, reject YEAR (role compliance; four-eyes)."""
    import dataclasses
    from pathlib import Path

    from app import calendars

    r = repo()
    if a.action == "list":
        items = calendars.changes(r, "pending" if a.pending else None)
        calendars.refresh(r, announce=False)
        years = calendar.years_available()
        in_force = {y: calendar.in_force(y) for y in years}
        if a.json:
            print(dump({"changes": [dataclasses.asdict(c) for c in items], "in_force": in_force}))
        else:
            for c in items:
                print(show_calendar_change(c))
            print(f"{len(items)} calendar change(s)" + (" waiting for approval" if a.pending else ""))
            for y, src in in_force.items():
                print(f"in force for {y}: {src}")
        return 0
    if not a.target:
        raise BadInput("target", f"calendars {a.action} needs " + ("a FILE" if a.action == "add" else "a YEAR"))
    if a.action == "add":
        path = Path(a.target)
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise BadInput("file", f"{a.target}: {exc.strerror or exc}") from None
        c = calendars.add(r, path.name, data, a.note or "")
        print(
            dump(dataclasses.asdict(c))
            if a.json
            else f"added {show_calendar_change(c)}\nnothing is in force until another operator with the role "
            f"compliance approves it: starter.py calendars approve {c.year}"
        )
        return 0
    if not a.target.isdigit() or len(a.target) != 4:
        raise BadInput("year", f"{a.target!r} is not a year (YYYY)")
    c = calendars.decide(r, int(a.target), a.action, a.note or "")
    print(
        dump(dataclasses.asdict(c))
        if a.json
        else f"{c.status} {show_calendar_change(c)}"
        + ("\nevery worker and API process has it in force within a minute" if c.status == "approved" else "")
    )
    return 0


async def cmd_schedules(a: argparse.Namespace) -> int:
    """schedules apply: create the daily jobs' schedules that are missing, update those that changed (a paused one
    stays paused); schedules list: each with its time, state and next run."""
    from app import schedules

    c = await client()
    if a.action == "apply":
        done = await schedules.apply(c, settings().task_queue)
        print(dump(done) if a.json else "\n".join(f"{sid}: {outcome}" for sid, outcome in done.items()))
        return 0
    items = await schedules.listing(c)
    if a.json:
        print(dump([dataclasses.asdict(i) for i in items]))
        return 0
    for i in items:
        state = f"PAUSED ({i.note})" if i.paused else "active"
        print(f"{i.id:<28} {i.workflow:<14} {i.at}  {state}  next {i.next_runs[0] if i.next_runs else '-'}")
    print(
        f"{len(items)} schedule(s) of {len(schedules.JOBS)}"
        + ("" if len(items) == len(schedules.JOBS) else ": run `schedules apply`")
    )
    return 0


async def cmd_restore_reconcile(a: argparse.Namespace) -> int:
    """After the database was restored from a backup: every case against it, and the gateway's deliveries against
    the contact rows (app/restore.py). Exit 0 when nothing is left for a person, 1 otherwise (listed)."""
    from app import restore

    deliveries: list = []
    if a.deliveries:
        try:
            data = json.loads(Path(a.deliveries).read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            print(f"error: deliveries: cannot read {a.deliveries}: {exc}", file=sys.stderr)
            return 2
        deliveries = data["items"] if isinstance(data, dict) and "items" in data else data
        if not isinstance(deliveries, list) or not all(
            isinstance(d, dict) and {"idempotency_key", "loan_id", "channel", "accepted_at"} <= set(d) for d in deliveries
        ):
            print(
                'error: deliveries: a JSON list (or {"items": [...]}) of deliveries with idempotency_key, loan_id, '
                "channel and accepted_at",
                file=sys.stderr,
            )
            return 2
    report = await restore.reconcile(await client(), repo(), deliveries)
    if a.json:
        print(dump(dataclasses.asdict(report)))
    else:
        print(report.summary())
        for line in report.for_a_person + report.unreadable:
            print(f"  - {line}")
    return 1 if report.for_a_person or report.unreadable else 0


def _date(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _datetime(text: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not an ISO date-time (2026-11-28T10:15:00+08:00)") from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(f"{text!r} has no UTC offset (add +08:00 or Z)")
    return value


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{value} must be at least 1")
    return value


class Parser(argparse.ArgumentParser):
    """argparse that says 'error: FIELD: reason' (exit 2), as every other bad input does."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # one line naming the field, then where the usage is: not the whole usage block before the reason
        if message.startswith("argument "):
            name, _, reason = message.removeprefix("argument ").partition(": ")
            flag = name.split("/")[0].lstrip("-").replace("-", "_")
            message = f"{flag}: {reason}"
        if "--json" in sys.argv:
            print(dump({"error": {"field": None, "reason": message}}))
        self.exit(2, f"error: {message}\n(usage: {self.prog} --help)\n")


# command -> handler, every command once; parser() declares each command's arguments under the same name.
HANDLERS: dict[str, Callable[[argparse.Namespace], Awaitable[int]]] = {
    "import": cmd_import,
    "list": cmd_list,
    "count": cmd_count,
    "start": cmd_start,
    "pay": cmd_pay,
    "promise": cmd_update,
    "plan": cmd_update,
    "hold": cmd_hold,
    "release": cmd_update,
    "outcome": cmd_update,
    "reverse": cmd_reverse,
    "close": cmd_update,
    "confirm-write-off": cmd_update,
    "suspend": cmd_update,
    "status": cmd_status,
    "simulate": cmd_simulate,
    "apply-unapplied": cmd_apply_unapplied,
    "payments": cmd_payments,
    "check": cmd_check,
    "operators": cmd_operators,
    "approvals": cmd_approvals,
    "approve": cmd_decide,
    "reject": cmd_decide,
    "calendars": cmd_calendars,
    "schedules": cmd_schedules,
    "restore-reconcile": cmd_restore_reconcile,
}


def parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    p = Parser(prog="starter.py", description=__doc__.split("\n\n")[0], epilog=__doc__.split("\n", 1)[1], formatter_class=raw)
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND", parser_class=Parser)

    def cmd(name: str, help: str, loan: bool = True, epilog: str | None = None) -> argparse.ArgumentParser:
        """A subcommand, with what every command takes: the loan's id (unless loan=False), --json and --token."""
        c = sub.add_parser(name, help=help, description=help, epilog=epilog, formatter_class=raw)
        if loan:
            c.add_argument("loan_id", metavar="LOAN_ID", help="the loan's id (its case is loan-LOAN_ID)")
        c.add_argument("--json", action="store_true", help="print the result as JSON")
        c.add_argument(
            "--token",
            help="act as the operator of this token (default: $COLLECTIONS_TOKEN; on the "
            "local dev stack, without one: the local admin)",
        )
        return c

    for add in COMMANDS:
        add(cmd)
    return p


# What a command's builder is given: cmd(name, help, loan=True, epilog=None) adds the subcommand and returns it.
Command = Callable[..., argparse.ArgumentParser]
HOLD_KINDS = choices_of(HoldIn, "kind")


def _import_command(cmd: Command) -> None:
    c = cmd("import", "import a portfolio CSV: write borrowers and loans, open one case per loan", loan=False, epilog=IMPORT_HELP)
    c.add_argument("file", metavar="FILE.csv", help="the portfolio file (UTF-8 CSV with a header row)")
    c.add_argument(
        "--policy",
        help="policy for every row (a name from policies/ or a .toml path); "
        "default: policies/<segment>.toml if it exists, else default",
    )
    c.add_argument("--dry-run", action="store_true", help="only check the file: report bad rows, change nothing")
    c.add_argument("--concurrency", type=_positive, default=50, help="cases opened at once (default 50)")


def _list_command(cmd: Command) -> None:
    c = cmd("list", "list cases, filtered by stage, status, hold, amount, segment or policy", loan=False, epilog=LIST_HELP)
    c.add_argument("--stage", help="only cases at this step, e.g. litigation")
    c.add_argument("--status", choices=list(visibility.STATUSES), help="active, paused (plan, promise or hold) or closed")
    hold = c.add_mutually_exclusive_group()
    hold.add_argument("--on-hold", dest="on_hold", action="store_const", const=True, help="only cases on hold")
    hold.add_argument("--not-on-hold", dest="on_hold", action="store_const", const=False, help="only cases not on hold")
    c.add_argument("--min-amount", help="only cases owing at least this much (major units), e.g. 10000")
    c.add_argument("--segment", help="only this segment, e.g. sme")
    c.add_argument("--policy", help="only cases on this policy, e.g. default")
    c.add_argument("--query", help="a raw Temporal visibility query, ANDed with the filters above")
    c.add_argument("--limit", type=_positive, default=100, help="at most this many cases (default 100)")


def _count_command(cmd: Command) -> None:
    c = cmd(
        "count",
        "count cases per stage, status, segment or policy (from the search attributes)",
        loan=False,
        epilog="One count query per value (the dev server does not take GROUP BY); the filters of `list` apply.\n\n"
        "Examples:\n  python starter.py count --by stage\n  python starter.py count --by status --segment sme",
    )
    c.add_argument("--by", required=True, choices=list(visibility.COUNT_BY), help="what to count by")
    c.add_argument("--stage", help="only cases at this step, e.g. litigation")
    c.add_argument("--status", choices=list(visibility.STATUSES))
    hold = c.add_mutually_exclusive_group()
    hold.add_argument("--on-hold", dest="on_hold", action="store_const", const=True, help="only cases on hold")
    hold.add_argument("--not-on-hold", dest="on_hold", action="store_const", const=False, help="only cases not on hold")
    c.add_argument("--min-amount", help="only cases owing at least this much (major units)")
    c.add_argument("--segment", help="only this segment")
    c.add_argument("--policy", help="only this policy")
    c.add_argument("--query", help="a raw Temporal visibility query, ANDed with the filters above")


def _start_command(cmd: Command) -> None:
    c = cmd(
        "start",
        "open the collection case of one delinquent loan",
        loan=False,
        epilog="Example:\n  python starter.py start --loan-id L1001 --borrower-id B77 --name 张伟 --phone 13812345678 \\\n"
        "      --principal 12000.00 --interest 640.50 --fees 30 --due-date 2026-10-15 --timezone Asia/Shanghai\n\n"
        'A case already running for the loan is left alone ("already running; nothing started").',
    )
    c.add_argument("--loan-id", required=True)
    c.add_argument("--borrower-id", required=True)
    c.add_argument("--guarantor-id")
    c.add_argument("--principal", required=True, help="outstanding principal, e.g. 12000.00")
    c.add_argument("--interest", default="0", help="outstanding interest")
    c.add_argument("--fees", default="0", help="outstanding fees")
    c.add_argument("--currency", default="CNY")
    c.add_argument("--due-date", required=True, type=_date, help="the missed due date, YYYY-MM-DD")
    c.add_argument("--timezone", default="Asia/Shanghai", help="the borrower's IANA time zone")
    c.add_argument("--segment", default="retail")
    c.add_argument("--product", default="personal_loan")
    c.add_argument(
        "--policy",
        help="a policy name from policies/ or a path to a .toml file "
        "(default: policies/<segment>.toml if it exists, else default)",
    )
    c.add_argument("--name", help="borrower's name (kept in the database only)")
    c.add_argument("--phone", help="borrower's mobile, e.g. 13812345678")
    c.add_argument("--email")
    c.add_argument("--address")
    c.add_argument("--id-number", help="resident identity card number")
    c.add_argument("--language", default="zh", choices=["zh", "en"], help="language of messages and letters")


def _pay_command(cmd: Command) -> None:
    c = cmd(
        "pay",
        "record a payment received from the borrower (idempotent by payment id)",
        epilog="A payment for a loan with no open case is kept in the ledger as unapplied.\n\n"
        "Example:\n  python starter.py pay L1001 --payment-id BANK-889 --amount 500.00",
    )
    c.add_argument("--payment-id", required=True, help="the bank's id of the payment (sending it twice applies it once)")
    c.add_argument("--amount", required=True, help="e.g. 500.00")
    c.add_argument("--currency", help="defaults to the loan's currency")
    c.add_argument("--paid-at", type=_datetime, help="when it was paid, ISO date-time with offset")


def _reverse_command(cmd: Command) -> None:
    c = cmd(
        "reverse",
        "reverse a payment (returned transfer, failed debit): the balance comes back; a case closed "
        "as paid by it reopens as a new run",
        epilog='Example:\n  python starter.py reverse L1001 --payment-id BANK-889 --reason "returned transfer"',
    )
    c.add_argument("--payment-id", required=True, help="the id of the payment to reverse")
    c.add_argument("--reason", required=True, help="why it was taken back")
    c.add_argument("--at", type=_datetime, help="when the bank learnt of it, ISO date-time with offset (default now)")


def _close_command(cmd: Command) -> None:
    c = cmd(
        "close",
        f"close a case by an operator's decision, with a reason ({', '.join(OPERATOR_OUTCOMES)})",
        epilog='Example:\n  python starter.py close L1001 --outcome sold --reason "portfolio sale 2026-11" --operator "Li Na"',
    )
    c.add_argument("--outcome", required=True, choices=list(OPERATOR_OUTCOMES))
    c.add_argument("--reason", required=True)
    c.add_argument("--operator")


def _confirm_write_off_command(cmd: Command) -> None:
    c = cmd(
        "confirm-write-off",
        "confirm a proposed write-off (核销): an accounting event; the case stays open",
        epilog='Example:\n  python starter.py confirm-write-off L1001 --approver "Chen Jie" --reference WO-2026-7',
    )
    c.add_argument("--approver", required=True)
    c.add_argument("--reference")


def _suspend_command(cmd: Command) -> None:
    c = cmd(
        "suspend",
        "record an obstacle that suspends the limitation period (民法典 art. 194; the legal role)",
        epilog="Example:\n  python starter.py suspend L1001 --cause no_heir_or_administrator --starts-on 2026-03-01 "
        "--ends-on 2026-09-30 --reference 公证书-2026-88",
    )
    c.add_argument("--cause", required=True, choices=sorted(SUSPENSION_CAUSES), help="the obstacle, as art. 194 lists them")
    c.add_argument("--starts-on", type=_date, required=True, help="the day the obstacle began")
    c.add_argument(
        "--ends-on", type=_date, required=True, help="the day it ended (record again with the same reference to correct)"
    )
    c.add_argument("--reference", required=True, help="the document it rests on")
    c.add_argument("--note")


def _promise_command(cmd: Command) -> None:
    c = cmd(
        "promise",
        "record a promise to pay: pauses the ladder until the date plus grace",
        epilog="Example:\n  python starter.py promise L1001 --amount 2000 --date 2026-12-05",
    )
    c.add_argument("--amount", required=True)
    c.add_argument("--date", required=True, type=_date)


def _plan_command(cmd: Command) -> None:
    c = cmd(
        "plan",
        "agree a repayment plan: deferral, instalments or interest waiver",
        epilog="Examples:\n  python starter.py plan L1001 --kind instalments --instalments 6 --first-due 2026-12-15\n"
        "  python starter.py plan L1001 --kind deferral --until 2027-01-31\n"
        "  python starter.py plan L1001 --kind interest_waiver --waiver-percent 30 --pay-by 2026-12-20",
    )
    c.add_argument("--kind", required=True, choices=choices_of(PlanIn, "kind"))
    c.add_argument("--until", type=_date, help="deferral: new due date for the whole balance")
    c.add_argument("--instalments", type=int, help="instalments: how many")
    c.add_argument("--first-due", type=_date, help="instalments: date of the first")
    c.add_argument("--interval-months", type=int, default=1)
    c.add_argument("--waiver-percent", type=int, default=0, help="share of outstanding interest waived on completion")
    c.add_argument("--pay-by", type=_date, help="interest_waiver: pay the rest by this date")


def _hold_command(cmd: Command) -> None:
    c = cmd(
        "hold",
        "stop contact: dispute, cease_contact, hardship (with --until), complaint; bankruptcy and deceased close the case",
        epilog='Example:\n  python starter.py hold L1001 --kind hardship --until 2027-02-01 --reference "lost job"',
    )
    c.add_argument("--kind", required=True, choices=HOLD_KINDS)
    c.add_argument("--until", type=_date, help="hardship: end date")
    c.add_argument("--reference", help="ticket or document reference")
    c.add_argument(
        "--received-on",
        type=_date,
        help="dispute: the day it was received (the credit-report answer is due 20 days after it, 征信业管理条例 art. 25)",
    )


def _release_command(cmd: Command) -> None:
    c = cmd(
        "release",
        "release a hold (a complaint needs --reviewer)",
        epilog='Example:\n  python starter.py release L1001 --kind complaint --reviewer "Wang Li"',
    )
    c.add_argument("--kind", required=True, choices=HOLD_KINDS)
    c.add_argument("--reviewer")
    c.add_argument("--resolution")


def _outcome_command(cmd: Command) -> None:
    c = cmd(
        "outcome",
        "record a call or visit outcome, or a court event",
        epilog="Examples:\n  python starter.py outcome L1001 --kind visit --outcome not_home\n"
        '  python starter.py outcome L1001 --kind court --outcome judgment --reference "(2026)沪0101民初123号" '
        "--effective-on 2026-12-01 --performance-ends 2026-12-11",
    )
    c.add_argument("--kind", required=True, choices=choices_of(OutcomeIn, "kind"))
    c.add_argument(
        "--outcome",
        required=True,
        help=f"call: {'|'.join(CALL_OUTCOMES)}; visit: {'|'.join(VISIT_OUTCOMES)}; court: {'|'.join(COURT_EVENTS)}",
    )
    c.add_argument("--amount", help="promise amount, or amount recovered by enforcement")
    c.add_argument("--date", type=_date, help="promise date")
    c.add_argument("--reference")
    c.add_argument("--effective-on", type=_date, help="judgment: the day it took effect")
    c.add_argument(
        "--performance-ends",
        type=_date,
        help="judgment: the last day of its performance period "
        "(enforcement is applied for after it, within 2 years, 民事诉讼法 art. 250)",
    )
    c.add_argument(
        "--served-on",
        type=_date,
        help="payment order: the day it was served (the 15-day objection window counts from the next day, 民事诉讼法 art. 227)",
    )


def _status_command(cmd: Command) -> None:
    cmd(
        "status",
        "show a case: stage, status, balances, holds, plan, next action, latest events",
        epilog="Example:\n  python starter.py status L1001 --json",
    )


def _simulate_command(cmd: Command) -> None:
    c = cmd(
        "simulate",
        "compare a challenger policy with the champion on a synthetic portfolio (what-if)",
        loan=False,
        epilog=SIMULATE_HELP,
    )
    c.add_argument("--policy", default="default", help="the champion policy: a name from policies/ or a .toml path")
    c.add_argument("--challenger", help="the challenger policy: a name or a .toml path (required unless --sweep)")
    c.add_argument("--loans", type=_positive, default=1000, help="loans in the portfolio (default 1000)")
    c.add_argument("--days", type=_positive, default=365, help="simulated days (default 365)")
    c.add_argument("--seed", type=int, default=7, help="same seed, same portfolio, same numbers (default 7)")
    c.add_argument("--out", help="report folder (default var/sim/CHAMPION-vs-CHALLENGER-seedS-NxDd)")
    c.add_argument(
        "--split",
        choices=["alternate", "hash"],
        default="alternate",
        help="how loans are shared between the policies (default alternate)",
    )
    c.add_argument(
        "--start",
        type=_date,
        help="simulated first day (temporal engine: in the future; default 1 January "
        "next year; direct engine: default the same, or 1 January of the latest year with an official "
        "holiday calendar on file)",
    )
    c.add_argument("--concurrency", type=_positive, default=64, help="case starts and updates in flight (default 64)")
    c.add_argument("--keep-db", action="store_true", help="keep the simulation's database in the report folder")
    c.add_argument(
        "--engine",
        choices=["direct", "temporal"],
        default="direct",
        help="direct (default): the pure cases on an event queue, in seconds; temporal: the real "
        "workflows on the time-skipping server (faithful, slow)",
    )
    c.add_argument("--workers", type=int, help="direct engine: processes (default: the core count)")
    c.add_argument(
        "--sweep",
        action="append",
        metavar="PATH=V1,V2,...",
        help="run the champion policy over a grid (direct engine), e.g. 'steps.home_visit.dpd=20,30,45' "
        "'plans.max_instalments=6,12'; repeat for more dimensions",
    )


def _apply_unapplied_command(cmd: Command) -> None:
    c = cmd(
        "apply-unapplied",
        "apply the loan's unapplied payments to its open case (after checking the case's "
        "opening balance does not already count them)",
        epilog="Payments that arrived while the loan had no open case are kept as unapplied and never applied\n"
        "on their own: the balance a new case opens with may already count them.\n\n"
        "Examples:\n  python starter.py apply-unapplied L1001\n"
        "  python starter.py apply-unapplied L1001 --payment-id PAY-77",
    )
    c.add_argument("--payment-id", action="append", help="only this payment (repeat for several); default: all")


def _check_command(cmd: Command) -> None:
    c = cmd(
        "check",
        "check the official holiday calendars: every file valid, next year's there (from 1 November)",
        loan=False,
        epilog="Exit status: 0 all well, 1 a calendar file is missing (soon or now), 2 a file is invalid.\n\n"
        "Example:\n  python starter.py check",
    )
    c.add_argument("--today", type=_date, help="check as of this day (default: today in Beijing)")


def _payments_command(cmd: Command) -> None:
    c = cmd(
        "payments",
        "list the payments ledger (e.g. payments received for loans with no open case)",
        loan=False,
        epilog="Example:\n  python starter.py payments --unapplied",
    )
    c.add_argument("--unapplied", action="store_true", help="only payments that found no open case")
    c.add_argument("--loan", help="only this loan")


def _approvals_command(cmd: Command) -> None:
    cmd(
        "approvals",
        "list what waits for approval that your roles may decide (four-eyes)",
        loan=False,
        epilog="Example:\n  python starter.py approvals --token $COLLECTIONS_TOKEN",
    )
    for verb in ("approve", "reject"):
        c = cmd(
            verb,
            f"{verb} what waits for approval in the loan's case (never your own proposal)",
            epilog=f"Example:\n  python starter.py {verb} L1001 --note 'checked the file'",
        )
        c.add_argument("--note", help="why (kept in the case's events)")


def _calendars_command(cmd: Command) -> None:
    c = cmd(
        "calendars",
        "official calendar years as data: add a year's file, list, approve or reject (role compliance, four-eyes)",
        loan=False,
        epilog="A year added here is validated as policies/calendars/ files are, waits until a second operator with\n"
        "the role compliance approves it, and is then in force on every worker and API process within a minute\n"
        "(it wins over a shipped file of the same year).\n\n"
        "Examples:\n  python starter.py calendars add cn-2027.toml --note 'from 国办发明电〔2026〕N号'\n"
        "  python starter.py calendars list --pending\n  python starter.py calendars approve 2027\n"
        "  python starter.py calendars reject 2027 --note 'wrong Spring Festival dates'",
    )
    c.add_argument("action", choices=["add", "list", "approve", "reject"])
    c.add_argument("target", nargs="?", metavar="FILE|YEAR")
    c.add_argument("--note", help="why (kept with the row)")
    c.add_argument("--pending", action="store_true", help="list: only what waits for approval")


def _schedules_command(cmd: Command) -> None:
    c = cmd(
        "schedules",
        "the daily jobs' Temporal Schedules: calendar watch, reconciliation, retention",
        loan=False,
        epilog="apply creates the missing schedules and updates the changed ones; a paused schedule stays paused.\n"
        "Pause or resume one with the temporal CLI:\n"
        '  temporal schedule toggle --schedule-id collections-retention --pause --reason "audit"\n'
        '  temporal schedule toggle --schedule-id collections-retention --unpause --reason "done"\n\n'
        "Examples:\n  python starter.py schedules apply\n  python starter.py schedules list --json",
    )
    c.add_argument("action", choices=["apply", "list"])


def _restore_command(cmd: Command) -> None:
    c = cmd(
        "restore-reconcile",
        "after a restore of the database from a backup: case rows, payments and holds from the cases, contacts from "
        "the gateway's delivery log",
        loan=False,
        epilog="Run it with the workers up and before the API takes inputs again; then send the payment feed again "
        "from the backup's time.\nExit 1 lists what a person must decide.\n\n"
        "Examples:\n  python starter.py restore-reconcile --deliveries outbox.json\n"
        "  curl -H 'Authorization: Bearer <gateway key>' 'http://gateway/outbox?limit=100000' > outbox.json",
    )
    c.add_argument("--deliveries", metavar="FILE", help="the gateway's delivery log since the backup (JSON)")


def _operators_command(cmd: Command) -> None:
    c = cmd(
        "operators",
        "manage operators and their tokens (role admin)",
        loan=False,
        epilog="Examples:\n  python starter.py operators add 'Wang Li' --role supervisor --role collector\n"
        "  python starter.py operators token 'Wang Li' --days 30     # prints a new token once\n"
        "  python starter.py operators revoke 3f9a1c2b7d10\n  python starter.py operators list",
    )
    c.add_argument("action", choices=["add", "token", "revoke", "disable", "list"])
    c.add_argument("target", nargs="?", metavar="NAME|TOKEN_ID")
    c.add_argument("--role", action="append", help="add: a role (repeat for several)")
    c.add_argument("--days", type=_positive, default=90, help="token: days until it expires (default 90)")


# The commands, in the order `starter.py --help` lists them.
COMMANDS: tuple[Callable[[Command], None], ...] = (
    _import_command,
    _list_command,
    _count_command,
    _start_command,
    _pay_command,
    _reverse_command,
    _close_command,
    _confirm_write_off_command,
    _suspend_command,
    _promise_command,
    _plan_command,
    _hold_command,
    _release_command,
    _outcome_command,
    _status_command,
    _simulate_command,
    _apply_unapplied_command,
    _check_command,
    _payments_command,
    _approvals_command,
    _calendars_command,
    _schedules_command,
    _restore_command,
    _operators_command,
)


STACK_VARS = {"address": "TEMPORAL_ADDRESS", "namespace": "TEMPORAL_NAMESPACE", "task_queue": "TEMPORAL_TASK_QUEUE"}


def use_running_stack(environ=os.environ) -> dict[str, str]:
    """In a new shell after `make demo`: connect to the running local stack, at the address, namespace and task
    queue in its own record (var/stack.json), unless the environment names a Temporal (variables or a profile)."""
    if any(environ.get(v) for v in (*STACK_VARS.values(), "TEMPORAL_PROFILE", "TEMPORAL_CONFIG_FILE")):
        return {}
    from devstack.stack import running_stack

    state = running_stack() or {}
    found = {var: str(state[key]) for key, var in STACK_VARS.items() if state.get(key)}
    environ.update(found)
    settings.cache_clear()  # read again with the stack's task queue
    return found


NOT_LIVE = 4  # `status`: the case did not answer its query; the output is the database's projection


def main(argv: list[str] | None = None) -> int:
    from access.permissions import Forbidden

    a = parser().parse_args(argv)
    if a.command != "simulate":
        use_running_stack()
    try:
        calendar.use_folder(settings().calendar_dir)
        return asyncio.run(run(a))
    except Forbidden as exc:
        print(f"error: authorization: {exc.reason}", file=sys.stderr)
        if getattr(a, "json", False):
            print(dump({"error": {"field": "authorization", "reason": exc.reason}}))
        return 3
    except BadInput as exc:
        print(f"error: {exc}", file=sys.stderr)
        if getattr(a, "json", False):
            print(dump({"error": {"field": exc.field, "reason": exc.reason}}))
        # who may decide is a refusal of the caller (exit 3, as docs/integrating.md says), not bad input
        return 3 if exc.field in ("authorization", "checker") else 2
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        raise
    except KeyboardInterrupt:
        print("interrupted: inputs already sent stand; an import can be run again safely", file=sys.stderr)
        return 130
    except Exception as exc:  # noqa: BLE001 - an operator gets one line, not a traceback
        from temporalio.service import RPCError

        if isinstance(exc, errors.Busy):
            msg = str(exc)
        elif isinstance(exc, RuntimeError) and "connect" in str(exc).lower():
            msg = f"cannot reach Temporal at {settings().temporal_address}: {exc}"
        elif isinstance(exc, RPCError):
            msg = f"Temporal: {exc.message}"
        else:
            msg = f"{type(exc).__name__}: {exc}"
        print(f"error: {msg}", file=sys.stderr)
        if getattr(a, "json", False):
            print(dump({"error": {"field": None, "reason": msg}}))
        return 1


def quiet_on_closed_pipe() -> int:
    """The reader went away (`starter.py list --json | head -1`): stop quietly, as the Python docs advise
    (point stdout at /dev/null so the interpreter's last flush does not fail again), exit 1."""
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, sys.stdout.fileno())
    return 1


if __name__ == "__main__":
    try:
        code = main()
        sys.stdout.flush()
    except BrokenPipeError:
        code = quiet_on_closed_pipe()
    from infra.process import leave

    leave(code)
