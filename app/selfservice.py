"""The borrower's page, as a flow: a message's link, the one-time code that opens it, the case shown to the borrower,
and what the borrower may do there, each through the same application layer, validation and audit as an operator's
input (the actor `borrower:<loan>`). Rules: domain/selfservice.py; tables: db/selfservice.py; pages: borrower/.

A link of a message to a guarantor opens no debt: the page says who to call, nothing more (PIPL art. 6; a guarantor
is told of the debt by the letter addressed to them, not by a page that anyone holding the phone could open)."""

from __future__ import annotations

import asyncio
import datetime as dt
import secrets
from dataclasses import dataclass, field
from typing import Any

import structlog
from temporalio.client import Client

from access.permissions import as_borrower
from app import inputs, visibility
from app.errors import BadInput
from db.records import EventRecord
from db.repo import Repo
from db.selfservice import LinkStore
from db.tables import BorrowerLinkRow
from domain import selfservice as rules
from domain.dates import local_date
from domain.errors import InvalidInput
from domain.models import CaseStatus
from domain.money import format_amount
from infra.config import settings
from infra.link_secret import link_secret

log = structlog.get_logger("selfservice")


class LinkError(Exception):
    """The link opens nothing: unknown (mistyped, altered), revoked, or expired. The page says which, in words."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def open_link(repo: Repo, token: str, now: dt.datetime) -> BorrowerLinkRow:
    if not rules.looks_like_token(token):
        raise LinkError("invalid")
    link = LinkStore(repo).link(rules.keyed_hash(link_secret(), "link", token))
    if link is None or link.revoked_at is not None:
        raise LinkError("invalid")
    if now >= link.expires_at:
        raise LinkError("expired")
    return link


def code_idempotency_key(link: BorrowerLinkRow, now: dt.datetime) -> str:
    return f"code:{link.id}:{now.isoformat()}"


async def send_code(repo: Repo, gateway: Any, link: BorrowerLinkRow, now: dt.datetime) -> rules.Refusal | None:
    """A one-time code to the phone on file of whoever the message went to, through the gateway: a transactional
    message the borrower asked for, exempt from the caps and the window, and recorded as such in the contact ledger."""
    store = LinkStore(repo)
    sent = await asyncio.to_thread(store.codes_sent_to, link.recipient_id, now - dt.timedelta(hours=24))
    refusal = rules.may_send_code(now, link.expires_at, link.locked_until, link.code_sent_at, sent)
    if refusal is not None:
        return refusal
    person = await asyncio.to_thread(repo.borrower, link.recipient_id)
    if person is None or not person.phone:
        return rules.Refusal("no_phone")
    assert link.id is not None
    if not await asyncio.to_thread(store.reserve_code, link.id, now):  # another request is sending this link's code
        return rules.Refusal("too_soon", now + rules.RESEND_AFTER)
    code = rules.new_code()
    lang = "en" if person.language == "en" else "zh"
    minutes = rules.CODE_TTL.seconds // 60
    text = (
        f"Your code for the page of your loan: {code}. It expires in {minutes} minutes. Never give it to anyone."
        if lang == "en"
        else f"您的验证码：{code}，{minutes}分钟内有效。请勿告诉任何人，我行工作人员不会向您索要。"
    )
    key = code_idempotency_key(link, now)
    resp = await gateway.send("sms", {"loan_id": link.loan_id, "to": person.phone, "text": text, "language": lang}, key)
    assert link.id is not None
    await asyncio.to_thread(
        store.code_sent,
        link,
        rules.keyed_hash(link_secret(), f"code:{link.id}", code),
        now,
        idempotency_key=key,
        reference=resp.get("id"),
    )
    log.info("borrower code sent", loan_id=link.loan_id, link=link.id)  # never the code, the phone or the token
    return None


def verify_code(repo: Repo, link: BorrowerLinkRow, code: str, now: dt.datetime) -> str | rules.Refusal:
    """A new session's id when the code is right; else why not (wrong, expired, or the link locked until when)."""
    assert link.id is not None
    code = code.strip()
    store = LinkStore(repo)
    got = store.check_code(link.id, rules.keyed_hash(link_secret(), f"code:{link.id}", code), now)
    if got == "ok":
        sid = rules.new_session()
        store.start_session(link.id, rules.keyed_hash(link_secret(), "session", sid), now)
        log.info("borrower page opened", loan_id=link.loan_id, link=link.id)
        return sid
    if got == "locked":
        fresh = store.link(link.token_hash)
        return rules.Refusal("locked", fresh.locked_until if fresh else None)
    return rules.Refusal("wrong_code" if got == "wrong" else "no_code")


