"""Reading cases: one case's status (a query) and lists through Temporal visibility (search attributes)."""

from __future__ import annotations

import asyncio
import datetime as dt
import re

from pydantic import BaseModel, Field
from temporalio.client import Client, WorkflowExecutionStatus, WorkflowQueryFailedError
from temporalio.service import RPCError, RPCStatusCode

from access.permissions import require
from app.errors import DECIMAL_RE, KEYWORD_RE, BadInput, NotFound, check_id
from domain.errors import InvalidInput
from domain.models import CaseStatus, workflow_id
from domain.policy import POLICY_DIR, load_policy
from workflows import search
from workflows.case import CollectionCase

QUERY_SECONDS = 10.0  # a case that has not answered its query by then is read from the projection


async def case_status(client: Client, loan_id: str, repo=None) -> CaseStatus:
    """The case's status; with the system of record, the display names of the operators who took its human
    steps (names are never in workflow history: events carry operator ids).

    When the case cannot answer its query (its history does not replay on this code, its worker is gone, the
    server is unreachable), the status comes from the database's projection instead, with `live` False and
    `unreadable` saying why; the failure is logged with the workflow id and counted."""
    require("case.read")
    check_id(loan_id)
    wid = workflow_id(loan_id)
    try:
        st = await asyncio.wait_for(client.get_workflow_handle(wid).query(CollectionCase.status), QUERY_SECONDS)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound("loan_id", f"no case for loan {loan_id}") from None
        fallback = await _projected(repo, loan_id, wid, f"Temporal: {exc.message}")
        if fallback is None:
            raise
        return fallback
    except (WorkflowQueryFailedError, TimeoutError) as exc:
        reason = f"the case did not answer within {QUERY_SECONDS:.0f}s" if isinstance(exc, TimeoutError) else str(exc)
        fallback = await _projected(repo, loan_id, wid, reason)
        if fallback is None:
            raise
        return fallback
    if repo is not None:
        ids = {e.actor.split(":", 1)[0] for e in st.events if e.actor}
        if st.pending_approval is not None:
            ids.add(st.pending_approval.maker.operator_id)
        ids = {i for i in ids if i.startswith("op-")}
        if ids:
            from access.operators import Operators

            st = st.model_copy(update={"names": await asyncio.to_thread(Operators(repo).names, ids)})
    return st


async def _projected(repo, loan_id: str, wid: str, reason: str) -> CaseStatus | None:
    """The case as the database last recorded it, marked as not live; None without a database or a case row."""
    import structlog

    from infra import metrics

    structlog.get_logger("app.visibility").warning(
        "case query failed; answered from the projection", workflow_id=wid, loan_id=loan_id, reason=reason[:300]
    )
    metrics.QUERY_FAILURES.inc()
    if repo is None:
        return None
    return await asyncio.to_thread(projected_status, repo, loan_id, wid, reason)


def projected_status(repo, loan_id: str, wid: str, reason: str) -> CaseStatus | None:
    """A CaseStatus from the case row, the loan, the holds and the audit trail in the database."""
    from domain.dates import bucket, days_past_due
    from domain.models import Event, Hold, NextAction
    from domain.money import format_amount

    row, loan = repo.case_row(wid), repo.loan(loan_id)
    if row is None or loan is None:
        return None
    cur = row.currency
    holds = [Hold(kind=h.kind, placed_at=h.placed_at, until=h.until, reference=h.reference) for h in repo.holds_of_case(wid)]
    events = [Event(at=e.at, kind=e.kind, detail=e.detail, actor=e.actor, seq=i) for i, e in enumerate(repo.events(wid), 1)]
    borrower = repo.borrower(loan.borrower_id)
    dpd = max(0, days_past_due(loan.due_date, borrower.timezone if borrower else "Asia/Shanghai", dt.datetime.now(dt.UTC)))
    return CaseStatus(
        loan_id=loan_id,
        workflow_id=wid,
        policy=loan.policy,
        policy_version="",
        segment=loan.segment,
        stage=row.stage,
        status=row.status,  # active, paused or closed, as the workflow projected it
        outcome=row.outcome,
        dpd=dpd,
        bucket=bucket(dpd),
        currency=cur,
        outstanding={"total": format_amount(row.outstanding, cur), "principal": "?", "interest": "?", "fees": "?"},
        total_paid=format_amount(row.total_paid, cur),
        holds=holds,
        plan=None,
        promise=None,
        awaiting=None,
        next_action=NextAction(what="unknown: the live state could not be read"),
        steps_done=[],
        contacts={},
        events=events[-50:],
        as_of=row.updated_at,
        live=False,
        unreadable=reason,
    )


