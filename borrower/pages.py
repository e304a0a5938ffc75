"""/b/{token}: the borrower's page, served by the API process. Server-rendered, mobile-first, every asset local, Chinese
by default. Nothing about the debt before the one-time code; the link's token never reaches a log (the request log
shows /b/…), a referrer (Referrer-Policy: no-referrer) or a cache (no-store). The flow is app/selfservice.py's."""

from __future__ import annotations

import asyncio
import datetime as dt
import hmac
from pathlib import Path
from typing import Any

import structlog
from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates
from prometheus_client import Counter

from activities.gateway import GatewayRejected, GatewayRetryable
from app import selfservice as flow
from app.errors import BadInput
from borrower.texts import LANGS, TEXTS, day, terms, text
from console.auth import FormTooLarge, read_form  # urlencoded forms, size-capped (no multipart parser needed)
from domain.dates import zone

log = structlog.get_logger("borrower")
HERE = Path(__file__).resolve().parent
TEMPLATES = Jinja2Templates(directory=str(HERE / "templates"))
SESSION_COOKIE = "bsid"
LANG_COOKIE = "blang"
HEADERS = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
}


def _csp() -> str:
    """Local assets only; a form may lead to the gateway's payment page (a redirect after the pay form)."""
    from urllib.parse import urlsplit

    from infra.config import settings

    gw = urlsplit(settings().gateway_url)
    return f"default-src 'self'; form-action 'self' {gw.scheme}://{gw.netloc}; frame-ancestors 'none'"


ACTIONS = ("pay", "promise", "plan", "hardship", "dispute", "complaint", "preferences")

router = APIRouter(prefix="/b", include_in_schema=False)


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _lang(request: Request) -> str:
    asked = request.query_params.get("lang") or request.cookies.get(LANG_COOKIE)
    return asked if asked in LANGS else "zh"


def _page(request: Request, name: str, status: int = 200, **ctx: Any) -> HTMLResponse:
    lang = _lang(request)
    if "v" in ctx:  # why the case is paused, in the borrower's words
        ctx["why"] = "; ".join(text(lang, f"hold_{h}") if f"hold_{h}" in TEXTS else h for h in ctx["v"].holds)
    words = {"t": lambda key, **kw: text(lang, key, **kw), "day": lambda d: day(lang, d), "terms": lambda w: terms(lang, w)}
    resp = TEMPLATES.TemplateResponse(request, name, {"lang": lang, **words, **ctx}, status_code=status)
    for k, v in HEADERS.items():
        resp.headers[k] = v
    resp.headers["Content-Security-Policy"] = _csp()
    if request.query_params.get("lang") in LANGS:
        resp.set_cookie(LANG_COOKIE, lang, max_age=365 * 86400, httponly=True, samesite="strict", secure=_secure())
    return resp


def _backend(request: Request):
    return request.app.state.backend


def _gateway(request: Request):
    gw = getattr(request.app.state, "borrower_gateway", None)
    if gw is None:
        from activities.gateway import GatewayClient

        gw = request.app.state.borrower_gateway = GatewayClient()
    return gw


def _until(lang: str, when: dt.datetime | None, tz: str = "Asia/Shanghai") -> str:
    return when.astimezone(zone(tz)).strftime("%Y-%m-%d %H:%M") if when else ""


def _refusal(lang: str, r) -> str:  # noqa: ANN001 - a domain.selfservice.Refusal
    return text(lang, r.reason, until=_until(lang, r.until))


def _link(request: Request, token: str, *, borrower_only: bool = False):
    """The link of this URL, or the page that says why it opens nothing. `borrower_only` (every POST): a guarantor's
    link can neither be sent a code nor open a session (PIPL art. 6)."""
    try:
        link = flow.open_link(_backend(request).repo(), token, _now())
    except flow.LinkError as exc:
        if exc.reason == "invalid":
            _secret_check(request)
        return None, _page(
            request, "message.html", status=404 if exc.reason == "invalid" else 410, message=text(_lang(request), exc.reason)
        )
    if borrower_only and link.audience != "borrower":
        return None, _page(request, "message.html", status=403, message=text(_lang(request), "guarantor"))
    return link, None


MISMATCHES = Counter(
    "collections_link_secret_mismatch", "Unopenable links for which the newest link was found signed with another secret"
)
_CHECKED: dict[str, float] = {}  # when the secrets were last compared (at most once a minute)


def _secret_check(request: Request) -> None:
    """A link that opens nothing may be a typo, or every link of the worker's (another secret): say which in the log,
    as an error a person sees the same day, and count it on /metrics."""
    import time

    if time.monotonic() - _CHECKED.get("at", -60.0) < 60:
        return
    _CHECKED["at"] = time.monotonic()
    why = flow.secret_mismatch(_backend(request).repo())
    if why is not None:
        log.error("borrower links unopenable", reason=why)
        MISMATCHES.inc()


def _secure() -> bool:
    """Cookies only over https once the page's public address is https (the local stack's is plain http)."""
    from infra.config import settings

    return settings().public_url.startswith("https://")


async def _form(request: Request) -> dict[str, str] | None:
    try:
        return await read_form(request)
    except (FormTooLarge, ValueError):  # past the size or the field count: refused, nothing read
        return None


def _back(token: str, **query: str) -> RedirectResponse:
    q = "&".join(f"{k}={v}" for k, v in query.items())
    return RedirectResponse(f"/b/{token}" + (f"?{q}" if q else ""), status_code=303, headers=HEADERS)