def session_link(repo: Repo, token: str, session_id: str | None, now: dt.datetime) -> BorrowerLinkRow | None:
    """The link a session opened, when it is the link of this URL (a session of one link never opens another)."""
    if not session_id:
        return None
    link = LinkStore(repo).session(rules.keyed_hash(link_secret(), "session", session_id), now)
    if link is None or link.audience != "borrower" or link.token_hash != rules.keyed_hash(link_secret(), "link", token):
        return None
    return link


def csrf_token(session_id: str) -> str:
    """The token each form of a session carries: derived from the session, so nothing more is stored."""
    return rules.keyed_hash(link_secret(), "csrf", session_id)[:32]


# ---------------------------------------------------------------------------- what the borrower sees


@dataclass
class BorrowerView:
    currency: str
    outstanding: dict[str, str]
    dpd: int
    status: str
    upcoming_title: str | None
    upcoming_on: dt.date | None
    promise: dict[str, Any] | None
    plan: dict[str, Any] | None
    paid: list[dict[str, str]] = field(default_factory=list)
    time_barred: bool = False  # past the limitation period: repaying is voluntary, and a promise restarts the period
    holds: list[str] = field(default_factory=list)
    closed: bool = False
    waiting: str | None = None  # the borrower's own proposal that waits for a supervisor (its summary)
    prefs: dict[str, Any] = field(default_factory=dict)  # their contact preferences, to fill the form with


def _title(title: str) -> str:
    """The step's name as the borrower reads it: the Chinese name in its title's brackets, else the title."""
    for open_, close in (("（", "）"), ("(", ")")):
        if open_ in title and close in title:
            inner = title.split(open_, 1)[1].split(close, 1)[0]
            if any("\u4e00" <= ch <= "\u9fff" for ch in inner):
                return inner
    return title


def view_of(st: CaseStatus, payments: list, tz: str) -> BorrowerView:
    up = st.upcoming
    return BorrowerView(
        currency=st.currency,
        outstanding=st.outstanding,
        dpd=st.dpd,
        status=st.status,
        upcoming_title=_title(up.title or up.key) if up else None,
        upcoming_on=local_date(up.at, tz) if up else None,
        promise=(
            {"amount": format_amount(st.promise.amount, st.currency), "date": st.promise.date, "last_day": st.promise.last_day}
            if st.promise and st.promise.status == "active"
            else None
        ),
        plan=(
            {
                "kind": st.plan.kind,
                "terms": st.plan.terms,
                "schedule": [
                    {"due": i.due, "amount": format_amount(i.amount, st.currency), "last_day": i.last_day or i.due}
                    for i in st.plan.schedule
                ],
            }
            if st.plan and st.plan.status == "active"
            else None
        ),
        paid=[
            {"on": local_date(p.paid_at, tz).isoformat(), "amount": format_amount(p.amount, p.currency)}
            for p in payments
            if p.status == "applied"
        ],
        holds=[h.kind for h in st.holds],
        closed=st.status == "closed",
        time_barred=st.time_barred is not None,
        waiting=(
            st.pending_approval.summary
            if st.pending_approval and st.pending_approval.maker.operator_id.startswith("borrower")
            else None
        ),
    )


async def view(client: Client, repo: Repo, link: BorrowerLinkRow) -> BorrowerView:
    with as_borrower(link.loan_id):
        st = await visibility.case_status(client, link.loan_id)
    from db.preferences import PreferenceStore

    person = await asyncio.to_thread(repo.borrower, link.borrower_id)
    payments = await asyncio.to_thread(repo.payments, link.loan_id)
    v = view_of(st, payments, person.timezone if person else "Asia/Shanghai")
    p = await asyncio.to_thread(PreferenceStore(repo).get, link.borrower_id)
    if p is not None:
        from domain.compliance import hhmm

        v.prefs = {
            "hours_start": hhmm(p.hours[0]) if p.hours else "",
            "hours_end": hhmm(p.hours[1]) if p.hours else "",
            "quiet": sorted(p.quiet),
            "not_at_work": p.not_at_work,
        }
    return v


# ---------------------------------------------------------------------------- what the borrower may do


