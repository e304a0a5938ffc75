"""The console's pages: sign-in, the portfolio dashboard, a case, worklists.

Every page needs a signed-in operator (console.auth); the operator's roles, from the one permission
table (access.permissions), decide which actions are shown, and the application layer checks them
again when a form is sent (the same use cases, validation and field errors as the API).
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any
from urllib.parse import quote

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.templating import Jinja2Templates
from temporalio.service import RPCError

from access.permissions import HOLD_PLACE, HOLD_RELEASE, TWO_PERSON, USE_CASES, Forbidden, acting_as, allowed, require
from api.deps import ApiError
from app import errors, inputs, visibility
from app.errors import BadInput, Busy, NotFound
from console import auth, dashboard, worklists
from console.assets import url as asset_url
from console.config import console_settings
from domain.dates import utc_text, zone
from domain.models import CALL_OUTCOMES, COURT_EVENTS, VISIT_OUTCOMES, HoldIn, OutcomeIn, PlanIn, PromiseIn, ReleaseIn
from domain.money import format_amount

log = structlog.get_logger("console")
TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
TEMPLATES.env.globals["asset"] = asset_url
TEMPLATES.env.filters["money"] = lambda minor, currency="CNY": format_amount(int(minor or 0), currency)
# the floor works on the bank's clock (Beijing time): task due times and visit slots are shown there
TEMPLATES.env.filters["utc"] = lambda t, fmt="%Y-%m-%d %H:%M": utc_text(t, fmt)  # for labels that say UTC
TEMPLATES.env.filters["local"] = lambda t, fmt="%Y-%m-%d %H:%M", tz="Asia/Shanghai": t.astimezone(zone(tz)).strftime(fmt)

# Who sees a borrower's contact details: the roles that call, visit, go to court or change them
# (derived from the permission table); each view is written to the case's audit trail with the actor.
CONTACT_USE_CASES = ("outcome.call", "outcome.visit", "outcome.court", "contact.update")

# The case page's forms: action -> (use cases any of which shows the form, the update, the input model)
ACTIONS: dict[str, tuple[tuple[str, ...], str, type]] = {
    "promise": (("promise",), "promise", PromiseIn),
    "outcome": (("outcome.call", "outcome.visit", "outcome.court"), "outcome", OutcomeIn),
    "plan": (("plan.agree",), "plan", PlanIn),
    "hold": (tuple(u for u in USE_CASES if u.startswith("hold.place.")), "hold", HoldIn),
    "release": (tuple(u for u in USE_CASES if u.startswith("hold.release.")), "release", ReleaseIn),
}


router = APIRouter(prefix="/console", include_in_schema=False)


def sessions(request: Request) -> auth.Sessions:
    return request.app.state.console_sessions


def _backend(request: Request):
    return request.app.state.backend


async def _session(request: Request) -> auth.Session | None:
    sess = await asyncio.to_thread(sessions(request).get, request.cookies.get(auth.COOKIE))
    if sess is None:
        return None
    if not await asyncio.to_thread(auth.still_live, _backend(request).repo(), sess):
        await asyncio.to_thread(sessions(request).end, request.cookies.get(auth.COOKIE))
        return None
    acting_as(sess.caller())
    return sess


def _to_login(request: Request) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": "/console/login"})
    return RedirectResponse(f"/console/login?next={quote(request.url.path)}", status_code=303)


def render(request: Request, template: str, sess: auth.Session | None, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    roles = sess.roles if sess else ()
    ctx.update(
        request=request,
        sess=sess,
        may=lambda *ucs: any(allowed(roles, u) for u in ucs),
        nav=worklists.NAV,
        hold_place=HOLD_PLACE,
        hold_release=HOLD_RELEASE,
        hold_kinds=[u.removeprefix("hold.place.") for u in HOLD_PLACE],
    )
    response = TEMPLATES.TemplateResponse(request, template, ctx, status_code=status_code)
    response.headers["Cache-Control"] = "no-store"
    response.headers["X-Frame-Options"] = "DENY"
    response.headers["Content-Security-Policy"] = (
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; script-src 'self'; frame-ancestors 'none'"
    )
    return response


async def checked_form(request: Request, sess: auth.Session) -> dict[str, str] | Response:
    """The posted form, or the error page when it is too large or its CSRF token is missing or wrong."""
    try:
        form = await auth.read_form(request)
        auth.check_csrf(request, sess, form)
    except auth.FormTooLarge:
        return render(request, "error.html", sess, 413, message="the form is too large")
    except auth.CsrfError:
        return render(request, "error.html", sess, 403, message="the form's CSRF token is missing or wrong; reload the page")
    return form


# --------------------------------------------------------------------------- sign-in


@router.get("", response_class=HTMLResponse)
@router.get("/", response_class=HTMLResponse)
async def home(request: Request) -> Response:
    return RedirectResponse("/console/dashboard", status_code=303)


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
            error="the sign-in form must be sent from this console's own page",
        )
    client = request.client.host if request.client else "?"
    if not sessions(request).may_try(client):
        return render(
            request, "login.html", None, 429, next="/console/dashboard", error="too many sign-in attempts; wait a minute"
        )
    try:
        form = await auth.read_form(request)
    except auth.FormTooLarge:
        return render(request, "login.html", None, 413, next="/console/dashboard", error="the form is too large")
    token = (form.get("token") or "").strip()
    caller = None
    if token and len(token) <= 200:
        from access.operators import Operators

        caller = await asyncio.to_thread(Operators(_backend(request).repo()).authenticate, token)
    if caller is None:
        log.info("console sign-in refused", client=client)
        return render(
            request,
            "login.html",
            None,
            401,
            next=_safe_next(form.get("next", "")),
            error="token: not a valid operator token (expired, revoked, or mistyped)",
        )
    sid = await asyncio.to_thread(sessions(request).create, caller)
    log.info("console sign-in", operator=caller.operator_id, roles=",".join(caller.roles))
    response = RedirectResponse(_safe_next(form.get("next", "")), status_code=303)
    auth.set_cookie(response, request, sid)
    return response


@router.post("/logout")
async def logout(request: Request) -> Response:
    sess = await _session(request)
    if sess is not None:
        try:
            auth.check_csrf(request, sess, await auth.read_form(request))
        except (auth.CsrfError, auth.FormTooLarge):
            return Response("refused: the form's CSRF token is missing or wrong", status_code=403)
        await asyncio.to_thread(sessions(request).end, request.cookies.get(auth.COOKIE))
    response = RedirectResponse("/console/login", status_code=303)
    auth.clear_cookie(response, request)
    return response


# --------------------------------------------------------------------------- dashboard


@router.get("/dashboard", response_class=HTMLResponse)
async def dashboard_page(request: Request) -> Response:
    sess = await _session(request)
    if sess is None:
        return _to_login(request)
    try:
        require("case.list")
    except Forbidden as exc:
        return render(request, "error.html", sess, 403, message=exc.reason)
    d = await asyncio.to_thread(dashboard.build, _backend(request).repo())
    charts = {
        "stage": {"labels": [r.key for r in d.by_stage], "cases": [r.cases for r in d.by_stage]},
        "bucket": {
            "labels": [r.key for r in d.by_bucket],
            "cases": [r.cases for r in d.by_bucket],
            "amounts": [sum(r.amounts.values()) / 100 for r in d.by_bucket],
        },
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
    be = _backend(request)
    status = await visibility.case_status(await be.client(), loan_id, be.repo())
    repo = be.repo()
    loan, events = await asyncio.gather(asyncio.to_thread(repo.loan, loan_id), asyncio.to_thread(repo.events, status.workflow_id))
    actors = {e.actor.split(":")[0] for e in events if e.actor}
    actors |= {op for e in events for op in worklists.OPERATOR_ID.findall(e.detail)}  # "proposed by op-..."
    pending = getattr(status, "pending_approval", None)
    if pending is not None:
        actors.add(pending.maker.operator_id)
    from access.operators import Operators

    names = await asyncio.to_thread(Operators(repo).names, actors) if actors else {}
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
        releasable_kinds=[u.removeprefix("hold.release.") for u in HOLD_RELEASE if allowed(sess.roles, u)],
    )


@router.get("/cases/{loan_id}", response_class=HTMLResponse)
async def case_page(request: Request, loan_id: str) -> Response:
    sess = await _session(request)
    if sess is None:
        return _to_login(request)
    return await _render_case(request, sess, loan_id)


async def _render_case(request: Request, sess: auth.Session, loan_id: str, status_code: int = 200, **extra: Any) -> Response:
    try:
        ctx = await _case_context(request, sess, loan_id)
    except Forbidden as exc:
        return render(request, "error.html", sess, 403, message=exc.reason)
    except NotFound as exc:
        return render(request, "error.html", sess, 404, message=exc.reason)
    except BadInput as exc:
        return render(request, "error.html", sess, 422, message=f"{exc.field}: {exc.reason}")
    except RPCError as exc:
        return render(request, "error.html", sess, 503, message=f"Temporal could not be asked: {exc.message}")
    except ApiError as exc:
        return render(request, "error.html", sess, exc.status, message=exc.reason)
    return render(request, "case.html", sess, status_code, loan_id=loan_id, **ctx, **extra)


@router.post("/cases/{loan_id}/contact", response_class=HTMLResponse)
async def contact_details(request: Request, loan_id: str) -> Response:
    """The borrower's contact details (an htmx fragment), for the roles that need them; each view is logged."""
    sess = await _session(request)
    if sess is None:
        return _to_login(request)
    try:
        auth.check_csrf(request, sess, await auth.read_form(request))
    except (auth.CsrfError, auth.FormTooLarge):
        return Response("refused: the form's CSRF token is missing or wrong", status_code=403)
    use = next((u for u in CONTACT_USE_CASES if allowed(sess.roles, u)), None)
    if use is None:
        return Response("your roles do not include the borrower's contact details", status_code=403)
    try:
        errors.check_id(loan_id)
    except BadInput as exc:
        return Response(f"{exc.field}: {exc.reason}", status_code=422)
    repo = _backend(request).repo()
    loan = await asyncio.to_thread(repo.loan, loan_id)
    if loan is None:
        return Response("no such loan", status_code=404)
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
async def case_action(request: Request, loan_id: str, action: str) -> Response:
    sess = await _session(request)
    if sess is None:
        return _to_login(request)
    if action not in ACTIONS and action != "decide":
        return render(request, "error.html", sess, 404, message=f"no action {action!r}")
    form = await checked_form(request, sess)
    if isinstance(form, Response):
        return form
    command = ACTIONS[action][1] if action in ACTIONS else action
    fields = {k: v for k, v in form.items() if k not in ("csrf",) and v != ""}
    be = _backend(request)
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
    except Forbidden as exc:
        return render(request, "error.html", sess, 403, message=exc.reason)
    except ApiError as exc:
        return render(request, "error.html", sess, exc.status, message=exc.reason)
    except NotFound as exc:
        return render(request, "error.html", sess, 404, message=exc.reason)
    except BadInput as exc:
        return await _render_case(request, sess, loan_id, 422, form_error=(action, exc.field, exc.reason), form=form)
    except Busy as exc:
        return await _render_case(request, sess, loan_id, 503, form_error=(action, None, str(exc)), form=form)
    log.info("console action", operator=sess.operator_id, loan_id=loan_id, action=action)
    return await _render_case(request, sess, loan_id, done=(action, getattr(result, "message", "done")))