class CaseSummary(BaseModel):
    """One case as Temporal visibility sees it (its search attributes)."""

    workflow_id: str
    loan_id: str
    run_id: str
    execution: str = Field(description="the workflow's own state: Running, Completed, Terminated, ...")
    stage: str | None
    status: str | None = Field(description="active, paused or closed")
    on_hold: bool | None
    outstanding: str | None = Field(description="outstanding amount in major units (OutstandingAmount)")
    next_action_at: dt.datetime | None
    delinquent_since: dt.datetime | None
    policy: str | None
    segment: str | None
    started_at: dt.datetime | None


STATUSES = ("active", "paused", "closed")


def known_stages() -> list[str]:
    """Every stage a case can be at: 'new' and the stages of the policies in policies/."""
    names = {"new"}
    for path in sorted(POLICY_DIR.glob("*.toml")):
        try:
            names |= {step.stage for step in load_policy(path.stem).steps}
        except InvalidInput:
            continue
    return sorted(names)


def known_names(repo, column: str) -> list[str] | None:
    """The segments (or policies) there are: the loans' in the system of record, plus the default segment or
    the policy files; None when the system of record cannot be read (then nothing is refused)."""
    from sqlalchemy import distinct, select
    from sqlalchemy.exc import SQLAlchemyError

    from db.tables import LoanRow

    names = {"retail"} if column == "segment" else {p.stem for p in POLICY_DIR.glob("*.toml")}
    try:
        with repo.session() as s:
            names |= {v for v in s.execute(select(distinct(getattr(LoanRow, column)))).scalars() if v}
    except SQLAlchemyError:
        return None
    return sorted(names)


def check_filters(repo, *, stage: str | None = None, segment: str | None = None, policy: str | None = None) -> None:
    """A stage, segment or policy nobody has is a typo: refused with the names there are (not '0 cases')."""
    if stage is not None and stage not in (stages := known_stages()):
        raise BadInput("stage", f"{stage!r} is not a stage of any policy (stages: {', '.join(stages)})")
    for field, value in (("segment", segment), ("policy", policy)):
        if value is None or repo is None or (names := known_names(repo, field)) is None:
            continue
        if value not in names:
            raise BadInput(field, f"{value!r} is not a known {field} (known: {', '.join(names)})")


def visibility_query(
    *,
    stage: str | None = None,
    status: str | None = None,
    on_hold: bool | None = None,
    min_amount: str | None = None,
    segment: str | None = None,
    policy: str | None = None,
    query: str | None = None,
) -> str:
    """A Temporal visibility query over collection cases from the filters (all ANDed)."""
    parts = ['WorkflowType = "CollectionCase"']
    if stage is not None:
        if not re.fullmatch(r"[a-z][a-z0-9_]{0,39}", stage):
            raise BadInput("stage", f"{stage!r} is not a stage name (e.g. first_call, litigation)")
        parts.append(f'{search.STAGE.name} = "{stage}"')
    if status is not None:
        if status not in STATUSES:
            raise BadInput("status", f"{status!r} is not one of {', '.join(STATUSES)}")
        parts.append(f'{search.STATUS.name} = "{status}"')
    if on_hold is not None:
        parts.append(f"{search.ON_HOLD.name} = {'true' if on_hold else 'false'}")
    if min_amount is not None:
        if not isinstance(min_amount, str) or not DECIMAL_RE.fullmatch(min_amount.strip()):
            raise BadInput("min_amount", f"{min_amount!r} is not a plain decimal amount (e.g. 10000 or 2500.50)")
        parts.append(f"{search.OUTSTANDING.name} >= {min_amount.strip()}")
    for name, value, key in (("segment", segment, search.SEGMENT), ("policy", policy, search.POLICY)):
        if value is not None:
            if not KEYWORD_RE.fullmatch(value):
                raise BadInput(name, f"{value!r} is not a {name} name (1-32 letters, digits, _ or -)")
            parts.append(f'{key.name} = "{value}"')
    if query is not None:
        q = query.strip()
        if not q:
            raise BadInput("query", "is empty")
        if len(q) > 2000 or any(ord(c) < 32 for c in q):
            raise BadInput("query", "must be one line of at most 2000 characters")
        check_framed(q)
        parts.append(f"({q})")
    return " AND ".join(parts)


