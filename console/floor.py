"""The floor's pages (agent mode, app/tasks.py): my tasks today (calls by urgency, visits by district), a task
page with click-to-call (the contact gate decides at that moment) and the outcome form, and the plans in arrears."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from access.permissions import allowed, require
from app import tasks, visibility
from app.errors import BadInput, Busy, NotFound, build
from console import auth, worklists
from console.base import backend, borrower_clock, checked_form, render, signed_in, tr_of
from console.base import router as console_router
from console.i18n import N_
from db.preferences import PreferenceStore
from domain.models import CALL_OUTCOMES, VISIT_OUTCOMES

router = console_router()


def _day(text: str) -> dt.date | None:
    try:
        return dt.date.fromisoformat(text) if text else None
    except ValueError:
        raise BadInput("day", f"{text!r} is not a date (YYYY-MM-DD)") from None


@router.get("/tasks", response_class=HTMLResponse)
async def my_tasks(
    request: Request,
    day: str = "",
    action: str = "",
    assignee: str | None = None,
    page: int = 1,
    sess: auth.Session = Depends(signed_in),
) -> Response:
    rows, more = await asyncio.to_thread(
        tasks.my_tasks,
        backend(request).repo(),
        assignee=assignee or None,
        day=_day(day),
        action=action or None,
        page=max(1, min(page, 10_000)),
    )
    return render(
        request,
        "tasks.html",
        sess,
        rows=rows,
        more=more,
        page=page,
        day=day,
        action=action,
        assignee=assignee or "",
        route=route,
    )


def route(visits: list) -> list[tuple[str, list]]:
    """The day's visits as a collector walks them: district by district (a district's visits together), the districts
    in the order of their first slot, each district's visits by slot. No map service is asked: the order is the
    bookings' (domain/tasks.py books a collector's visits of a day by district)."""
    groups: dict[str, list] = {}
    for t in sorted(visits, key=lambda t: (t.slot_start or t.due_at, t.id)):
        groups.setdefault(f"{t.city} {t.district}".strip(), []).append(t)
    return sorted(groups.items(), key=lambda g: g[1][0].slot_start or g[1][0].due_at)


async def _task_page(request: Request, sess: auth.Session, task_id: int, status_code: int = 200, **extra: Any) -> Response:
    t = await asyncio.to_thread(tasks.task, backend(request).repo(), task_id)
    outcomes = CALL_OUTCOMES if t.action == "call" else VISIT_OUTCOMES
    repo = backend(request).repo()
    loan = await asyncio.to_thread(repo.loan, t.loan_id)
    borrower = await asyncio.to_thread(repo.borrower, loan.borrower_id) if loan is not None else None
    zone_name = borrower.timezone if borrower else None
    address = None
    if (
        t.action == "visit"
        and t.status == "open"
        and borrower is not None
        and borrower.address
        and allowed(sess.roles, "outcome.visit")
    ):
        # the visiting collector needs the address (and a map link); the view is audited like the contact details
        address = borrower.address
        actor = sess.caller().actor("outcome.visit")
        await asyncio.to_thread(
            worklists.log_view,
            repo,
            loan_id=t.loan_id,
            actor=f"{actor.operator_id}:{actor.role}",
            detail=f"address shown on visit task {t.id} in the console",
        )
    return render(
        request,
        "task.html",
        sess,
        status_code,
        t=t,
        outcomes=outcomes,
        address=address,
        borrower_zone=zone_name,
        borrower_time=borrower_clock(tr_of(request), zone_name),
        wishes=await asyncio.to_thread(PreferenceStore(repo).get, borrower.id) if borrower is not None else None,
        **extra,
    )


@router.get("/tasks/{task_id}", response_class=HTMLResponse)
async def task_page(request: Request, task_id: int, sess: auth.Session = Depends(signed_in)) -> Response:
    return await _task_page(request, sess, task_id)


async def _task_post(
    request: Request, sess: auth.Session, task_id: int, act: Callable[[dict[str, str]], Awaitable[dict[str, Any]]]
) -> Response:
    """A form posted on a task page: signed in, CSRF checked, then `act(form)`; the task page again, with what
    `act` returns, or with the field and reason of a refusal beside the form (nothing changed)."""
    form = await checked_form(request, sess)
    if isinstance(form, Response):
        return form
    try:
        shown = await act({k: v for k, v in form.items() if k != "csrf" and v != ""})
    except NotFound:  # no such task: the error page (a BadInput, but not one beside the form)
        raise
    except BadInput as exc:
        return await _task_page(request, sess, task_id, 422, form_error=(exc.field, exc.reason), form=form)
    except Busy as exc:
        return await _task_page(request, sess, task_id, 503, form_error=("input", str(exc)), form=form)
    return await _task_page(request, sess, task_id, **shown)


@router.post("/tasks/{task_id}/call", response_class=HTMLResponse)
async def call(request: Request, task_id: int, sess: auth.Session = Depends(signed_in)) -> Response:
    """Click to call: the gate decides now. Allowed: the number and the outcome form. Refused: why, and until when."""

    async def act(_form: dict[str, str]) -> dict[str, Any]:
        return {"opened": await asyncio.to_thread(tasks.open_call, backend(request).repo(), task_id)}

    return await _task_post(request, sess, task_id, act)


@router.post("/tasks/{task_id}/outcome", response_class=HTMLResponse)
async def outcome(request: Request, task_id: int, sess: auth.Session = Depends(signed_in)) -> Response:
    async def act(form: dict[str, str]) -> dict[str, Any]:
        be = backend(request)
        body = build(tasks.TaskOutcome, **form)
        result = await tasks.record_outcome(await be.client(), be.repo(), task_id, body)
        return {"done": getattr(result, "message", "recorded")}

    return await _task_post(request, sess, task_id, act)


@router.post("/tasks/{task_id}/assignee", response_class=HTMLResponse)
async def reassign(request: Request, task_id: int, sess: auth.Session = Depends(signed_in)) -> Response:
    async def act(form: dict[str, str]) -> dict[str, Any]:
        body = build(tasks.Reassign, assignee=form.get("assignee", ""), reason=form.get("reason", ""))
        t = await asyncio.to_thread(tasks.reassign, backend(request).repo(), task_id, body)
        return {"done": tr_of(request).gettext(N_("given to %(who)s"), who=t.assignee)}

    return await _task_post(request, sess, task_id, act)


# --------------------------------------------------------------------------- plans in arrears


@router.get("/worklists/plans-in-arrears", response_class=HTMLResponse)
async def plans_in_arrears(request: Request, page: int = 1, q: str = "", sess: auth.Session = Depends(signed_in)) -> Response:
    """Open cases with an active plan an instalment of which is past its due date and not covered by payments
    (inside its grace days: not broken yet). Candidates from the database, each case asked for its plan."""
    require("case.list")
    be = backend(request)
    client, repo = await be.client(), be.repo()
    loans = await asyncio.to_thread(worklists.active_plans, repo, q.strip()[:64])
    today = dt.datetime.now(dt.UTC).date()

    async def arrears(loan_id: str):
        try:
            return loan_id, await visibility.case_status(client, loan_id)
        except BadInput:
            return loan_id, None

    rows = []
    for loan_id, st in await asyncio.gather(*(arrears(x) for x in loans)):
        if st is None or st.plan is None:
            continue
        behind = worklists.plan_arrears(st, today)
        if behind is not None:
            rows.append((loan_id, *behind))
    page = max(1, min(page, 10_000))
    start = (page - 1) * worklists.PAGE
    wl = worklists.PLANS_IN_ARREARS
    more = len(rows) > start + worklists.PAGE
    template = "_worklist_rows.html" if request.headers.get("hx-request") else "worklist.html"
    shown = rows[start : start + worklists.PAGE]
    return render(request, template, sess, wl=wl, name="plans-in-arrears", rows=shown, page=page, more=more, q=q)