@router.get("/{token}", response_class=HTMLResponse)
async def page(request: Request, token: str) -> Response:
    link, refused = _link(request, token)
    if link is None:
        return refused
    lang = _lang(request)
    if link.audience != "borrower":  # a guarantor's link opens no debt (PIPL art. 6)
        return _page(request, "message.html", message=text(lang, "guarantor"))
    be = _backend(request)
    sid = request.cookies.get(SESSION_COOKIE)
    if flow.session_link(be.repo(), token, sid, _now()) is None:
        person = be.repo().borrower(link.recipient_id)
        tail = (person.phone or "")[-4:] if person else ""
        note = request.query_params.get("note")
        return _page(request, "code.html", token=token, tail=tail, note=_note(lang, note, ""))
    view = await flow.view(await be.client(), be.repo(), link)
    note = request.query_params.get("note")
    return _page(
        request,
        "case.html",
        token=token,
        v=view,
        csrf=flow.csrf_token(sid or ""),
        note=_note(lang, note, request.query_params.get("ref", "")),
        actions=ACTIONS,
    )


NOTES = (
    "code_sent",
    "wrong_code",
    "no_code",
    "locked",
    "too_soon",
    "phone_limit",
    "no_phone",
    "done",
    "complaint_done",
    "payment_sent",
    "plan_agreed",
    "plan_waits",
    "pref_done",
)


def _reason(lang: str, field: str | None, reason: str) -> str:
    """A refusal in the borrower's language: the console's translations of fields and reasons (console/i18n.py)."""
    from console.i18n import Translator
    from console.i18n import reason as translated

    return translated(Translator("zh_CN" if lang == "zh" else "en"), field, reason)


def _note(lang: str, note: str | None, ref: str) -> str | None:
    if note not in NOTES:
        return None
    return text(lang, note, ref=ref[:40], until="")


@router.post("/{token}/code")
async def code(request: Request, token: str) -> Response:
    link, refused = _link(request, token, borrower_only=True)
    if link is None:
        return refused
    refusal = await flow.send_code(_backend(request).repo(), _gateway(request), link, _now())
    if refusal is not None:
        return _page(
            request,
            "code.html",
            status=429 if refusal.reason != "no_phone" else 200,
            token=token,
            tail="",
            note=_refusal(_lang(request), refusal),
        )
    return _back(token, note="code_sent")


@router.post("/{token}/verify")
async def verify(request: Request, token: str) -> Response:
    link, refused = _link(request, token, borrower_only=True)
    if link is None:
        return refused
    form = await _form(request)
    if form is None:
        return _page(request, "message.html", status=413, message=text(_lang(request), "protect"))
    got = await asyncio.to_thread(flow.verify_code, _backend(request).repo(), link, form.get("code", ""), _now())
    if not isinstance(got, str):
        return _page(request, "code.html", status=401, token=token, tail="", note=_refusal(_lang(request), got))
    resp = _back(token)
    ttl = int(flow.rules.SESSION_TTL.total_seconds())
    resp.set_cookie(SESSION_COOKIE, got, max_age=ttl, httponly=True, samesite="strict", path="/b/", secure=_secure())
    return resp


@router.post("/{token}/{action}")
async def act(request: Request, token: str, action: str) -> Response:
    link, refused = _link(request, token, borrower_only=True)
    if link is None:
        return refused
    be, lang = _backend(request), _lang(request)
    sid = request.cookies.get(SESSION_COOKIE)
    if action not in ACTIONS or flow.session_link(be.repo(), token, sid, _now()) is None:
        return _page(request, "message.html", status=403, message=text(lang, "protect"))
    form = await _form(request)
    if form is None or not hmac.compare_digest(form.get("csrf", "").encode(), flow.csrf_token(sid or "").encode()):
        return _page(request, "message.html", status=403, message=text(lang, "protect"))
    person = be.repo().borrower(link.borrower_id)
    today = _now().astimezone(zone(person.timezone if person else "Asia/Shanghai")).date()
    try:
        if action == "pay":  # to the gateway's payment page; the payment arrives by its signed webhook
            due = await flow.view(await be.client(), be.repo(), link)
            try:
                url = await flow.start_payment(_gateway(request), link, token, form.get("amount", ""), due, _now())
            except (GatewayRejected, GatewayRetryable) as exc:
                log.warning("payment page not opened", loan_id=link.loan_id, reason=str(exc))
                raise BadInput("payment", text(lang, "pay_unavailable")) from None
            return RedirectResponse(url, status_code=303, headers=HEADERS)
        result = await flow.act(await be.client(), be.repo(), link, action, form, today)
    except BadInput as exc:
        view = await flow.view(await be.client(), be.repo(), link)
        msg = text(lang, "error", reason=_reason(lang, exc.field, exc.reason))
        return _page(
            request,
            "case.html",
            status=422,
            token=token,
            v=view,
            csrf=flow.csrf_token(sid or ""),
            note=msg,
            error_field=exc.field,
            actions=ACTIONS,
        )
    if action == "complaint":
        return _back(token, note="complaint_done", ref=result)
    if action == "plan":
        return _back(token, note="plan_agreed" if getattr(result, "accepted", True) else "plan_waits")
    if action == "preferences":
        return _back(token, note="pref_done")
    return _back(token, note="done")


def install(app) -> None:  # noqa: ANN001 - the API's FastAPI app
    app.include_router(router)
    app.mount("/b-static", StaticFiles(directory=str(HERE / "static")), name="borrower-static")