def check_framed(q: str) -> None:
    """The raw query goes inside `WorkflowType = "CollectionCase" AND (...)`: it may only narrow that list.
    Its parentheses must balance without ever closing the frame's (`) OR (WorkflowType != "CollectionCase"`
    would list other teams' workflows), and its quotes must close; ORDER BY is not a filter."""
    depth, quote, escaped = 0, "", False
    for i, c in enumerate(q):
        if quote:
            if escaped:
                escaped = False
            elif c == "\\":
                escaped = True
            elif c == quote:
                quote = ""
            continue
        if c in "'\"`":
            quote = c
        elif c == "(":
            depth += 1
        elif c == ")":
            depth -= 1
            if depth < 0:
                raise BadInput(
                    "query",
                    f"closes a parenthesis it did not open (at character {i + 1}): the query can only narrow the list of cases",
                )
    if quote:
        raise BadInput("query", f"has an unclosed {quote} quote")
    if depth:
        raise BadInput("query", f"leaves {depth} parenthesis(es) open")
    if re.search(r"\border\s+by\b", re.sub(r"(['\"`])(?:\\.|(?!\1).)*\1", "", q), re.IGNORECASE):
        raise BadInput("query", "ORDER BY is not a filter; cases are listed newest first")


async def list_cases(client: Client, query: str, limit: int = 100) -> list[CaseSummary]:
    require("case.list")
    if not 1 <= limit <= 10_000:
        raise BadInput("limit", f"{limit} is not between 1 and 10000")
    out: list[CaseSummary] = []
    try:
        async for wf in client.list_workflows(query, limit=limit, page_size=min(limit, 1000)):
            sa = wf.typed_search_attributes
            amount = sa.get(search.OUTSTANDING)
            status = sa.get(search.STATUS)
            closed = status == "closed" or (wf.status is not None and wf.status != WorkflowExecutionStatus.RUNNING)
            out.append(
                CaseSummary(
                    workflow_id=wf.id,
                    loan_id=wf.id.removeprefix("loan-"),
                    run_id=wf.run_id,
                    execution=wf.status.name.title() if wf.status else "Unknown",
                    stage=sa.get(search.STAGE),
                    status=status,
                    on_hold=None if closed else sa.get(search.ON_HOLD),  # a closed case's last hold, or its
                    outstanding=None if amount is None else f"{amount:.2f}",  # next action, is nothing to act on
                    next_action_at=None if closed else sa.get(search.NEXT_ACTION_AT),
                    delinquent_since=sa.get(search.DELINQUENT_SINCE),
                    policy=sa.get(search.POLICY),
                    segment=sa.get(search.SEGMENT),
                    started_at=wf.start_time,
                )
            )
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise BadInput("query", f"Temporal refused the query: {exc.message} (the query was: {query})") from None
        raise
    return out


COUNT_BY = {"stage": search.STAGE, "status": search.STATUS, "segment": search.SEGMENT, "policy": search.POLICY}


class Count(BaseModel):
    by: str
    query: str = Field(description="the filter every count is ANDed with")
    counts: dict[str, int] = Field(description="cases per value, one count query each")
    other: int = Field(description="cases with another value, or none (total minus the counts)")
    total: int


async def count_by(client: Client, repo, by: str, query: str) -> Count:
    """Cases per stage, status, segment or policy, from the search attributes: one count query per value
    (the dev server does not take GROUP BY), and the total."""
    if by not in COUNT_BY:
        raise BadInput("by", f"{by!r} is not one of {', '.join(COUNT_BY)}")
    values = {"stage": known_stages, "status": lambda: list(STATUSES)}.get(by, lambda: known_names(repo, by))()
    if values is None:
        raise BadInput("by", f"the {by} names come from the system of record, which could not be read")
    key = COUNT_BY[by]

    async def one(q: str) -> int:
        try:
            return (await client.count_workflows(q)).count
        except RPCError as exc:
            if exc.status == RPCStatusCode.INVALID_ARGUMENT:
                raise BadInput("query", f"Temporal refused the query: {exc.message} (the query was: {q})") from None
            raise

    total, *each = await asyncio.gather(one(query), *(one(f'{query} AND {key.name} = "{v}"') for v in values))
    counts = dict(zip(values, each, strict=True))
    return Count(by=by, query=query, counts=counts, other=total - sum(counts.values()), total=total)