async def act(client: Client, repo: Repo, link: BorrowerLinkRow, action: str, form: dict[str, str], today: dt.date) -> Any:
    """One of the borrower's inputs, sent as the borrower (BadInput names the field and the reason). The answer is the
    case's (an UpdateResult; a plan beyond the plain limits answers accepted=False: it waits for a supervisor)."""
    if action == "complaint":
        return await complain(client, repo, link, form.get("note", ""))
    if action == "preferences":
        return await asyncio.to_thread(set_preferences, repo, link, form)
    with as_borrower(link.loan_id):
        if action == "promise":
            day = _date(form.get("date", ""), "date")
            await _check_promise_share(client, repo, link, form.get("amount", ""))
            return await inputs.send_update(client, link.loan_id, "promise", {"amount": form.get("amount", ""), "date": day})
        if action == "plan":
            return await inputs.send_update(client, link.loan_id, "plan", plan_fields(form))
        if action == "hardship":
            until = _date(form.get("until", ""), "until")
            note = f"borrower: {form.get('cause', 'hardship')}"[:200]
            return await inputs.send_update(client, link.loan_id, "hold", {"kind": "hardship", "until": until, "reference": note})
        if action == "dispute":
            note = f"borrower: {form.get('note', '').strip()}"[:200]
            return await inputs.send_update(
                client, link.loan_id, "hold", {"kind": "dispute", "received_on": today, "reference": note}
            )
    raise BadInput("action", f"{action!r} is not something the page can do")


def set_preferences(repo: Repo, link: BorrowerLinkRow, form: dict[str, str]) -> str:
    """The borrower's contact preferences, checked against the loan's policy window (BadInput names the field),
    kept for the gate, which applies them to every loan of theirs from the next contact on."""
    from db.preferences import PreferenceStore, describe
    from domain.compliance import PREFERABLE_CHANNELS, preferences
    from domain.policy import load_policy

    loan = repo.loan(link.loan_id)
    try:
        rules = load_policy(getattr(loan, "policy", None) or "default").contact
    except Exception:  # noqa: BLE001 - a loan whose policy file is gone: the default's window
        rules = load_policy("default").contact
    quiet = [c for c in PREFERABLE_CHANNELS if form.get(f"quiet_{c}")]
    try:
        prefs = preferences(
            form.get("hours_start", "").strip() or None,
            form.get("hours_end", "").strip() or None,
            quiet,
            bool(form.get("not_at_work")),
            rules,
        )
    except InvalidInput as exc:
        raise BadInput(exc.field, exc.reason) from None
    told = PreferenceStore(repo).set(link.borrower_id, prefs, by=f"borrower:{link.loan_id}", at=dt.datetime.now(dt.UTC))
    log.info("contact preferences", loan_id=link.loan_id, cases=told)
    return describe(prefs)


async def _check_promise_share(client: Client, repo: Repo, link: BorrowerLinkRow, amount: str) -> None:
    """A borrower's own promise covers at least the policy's share of what is due ([promise] self_service_min_percent)."""
    from domain.money import parse_amount
    from domain.policy import load_policy

    st = await visibility.case_status(client, link.loan_id)
    try:
        minor = parse_amount(amount.strip(), st.currency, "amount")
        total = parse_amount(st.outstanding["total"], st.currency, "amount")
    except InvalidInput as exc:
        raise BadInput(exc.field, exc.reason) from None
    loan = await asyncio.to_thread(repo.loan, link.loan_id)
    try:
        percent = load_policy(getattr(loan, "policy", None) or "default").promise.self_service_min_percent
    except Exception:  # noqa: BLE001 - a loan whose policy file is gone: the default's share
        percent = load_policy("default").promise.self_service_min_percent
    least = rules.promise_too_small(minor, total, percent)
    if least is not None:
        raise BadInput(
            "amount",
            f"a promise of {amount} is less than {percent}% of the {st.outstanding['total']} due: at least "
            f"{format_amount(least, st.currency)}",
        )


PLAN_KINDS = ("instalments", "deferral", "interest_waiver")


def plan_fields(form: dict[str, str]) -> dict[str, Any]:
    """The plan form's fields as the case's plan input: only those of the chosen kind (the others' inputs are
    hidden on the page but may still arrive filled in), numbers and dates checked here with the field named."""
    kind = form.get("kind", "")
    if kind not in PLAN_KINDS:
        raise BadInput("kind", f"{kind!r} is not a plan (one of {', '.join(PLAN_KINDS)})")
    if kind == "instalments":
        return {
            "kind": kind,
            "instalments": _whole(form.get("instalments", ""), "instalments"),
            "first_due": _date(form.get("first_due", ""), "first_due"),
        }
    if kind == "deferral":
        return {"kind": kind, "until": _date(form.get("until", ""), "until")}
    return {
        "kind": kind,
        "waiver_percent": _whole(form.get("waiver_percent", ""), "waiver_percent"),
        "pay_by": _date(form.get("pay_by", ""), "pay_by"),
    }