# --------------------------------------------------------------------------- worklists


@router.get("/worklists/{name}", response_class=HTMLResponse)
async def worklist_page(request: Request, name: str, page: int = 1, q: str = "") -> Response:
    sess = await _session(request)
    if sess is None:
        return _to_login(request)
    wl = worklists.LISTS.get(name)
    if wl is None:
        return render(request, "error.html", sess, 404, message=f"no worklist {name!r}")
    try:
        require("case.list")
    except Forbidden as exc:
        return render(request, "error.html", sess, 403, message=exc.reason)
    page = max(1, min(page, 10_000))
    q = q.strip()[:64]
    if name == "approvals":
        rows, more = await _approvals(request, sess, q, page)
    else:
        rows, more = await asyncio.to_thread(wl.fetch, _backend(request).repo(), sess, q, page)
    template = "_worklist_rows.html" if request.headers.get("hx-request") else "worklist.html"
    return render(request, template, sess, wl=wl, name=name, rows=rows, page=page, more=more, q=q)


async def _approvals(request: Request, sess: auth.Session, q: str, page: int) -> tuple[list[tuple], bool]:
    """What waits for this operator's approval: the cases whose latest approval event is a proposal (from the
    database), each asked for its pending proposal, kept when the operator's roles may decide its kind
    (access.permissions.TWO_PERSON) and the operator is not its maker."""
    be = _backend(request)
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

    names = await asyncio.to_thread(Operators(repo).names, {p.maker.operator_id for _, p in found})
    rows = [
        (
            loan_id,
            p.kind,
            p.summary,
            f"{names.get(p.maker.operator_id, p.maker.operator_id)} ({p.maker.role})",
            p.at,
            p.expires_at,
        )
        for loan_id, p in found
    ]
    start = (page - 1) * worklists.PAGE
    return rows[start : start + worklists.PAGE], len(rows) > start + worklists.PAGE


def install(app) -> None:
    from console import calendars, floor

    app.state.console_sessions = auth.Sessions(lambda: app.state.backend.repo())
    app.include_router(floor.router)  # first: its /worklists/plans-in-arrears before the generic /worklists/{name}
    app.include_router(calendars.router)
    app.include_router(router)
