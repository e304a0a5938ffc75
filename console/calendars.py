"""The console's calendar page (role compliance): the official calendar years added as data, what waits for a second
person's approval, and which calendar is in force for each year. The same use cases as `starter.py calendars`
(app/calendars.py): a year pasted here is validated as the loader validates a file; the maker cannot approve it."""

from __future__ import annotations

import asyncio

import structlog
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, Response

from access.permissions import require
from app import calendars
from app.errors import BadInput
from console import auth, base
from console.base import signed_in
from console.i18n import N_
from domain import calendar

log = structlog.get_logger("console")
router = base.router()


def _view(repo) -> dict:
    changes = calendars.changes(repo)
    calendars.refresh_quietly(repo, announce=False)  # this process's years in force, as of now
    years = calendar.years_available()
    return {
        "pending": [c for c in changes if c.status == "pending"],
        "changes": changes,
        "in_force": [(y, calendar.in_force(y)) for y in years],
    }


async def _render(request: Request, sess, status_code: int = 200, **extra) -> Response:
    repo = base.backend(request).repo()
    ctx = await asyncio.to_thread(_view, repo)
    return base.render(request, "calendars.html", sess, status_code, **ctx, **extra)


@router.get("/calendars", response_class=HTMLResponse)
async def calendars_page(request: Request, sess: auth.Session = Depends(signed_in)) -> Response:
    return await _render(request, sess)


@router.post("/calendars/add", response_class=HTMLResponse)
async def add(request: Request, sess: auth.Session = Depends(signed_in)) -> Response:
    form = await base.checked_form(request, sess)
    if isinstance(form, Response):
        return form
    repo = base.backend(request).repo()
    try:
        require("calendars.add")
        c = await asyncio.to_thread(
            calendars.add, repo, form.get("name", "").strip(), form.get("toml", "").encode(), form.get("note", "")
        )
    except BadInput as exc:
        return await _render(request, sess, 422, form_error=(exc.field, exc.reason), form=form)
    log.info("console calendar added", operator=sess.operator_id, year=c.year)
    return await _render(
        request,
        sess,
        done=base.tr_of(request).gettext(
            N_("added the calendar for %(year)s: it waits for a second person's approval"), year=c.year
        ),
    )


@router.post("/calendars/{year}/{decision}", response_class=HTMLResponse)
async def decide(request: Request, year: int, decision: str, sess: auth.Session = Depends(signed_in)) -> Response:
    if decision not in ("approve", "reject"):
        return base.render(request, "error.html", sess, 404, message=("decision", f"{decision!r} is not approve or reject"))
    form = await base.checked_form(request, sess)
    if isinstance(form, Response):
        return form
    repo = base.backend(request).repo()
    try:
        c = await asyncio.to_thread(calendars.decide, repo, year, decision, form.get("note", ""))
    except BadInput as exc:
        return await _render(request, sess, 422, form_error=(exc.field, exc.reason))
    log.info("console calendar decided", operator=sess.operator_id, year=year, decision=c.status)
    return await _render(
        request,
        sess,
        done=base.tr_of(request).gettext(
            N_("%(decision)s the calendar for %(year)s"),
            decision=base.tr_of(request).name("state", c.status) if base.tr_of(request).zh else c.status,
            year=year,
        ),
    )
