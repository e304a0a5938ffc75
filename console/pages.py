"""The console's pages: sign-in, the portfolio dashboard, a case, worklists.

Every page needs a signed-in operator (console.auth); the operator's roles, from the one permission
table (access.permissions), decide which actions are shown, and the application layer checks them
again when a form is sent (the same use cases, validation and field errors as the API).
"""

from __future__ import annotations

import asyncio
import json
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import Depends, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from temporalio.service import RPCError

from access.permissions import HOLD_RELEASE, TWO_PERSON, USE_CASES, allowed, require
from app import errors, inputs, visibility
from app.errors import BadInput, Busy, NotFound
from console import auth, dashboard, i18n, worklists
from console.base import (
    backend,
    borrower_clock,
    checked_form,
    render,
    role_name,
    session_of,
    signed_in,
    tr_of,
)
from console.base import router as console_router
from console.base import sessions as base_sessions
from console.config import console_settings
from console.i18n import N_
from domain import inputs as registered
from domain.models import CALL_OUTCOMES, COURT_EVENTS, VISIT_OUTCOMES

log = structlog.get_logger("console")


# Who sees a borrower's contact details: the roles that call, visit, go to court or change them
# (derived from the permission table); each view is written to the case's audit trail with the actor.
CONTACT_USE_CASES = ("outcome.call", "outcome.visit", "outcome.court", "contact.update")


# The case page's forms: action -> (use cases any of which shows the form, the command, the input model), from the
# one table of inputs (domain/inputs)
def _form(command: str) -> tuple[tuple[str, ...], str, type]:
    i = registered.BY_COMMAND[command]
    shown = tuple(u for u in USE_CASES if u.startswith(i.forms)) if i.forms else (i.use_case(i.model.model_construct()),)
    return shown, i.command, i.model


ACTIONS: dict[str, tuple[tuple[str, ...], str, type]] = {c: _form(c) for c in ("promise", "outcome", "plan", "hold", "release")}


router = console_router()


# --------------------------------------------------------------------------- sign-in


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    return RedirectResponse("/console/dashboard", status_code=303)


@router.get("/language/{code}")
async def language(request: Request, code: str, next: str = "/console/dashboard") -> Response:
    """The operator's language, remembered by this browser for a year (a cookie); back to the page they were on."""
    if code not in i18n.LANGUAGES:
        return render(request, "error.html", await session_of(request), 404, message=("language", f"{code!r} is not zh_CN or en"))
    target = next if next == "/console/login" or next.startswith("/console/login?") else _safe_next(next)
    response = RedirectResponse(target, status_code=303)
    _remember_language(response, request, code)
    sess = await session_of(request)
    if sess is not None:  # kept on the operator's record too: it follows them to any browser they sign in on
        from access.operators import Operators

        await asyncio.to_thread(Operators(backend(request).repo()).set_language, sess.operator_id, code)
    return response


def _remember_language(response: Response, request: Request, code: str) -> None:
    response.set_cookie(
        i18n.COOKIE, code, max_age=i18n.COOKIE_SECONDS, path="/console", samesite="lax", secure=auth.secure_request(request)
    )


@router.get("/search", response_class=HTMLResponse)
async def search_page(request: Request, q: str = "", sess: auth.Session = Depends(signed_in)) -> Response:
    """The header's search box: a case by loan id, borrower id or a phone's last four digits (shown masked, audited)."""
    from console import search

    tr = tr_of(request)
    try:
        require("case.list")
        actor = sess.caller().actor("case.list")
        how, found = await asyncio.to_thread(
            search.find, backend(request).repo(), q[:64], actor=f"{actor.operator_id}:{actor.role}"
        )
    except BadInput as exc:
        return render(request, "search.html", sess, 422, q=q[:64], error=i18n.reason(tr, exc.field, exc.reason), searched=False)
    log.info("console search", operator=sess.operator_id, kind=how, found=len(found))
    if len(found) == 1 and how == "id" and found[0].loan_id == q.strip():
        return RedirectResponse(f"/console/cases/{quote(found[0].loan_id)}", status_code=303)
    totals: dict[str, int] = {}
    for f in found:
        totals[f.currency] = totals.get(f.currency, 0) + f.outstanding
    how_text = (
        tr.gettext(N_("Cases of borrowers whose phone number ends in %(digits)s"), digits=q.strip())
        if how == "phone"
        else tr.gettext(N_("Cases whose loan id starts with %(q)s or whose borrower id is %(q)s"), q=q.strip())
    )
    return render(request, "search.html", sess, q=q[:64], results=found, totals=totals, searched=True, how=how_text, error=None)