def _whole(text: str, name: str) -> int:
    t = text.strip()
    if not t.isdigit() or len(t) > 3:
        raise BadInput(name, f"{text!r} is not a whole number")
    return int(t)


async def complain(client: Client, repo: Repo, link: BorrowerLinkRow, note: str) -> str:
    """A complaint about how the borrower was treated: a complaint hold on every open case of theirs at once, which
    stops every contact, for the compliance worklist; the answer is the reference shown to the borrower."""
    now = dt.datetime.now(dt.UTC)
    reference = f"C-{now:%Y%m%d}-{secrets.token_hex(3).upper()}"
    text = f"borrower complaint {reference}: {note.strip()}"[:200]
    # kept first, on the case's audit trail, whatever happens to the holds: a complaint is never lost
    event = EventRecord(
        workflow_id=link.workflow_id,
        loan_id=link.loan_id,
        kind="borrower_complaint",
        detail=f"{reference}: {note.strip()[:500]}",
        at=now,
        dedupe_key=f"complaint:{reference}",
        actor=f"borrower:{link.loan_id}",
    )
    await asyncio.to_thread(repo.record_events, [event])
    loans = [link.loan_id] + [x for x in await asyncio.to_thread(repo.other_loans, link.loan_id) if x != link.loan_id]
    placed, missed = [], []
    with as_borrower(link.loan_id):
        for loan in loans:
            try:
                await inputs.send_update(client, loan, "hold", {"kind": "complaint", "reference": text})
                placed.append(loan)
            except BadInput as exc:  # no open case for that loan, or already on a complaint hold: nothing to stop there
                log.info("complaint hold not placed", loan_id=loan, reason=exc.reason)
            except Exception as exc:  # noqa: BLE001 - Busy, Temporal unavailable: the borrower is told to send it again
                missed.append(loan)
                log.error("complaint hold not placed", loan_id=loan, error=type(exc).__name__)
    log.warning("borrower complaint", loan_id=link.loan_id, reference=reference, cases=len(placed), missed=len(missed))
    if missed:
        raise BadInput("complaint", f"recorded as {reference}, but contact could not be stopped on every loan yet: send it again")
    return reference


async def start_payment(gateway: Any, link: BorrowerLinkRow, token: str, amount: str, due: BorrowerView, now: dt.datetime) -> str:
    """A payment page at the gateway for `amount` (more than zero, at most what is due), and its address to send the
    borrower to. The gateway confirms the payment by its signed webhook (app/webhooks.py); this applies nothing."""
    from domain.money import parse_amount

    try:
        minor = parse_amount(amount.strip(), due.currency, "amount")
        total = parse_amount(due.outstanding["total"], due.currency, "amount")
    except InvalidInput as exc:
        raise BadInput(exc.field, exc.reason) from None
    if minor > total:
        raise BadInput("amount", f"{amount} is more than the {due.outstanding['total']} due")
    base = settings().public_url.rstrip("/")
    payment_id = f"PL-{link.id}-{secrets.token_hex(6)}"
    body = {
        "payment_id": payment_id,
        "loan_id": link.loan_id,
        "amount": format_amount(minor, due.currency),
        "currency": due.currency,
        "webhook_url": f"{base}/webhooks/payments",
        "return_url": f"{base}/b/{token}?note=payment_sent",
    }
    resp = await gateway.checkout(body, f"checkout:{payment_id}")
    log.info("borrower payment page", loan_id=link.loan_id, payment_id=payment_id)
    return str(resp["url"])


def _date(text: str, name: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text.strip())
    except ValueError:
        raise BadInput(name, f"{text!r} is not a date (YYYY-MM-DD)") from None


def secret_mismatch(repo: Repo) -> str | None:
    """Why the links the worker makes cannot be opened here (another secret signed the newest link), or None."""
    theirs = LinkStore(repo).latest_fingerprint()
    ours = rules.fingerprint(link_secret())
    if theirs is None or theirs == ours:
        return None
    return (
        f"the newest borrower link was made with another secret (fingerprint {theirs}, this process {ours}): the "
        "worker and the API must hold the same COLLECTIONS_LINK_SECRET, or every link in borrowers' messages opens "
        "nothing (a secret rotated since leaves only older links unopenable: then ignore this)"
    )
