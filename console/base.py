"""What every console page shares: the templates and their helpers, the signed-in operator, and the errors, each
handled once. A route of the console's routers (`router()`) takes the operator with `Depends(signed_in)`; an
operator who is not signed in is sent to the sign-in page, and the application layer's refusals (Forbidden,
NotFound, BadInput, an API error, Temporal unreachable) become the error page with its status, in the operator's
language. A page that answers a refusal in its own way (a form shown again with the field's error) catches it
first."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates
from temporalio.service import RPCError

from access.permissions import HOLD_PLACE, HOLD_RELEASE, Forbidden, acting_as, allowed
from api.deps import ApiError
from app.errors import BadInput, NotFound
from console import auth, i18n, worklists
from console.assets import url as asset_url
from console.i18n import N_
from domain import display
from domain.dates import utc_text
from domain.errors import InvalidInput
from domain.money import parse_amount

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).resolve().parent / "templates"))
TEMPLATES.env.globals["asset"] = asset_url
TEMPLATES.env.filters["money"] = lambda v, currency="CNY": money_text(v, currency)
TEMPLATES.env.filters["utc"] = lambda t, fmt="%Y-%m-%d %H:%M": utc_text(t, fmt)  # for labels that say UTC


def money_text(value: Any, currency: str | None = "CNY") -> str:
    """An amount (minor units, or the application layer's decimal string '1234.56') as '¥1,234.56'."""
    currency = currency or "CNY"
    if value is None or value == "" or value == "–":
        return "–"
    if isinstance(value, str):
        try:
            value = parse_amount(value.lstrip("-"), currency, allow_zero=True) * (-1 if value.startswith("-") else 1)
        except InvalidInput:
            return value
    return display.money(int(value), currency)


def sessions(request: Request) -> auth.Sessions:
    return request.app.state.console_sessions


def backend(request: Request):  # noqa: ANN201 - api.server's Backend
    return request.app.state.backend


async def session_of(request: Request) -> auth.Session | None:
    sess = await asyncio.to_thread(sessions(request).get, request.cookies.get(auth.COOKIE))
    if sess is None:
        return None
    if not await asyncio.to_thread(auth.still_live, backend(request).repo(), sess):
        await asyncio.to_thread(sessions(request).end, request.cookies.get(auth.COOKIE))
        return None
    acting_as(sess.caller())
    return sess


def to_login(request: Request) -> Response:
    if request.headers.get("hx-request"):
        return Response(status_code=401, headers={"HX-Redirect": "/console/login"})
    return RedirectResponse(f"/console/login?next={quote(request.url.path)}", status_code=303)


def _minor(value: Any, currency: str) -> int:
    if isinstance(value, int):
        return value
    try:
        text = str(value)
        return parse_amount(text.lstrip("-"), currency, allow_zero=True) * (-1 if text.startswith("-") else 1)
    except InvalidInput:
        return 0


def borrower_clock(tr: i18n.Translator, tz: str | None) -> tuple[str, str] | None:
    """The borrower's local time now and their zone's name: the contact gate counts hours by the borrower's clock."""
    if not tz:
        return None
    import datetime as dt

    try:
        return tr.when(dt.datetime.now(dt.UTC), "%H:%M", tz=tz, named=False), tr.zone_name(tz)
    except Exception:  # noqa: BLE001 - an unknown zone on file: no clock shown rather than no page
        return None


def sum_amounts(rows) -> dict[str, int]:
    """The amounts of the dashboard's rows, added up per currency (a table's total row)."""
    out: dict[str, int] = {}
    for r in rows:
        for cur, v in r.amounts.items():
            out[cur] = out.get(cur, 0) + v
    return out


def tr_of(request: Request) -> i18n.Translator:
    return i18n.translator(request.cookies.get(i18n.COOKIE))


def render(request: Request, template: str, sess: auth.Session | None, status_code: int = 200, **ctx: Any) -> HTMLResponse:
    roles = sess.roles if sess else ()
    tr = tr_of(request)
    if isinstance(ctx.get("message"), tuple):  # (field, reason) from the application layer
        ctx["message"] = i18n.reason(tr, *ctx["message"])
    ctx.update(
        _=tr.gettext,
        gettext=tr.gettext,
        ngettext=tr.ngettext,
        tr=tr,
        languages=i18n.LANGUAGES,
        reason=lambda field, text: i18n.reason(tr, field, text),
        done_text=lambda text: i18n.done(tr, text),
        gate_text=lambda text: i18n.gate_reason(tr, text),
        detail_text=lambda text: i18n.detail(tr, text),
        role_names=lambda roles: ("、" if tr.zh else ", ").join(role_name(tr, r) for r in roles),
        sum_amounts=sum_amounts,
        ladder_items=lambda d: [(k, d[k]) for k in display.in_ladder_order(d)],
        money_columns=worklists.MONEY_COLUMNS,
        money_totals=worklists.money_totals,
        money_sum=lambda values, currency="CNY": money_text(sum(_minor(v, currency) for v in values), currency),
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
        return render(request, "error.html", sess, 413, message=N_("the form is too large"))
    except auth.CsrfError:
        return render(request, "error.html", sess, 403, message=N_("the form's CSRF token is missing or wrong; reload the page"))
    return form


def role_name(tr, role: str) -> str:  # noqa: ANN001 - an i18n.Translator
    return i18n.ROLES.get(role, (role, role))[0 if tr.zh else 1]


class LoginNeeded(Exception):
    """No signed-in operator: the sign-in page, then back."""


async def signed_in(request: Request) -> auth.Session:
    """The dependency of every page that needs an operator: the session, acting as its operator (LoginNeeded)."""
    sess = await session_of(request)
    if sess is None:
        raise LoginNeeded
    request.state.console_session = sess
    return sess


def error_page(request: Request, exc: Exception) -> Response | None:
    """The page for a refusal no route answered itself, or None (not one of the application layer's)."""
    sess = getattr(request.state, "console_session", None)
    if isinstance(exc, LoginNeeded):
        return to_login(request)
    if isinstance(exc, Forbidden):
        return render(request, "error.html", sess, 403, message=("authorization", exc.reason))
    if isinstance(exc, NotFound):
        return render(request, "error.html", sess, 404, message=("authorization", exc.reason))
    if isinstance(exc, BadInput):
        return render(request, "error.html", sess, 422, message=(exc.field, exc.reason))
    if isinstance(exc, ApiError):
        return render(request, "error.html", sess, exc.status, message=("authorization", exc.reason))
    if isinstance(exc, RPCError):
        why = tr_of(request).gettext(N_("Temporal could not be asked: %(why)s"), why=exc.message)
        return render(request, "error.html", sess, 503, message=("input", why))
    return None


class ConsoleRoute(APIRoute):
    """A console route: its refusals become the console's error page (error_page), in one place."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handle = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                return await handle(request)
            except (LoginNeeded, Forbidden, NotFound, BadInput, ApiError, RPCError) as exc:
                page = error_page(request, exc)
                if page is None:  # pragma: no cover - error_page answers every type caught here
                    raise
                return page

        return route


def router() -> APIRouter:
    return APIRouter(prefix="/console", include_in_schema=False, route_class=ConsoleRoute)