@router.get("/login", response_class=HTMLResponse)
async def login_page(request: Request, next: str = "/console/dashboard") -> Response:
    return render(request, "login.html", None, next=_safe_next(next), error=None)


def _safe_next(target: str) -> str:
    return target if target.startswith("/console/") and "//" not in target and "\\" not in target else "/console/dashboard"


@router.post("/login", response_class=HTMLResponse)
async def login(request: Request) -> Response:
    if not auth.same_origin(request):
        return render(
            request,
            "login.html",
            None,
            403,
            next="/console/dashboard",
            error=N_("the sign-in form must be sent from this console's own page"),
        )
    client = request.client.host if request.client else "?"
    if not base_sessions(request).may_try(client):
        return render(
            request, "login.html", None, 429, next="/console/dashboard", error=N_("too many sign-in attempts; wait a minute")
        )
    try:
        form = await auth.read_form(request)
    except auth.FormTooLarge:
        return render(request, "login.html", None, 413, next="/console/dashboard", error=N_("the form is too large"))
    token = (form.get("token") or "").strip()
    caller = None
    if token and len(token) <= 200:
        from access.operators import Operators

        caller = await asyncio.to_thread(Operators(backend(request).repo()).authenticate, token)
    if caller is None:
        log.info("console sign-in refused", client=client)
        return render(
            request,
            "login.html",
            None,
            401,
            next=_safe_next(form.get("next", "")),
            error=N_("token: not a valid operator token (expired, revoked, or mistyped)"),
        )
    sid = await asyncio.to_thread(base_sessions(request).create, caller)
    log.info("console sign-in", operator=caller.operator_id, roles=",".join(caller.roles))
    response = RedirectResponse(_safe_next(form.get("next", "")), status_code=303)
    auth.set_cookie(response, request, sid)
    from access.operators import Operators

    chosen = await asyncio.to_thread(Operators(backend(request).repo()).language, caller.operator_id)
    if chosen in i18n.LANGUAGES:  # the language the operator chose before, on whichever browser
        _remember_language(response, request, chosen)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    sess = await session_of(request)
    if sess is not None:
        try:
            auth.check_csrf(request, sess, await auth.read_form(request))
        except (auth.CsrfError, auth.FormTooLarge):
            return Response(tr_of(request).gettext(N_("refused: the form's CSRF token is missing or wrong")), status_code=403)
        await asyncio.to_thread(base_sessions(request).end, request.cookies.get(auth.COOKIE))
    response = RedirectResponse("/console/login", status_code=303)
    auth.clear_cookie(response, request)
    return response


# --------------------------------------------------------------------------- dashboard


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard_page(request: Request, sess: auth.Session = Depends(signed_in)) -> Response:
    require("case.list")
    d = await asyncio.to_thread(dashboard.build, backend(request).repo())
    tr = tr_of(request)
    charts = {
        "label": tr.gettext(N_("Cases")),
        "stage": {"labels": [tr.name("stage", r.key) for r in d.by_stage], "cases": [r.cases for r in d.by_stage]},
        "bucket": {"labels": [r.key for r in d.by_bucket], "cases": [r.cases for r in d.by_bucket]},
    }
    return render(
        request,
        "dashboard.html",
        sess,
        d=d,
        charts_json=json.dumps(charts).replace("<", "\\u003c"),
        buckets=dashboard.BUCKETS,
        roll_from=dashboard.ROLL_FROM,
    )


# --------------------------------------------------------------------------- a case


