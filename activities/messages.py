"""What each channel sends: request bodies rendered from Jinja2 templates in zh-CN and en.

Contact details and names are read from the database by the activity and used only here;
nothing rendered goes back to the workflow.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined

from activities.contracts import ChannelRequest
from db.tables import BorrowerRow
from domain import channels
from domain.money import format_amount

TEMPLATES = Path(__file__).resolve().parent / "templates"
BANK = {"zh": "示范银行", "en": "Demo Bank"}
HOTLINE = "95500"

_env = Environment(
    loader=FileSystemLoader(TEMPLATES), undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, trim_blocks=True
)


def language(borrower: BorrowerRow) -> str:
    return "en" if borrower.language == "en" else "zh"


def render(template: str, lang: str, **ctx: Any) -> str:
    return _env.get_template(f"{lang}/{template}.j2").render(**ctx).strip()


def context(req: ChannelRequest, borrower: BorrowerRow, today: dt.date) -> dict[str, Any]:
    lang = language(borrower)
    o = {k: format_amount(v, req.currency) for k, v in req.outstanding_minor.items()}
    return dict(
        bank=BANK[lang],
        hotline=HOTLINE,
        name=borrower.name,
        loan_tail=req.loan_id[-4:],
        dpd=req.dpd,
        currency=req.currency,
        total=o["total"],
        principal=o["principal"],
        interest=o["interest"],
        fees=o["fees"],
        due_date=req.due_date.isoformat(),
        next_step=req.next_step,
        next_dpd=req.next_dpd,
        today=today.isoformat(),
        notice_days=req.notice_days,  # the policy's bureau_notice_days: the report waits exactly what the notice says
        time_barred=req.time_barred,  # past the limitation period: a voluntary request that threatens nothing
        link=None,  # the borrower page's link of this message (body() sets it)
        reply_keywords=req.reply_keywords,  # "回复1：3日内还清" (app/replies.py acts on the reply)
    )


def _notice(req) -> bool:
    """The credit-bureau notice sent by sms or email (the letter failed): its own templates."""
    return channels.row(req.action).kind == "bureau_notice"


def _sms(req, borrower, lang, ctx, base, amount, extra):
    return {
        **base,
        "to": borrower.phone,
        "text": render("sms_bureau_notice" if _notice(req) else "sms", lang, **ctx),
        "language": lang,
    }


def _email(req, borrower, lang, ctx, base, amount, extra):
    notice = _notice(req)
    return {
        **base,
        "to": borrower.email,
        "subject": render("email_subject_bureau_notice" if notice else "email_subject", lang, **ctx),
        "body": render("letter_bureau_notice" if notice else "email_body", lang, **ctx),
        "language": lang,
    }


def _letter(req, borrower, lang, ctx, base, amount, extra):
    kind = req.letter or channels.row(req.action).kind or "reminder_notice"
    return {
        **base,
        "kind": kind,
        "recipient": borrower.name,
        "address": borrower.address,
        "content": render(f"letter_{kind}", lang, **ctx),
        "language": lang,
    }


def _call(req, borrower, lang, ctx, base, amount, extra):
    return {**base, "to": borrower.phone, "script": render("call_script", lang, **ctx), "language": lang}


def _visit(req, borrower, lang, ctx, base, amount, extra):
    return {**base, "address": borrower.address, "notes": render("visit_notes", lang, **ctx), **extra}


def _law_firm(req, borrower, lang, ctx, base, amount, extra):
    return {
        **base,
        "recipient": borrower.name,
        "address": borrower.address,
        **amount,
        "content": render("letter_lawyers_letter", lang, **ctx),
    }


def _court(req, borrower, lang, ctx, base, amount, extra):
    return {**base, "kind": channels.row(req.action).kind, "defendant": borrower.name, "address": borrower.address, **amount}


def _credit_bureau(req, borrower, lang, ctx, base, amount, extra):
    return {**base, "kind": channels.row(req.action).kind, **amount, "dpd": max(req.dpd, 0)}


def _agency(req, borrower, lang, ctx, base, amount, extra):
    return {**base, "kind": channels.row(req.action).kind, **amount}


# The request body of each gateway channel of the registry (domain/channels.py); tests/test_channels.py checks
# that every registry channel has one.
BODIES = {
    "sms": _sms,
    "email": _email,
    "letter": _letter,
    "call": _call,
    "visit": _visit,
    "law_firm": _law_firm,
    "court": _court,
    "credit_bureau": _credit_bureau,
    "agency": _agency,
}


def body(
    channel: str,
    req: ChannelRequest,
    borrower: BorrowerRow,
    today: dt.date,
    debtor: BorrowerRow | None = None,
    extra: dict[str, Any] | None = None,
    link: str | None = None,
) -> dict[str, Any]:
    """The gateway request body for one channel action.

    `borrower` is the recipient: the borrower, or the loan's guarantor (then `debtor` is the borrower,
    and the letter opens by saying why the guarantor receives it). `extra`: fields the activity adds
    (a visit's allowed dates and hours)."""
    lang = language(borrower)
    ctx = context(req, borrower, today) | {"link": link}
    if debtor is not None:
        prefix = render("guarantor_prefix", lang, guarantor=borrower.name, debtor=debtor.name, loan_tail=ctx["loan_tail"])
        result = body(channel, req, borrower, today, extra=extra, link=link)
        if "content" in result:
            result["content"] = prefix + "\n\n" + result["content"]
        return result
    build = BODIES.get(channel)
    if build is None:
        raise ValueError(f"no message for channel {channel}")
    amount = {"amount": format_amount(req.outstanding_minor["total"], req.currency), "currency": req.currency}
    return build(req, borrower, lang, ctx, {"loan_id": req.loan_id}, amount, extra or {})
