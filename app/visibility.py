"""Reading cases: one case's status (a query) and lists through Temporal visibility (search attributes)."""

from __future__ import annotations

import datetime as dt
import re

from pydantic import BaseModel, Field
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from access.permissions import require
from app.errors import DECIMAL_RE, KEYWORD_RE, BadInput, NotFound, check_id
from domain.models import CaseStatus, workflow_id
from workflows import search
from workflows.case import CollectionCase


async def case_status(client: Client, loan_id: str) -> CaseStatus:
    require("case.read")
    check_id(loan_id)
    try:
        return await client.get_workflow_handle(workflow_id(loan_id)).query(CollectionCase.status)
    except RPCError as exc:
        if exc.status == RPCStatusCode.NOT_FOUND:
            raise NotFound("loan_id", f"no case for loan {loan_id}") from None
        raise


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


def visibility_query(*, stage: str | None = None, status: str | None = None, on_hold: bool | None = None,
                     min_amount: str | None = None, segment: str | None = None, policy: str | None = None,
                     query: str | None = None) -> str:
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
    listed other teams' workflows: issue 14, hole 5), and its quotes must close; ORDER BY is not a filter."""
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
                raise BadInput("query", f"closes a parenthesis it did not open (at character {i + 1}): the query "
                                        "can only narrow the list of cases")
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
            out.append(CaseSummary(
                workflow_id=wf.id, loan_id=wf.id.removeprefix("loan-"), run_id=wf.run_id,
                execution=wf.status.name.title() if wf.status else "Unknown",
                stage=sa.get(search.STAGE), status=sa.get(search.STATUS), on_hold=sa.get(search.ON_HOLD),
                outstanding=None if amount is None else f"{amount:.2f}",
                next_action_at=sa.get(search.NEXT_ACTION_AT), delinquent_since=sa.get(search.DELINQUENT_SINCE),
                policy=sa.get(search.POLICY), segment=sa.get(search.SEGMENT), started_at=wf.start_time,
            ))
    except RPCError as exc:
        if exc.status == RPCStatusCode.INVALID_ARGUMENT:
            raise BadInput("query", f"Temporal refused the query: {exc.message} (the query was: {query})") from None
        raise
    return out