async def _case_context(request: Request, sess: auth.Session, loan_id: str) -> dict[str, Any]:
    be = backend(request)
    status = await visibility.case_status(await be.client(), loan_id, be.repo())
    repo = be.repo()
    loan, events = await asyncio.gather(asyncio.to_thread(repo.loan, loan_id), asyncio.to_thread(repo.events, status.workflow_id))
    actors = {worklists.actor_parts(e.actor)[0] for e in events if e.actor}
    actors |= {op for e in events for op in worklists.OPERATOR_ID.findall(e.detail)}  # "proposed by op-..."
    pending = getattr(status, "pending_approval", None)
    if pending is not None:
        actors.add(pending.maker.operator_id)
    from access.operators import Operators

    names = i18n.people(await asyncio.to_thread(Operators(repo).names, actors) if actors else {}, actors, tr_of(request).zh)
    borrower = await asyncio.to_thread(repo.borrower, loan.borrower_id) if loan is not None else None
    cfg = console_settings()
    ui = cfg.temporal_ui
    return dict(
        s=status,
        loan=loan,
        timeline=[worklists.business(e, names) for e in sorted(events, key=lambda e: (e.at, e.id), reverse=True)],
        temporal_url=f"{ui}/namespaces/{quote(cfg.temporal_namespace)}/workflows/{quote(status.workflow_id)}",
        may_contact=any(allowed(sess.roles, u) for u in CONTACT_USE_CASES),
        call_outcomes=CALL_OUTCOMES,
        visit_outcomes=VISIT_OUTCOMES,
        court_events=COURT_EVENTS,
        clocks=worklists.legal_clocks(status),
        names=names,
        approver_use_case=TWO_PERSON.get(pending.kind, "approval.close") if pending else None,
        decide_available=True,
        borrower_time=borrower_clock(tr_of(request), borrower.timezone if borrower else None),
        releasable_kinds=[u.removeprefix("hold.release.") for u in HOLD_RELEASE if allowed(sess.roles, u)],
    )


@router.get("/cases/{loan_id}", response_class=HTMLResponse)
async def case_page(request: Request, loan_id: str, sess: auth.Session = Depends(signed_in)) -> Response:
    return await _render_case(request, sess, loan_id)


async def _render_case(request: Request, sess: auth.Session, loan_id: str, status_code: int = 200, **extra: Any) -> Response:
    ctx = await _case_context(request, sess, loan_id)  # a refusal, or Temporal unreachable: the error page (console.base)
    return render(request, "case.html", sess, status_code, loan_id=loan_id, **ctx, **extra)


@router.post("/cases/{loan_id}/contact", response_class=HTMLResponse)
async def contact_details(request: Request, loan_id: str, sess: auth.Session = Depends(signed_in)) -> Response:
    """The borrower's contact details (an htmx fragment), for the roles that need them; each view is logged."""
    try:
        auth.check_csrf(request, sess, await auth.read_form(request))
    except (auth.CsrfError, auth.FormTooLarge):
        return Response(tr_of(request).gettext(N_("refused: the form's CSRF token is missing or wrong")), status_code=403)
    use = next((u for u in CONTACT_USE_CASES if allowed(sess.roles, u)), None)
    if use is None:
        return Response(tr_of(request).gettext(N_("your roles do not include the borrower's contact details")), status_code=403)
    try:
        errors.check_id(loan_id)
    except BadInput as exc:
        return Response(i18n.reason(tr_of(request), exc.field, exc.reason), status_code=422)
    repo = backend(request).repo()
    loan = await asyncio.to_thread(repo.loan, loan_id)
    if loan is None:
        return Response(tr_of(request).gettext(N_("no such loan")), status_code=404)
    borrower = await asyncio.to_thread(repo.borrower, loan.borrower_id)
    actor = sess.caller().actor(use)
    await asyncio.to_thread(
        worklists.log_view,
        repo,
        loan_id=loan_id,
        actor=f"{actor.operator_id}:{actor.role}",
        detail="contact details shown in the console",
    )
    log.info("contact details viewed", operator=sess.operator_id, loan_id=loan_id)
    return render(request, "_contact.html", sess, b=borrower)


@router.post("/cases/{loan_id}/{action}", response_class=HTMLResponse)
async def case_action(request: Request, loan_id: str, action: str, sess: auth.Session = Depends(signed_in)) -> Response:
    if action not in ACTIONS and action != "decide":
        return render(
            request,
            "error.html",
            sess,
            404,
            message=("input", tr_of(request).gettext(N_("no action %(name)s"), name=repr(action))),
        )
    form = await checked_form(request, sess)
    if isinstance(form, Response):
        return form
    command = ACTIONS[action][1] if action in ACTIONS else action
    fields = {k: v for k, v in form.items() if k not in ("csrf",) and v != ""}
    be = backend(request)
    try:
        # a first check before Temporal is asked anything: a role with none of the action's use cases
        sess.caller().require_any(ACTIONS[action][0] if action in ACTIONS else tuple(TWO_PERSON.values()))
        if command == "decide":
            result = await inputs.decide(
                await be.client(), be.repo(), loan_id, fields.get("decision", ""), fields.get("note", "")
            )
        elif command == "hold":
            result = await inputs.place_hold(await be.client(), be.repo(), loan_id, fields)
        else:
            result = await inputs.send_update(await be.client(), loan_id, command, fields)
    except NotFound:  # no open case: the error page (a BadInput, but not one beside the form)
        raise
    except BadInput as exc:
        return await _render_case(request, sess, loan_id, 422, form_error=(action, exc.field, exc.reason), form=form)
    except Busy as exc:
        return await _render_case(request, sess, loan_id, 503, form_error=(action, None, str(exc)), form=form)
    log.info("console action", operator=sess.operator_id, loan_id=loan_id, action=action)
    return await _render_case(request, sess, loan_id, done=(action, getattr(result, "message", "done")))


# --------------------------------------------------------------------------- worklists


@router.get("/worklists/{name}", response_class=HTMLResponse)
async def worklist_page(
    request: Request, name: str, page: int = 1, q: str = "", sess: auth.Session = Depends(signed_in)
) -> Response:
    wl = worklists.LISTS.get(name)
    if wl is None:
        return render(
            request,
            "error.html",
            sess,
            404,
            message=("input", tr_of(request).gettext(N_("no worklist %(name)s"), name=repr(name))),
        )
    require("case.list")
    page = max(1, min(page, 10_000))
    q = q.strip()[:64]
    if name == "approvals":
        rows, more = await _approvals(request, sess, q, page)
    else:
        rows, more = await asyncio.to_thread(wl.fetch, backend(request).repo(), sess, q, page)
    template = "_worklist_rows.html" if request.headers.get("hx-request") else "worklist.html"
    return render(request, template, sess, wl=wl, name=name, rows=rows, page=page, more=more, q=q)


async def _approvals(request: Request, sess: auth.Session, q: str, page: int) -> tuple[list[tuple], bool]:
    """What waits for this operator's approval: the cases whose latest approval event is a proposal (from the
    database), each asked for its pending proposal, kept when the operator's roles may decide its kind
    (access.permissions.TWO_PERSON) and the operator is not its maker."""
    be = backend(request)
    client, repo = await be.client(), be.repo()
    loans = await asyncio.to_thread(worklists.pending_proposals, repo, q)

    async def pending(loan_id: str):
        try:
            return loan_id, (await visibility.case_status(client, loan_id)).pending_approval
        except (BadInput, RPCError):
            return loan_id, None

    found = [
        (loan_id, p)
        for loan_id, p in await asyncio.gather(*(pending(x) for x in loans))
        if p is not None
        and p.maker.operator_id != sess.operator_id
        and allowed(sess.roles, TWO_PERSON.get(p.kind, "approval.close"))
    ]
    from access.operators import Operators

    makers = {p.maker.operator_id for _, p in found}
    names = i18n.people(await asyncio.to_thread(Operators(repo).names, makers), makers, tr_of(request).zh)
    rows = [
        (
            loan_id,
            p.kind,
            p.summary,
            f"{names.get(p.maker.operator_id, p.maker.operator_id)} ({role_name(tr_of(request), p.maker.role)})",
            p.at,
            p.expires_at,
        )
        for loan_id, p in found
    ]
    start = (page - 1) * worklists.PAGE
    return rows[start : start + worklists.PAGE], len(rows) > start + worklists.PAGE


def front_door(request: Request) -> Response:
    """`/`: a person (a browser asking for HTML) goes to the console, which sends them on to its sign-in when they
    have no session; a bank system (JSON, curl) to the API's documentation."""
    accept = request.headers.get("accept", "")
    if "text/html" in accept:
        return RedirectResponse("/console/dashboard", status_code=303)
    return RedirectResponse("/docs", status_code=303)
