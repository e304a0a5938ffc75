"""The outbox, read back: GET /outbox (JSON) and /outbox.html (a page for people, which also takes ?key=)."""

from __future__ import annotations

import html
import json
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse

from sandbox.gateway.channels import CHANNELS
from sandbox.gateway.common import ApiError
from sandbox.gateway.state import Gateway


def _check_channel(channel: str | None) -> None:
    if channel and channel not in CHANNELS:
        raise ApiError(422, "channel", f"unknown channel; one of {', '.join(CHANNELS)}")


def outbox_router(gw: Gateway) -> APIRouter:
    router = APIRouter()

    @router.get("/outbox")
    async def outbox(
        request: Request,
        loan_id: str | None = None,
        channel: str | None = None,
        idempotency_key: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 1000,
        after: Annotated[int | None, Query(ge=0, description="only deliveries after this cursor (a previous `last`)")] = None,
    ) -> JSONResponse:
        gw.check_key(request)
        _check_channel(channel)
        rows = gw.store.items(loan_id=loan_id, channel=channel, idempotency_key=idempotency_key, limit=limit, after=after)
        items = [{k: v for k, v in i.items() if k != "seq"} for i in rows]  # seq: a cursor, not part of a delivery
        last = rows[-1]["seq"] if rows else after
        return JSONResponse({"items": items, "count": len(items), "last": last})

    @router.get("/outbox.html", response_class=HTMLResponse)
    async def outbox_page(
        request: Request,
        loan_id: str | None = None,
        channel: str | None = None,
        limit: Annotated[int, Query(ge=1, le=100_000)] = 200,
        before: Annotated[int | None, Query(ge=1, description="older than this seq (paging)")] = None,
    ) -> HTMLResponse:
        gw.check_key(request, allow_query=True)
        _check_channel(channel)
        items = gw.store.items(loan_id=loan_id, channel=channel, limit=limit + 1, newest_first=True, before=before)
        older = items[limit - 1]["seq"] if len(items) > limit else None  # one more row read: is there a next page
        return HTMLResponse(
            render_page(
                items[:limit],
                loan_id=loan_id,
                channel=channel,
                key=request.query_params.get("key"),
                stats=gw.stats.as_dict(),
                limit=limit,
                before=before,
                older=older,
            )
        )

    return router


_SUMMARY_FIELDS = (
    "kind",
    "to",
    "recipient",
    "defendant",
    "subject",
    "text",
    "outcome",
    "promise_amount",
    "promise_date",
    "scheduled_for",
    "amount",
    "currency",
    "dpd",
    "matter_id",
    "case_number",
    "reference",
    "placement_id",
    "visit_id",
)

_CSS = """
body{font-family:system-ui,-apple-system,"PingFang SC","Microsoft YaHei","Noto Sans CJK SC",sans-serif;margin:1.5rem;color:#222}
table{border-collapse:collapse;width:100%;font-size:.9rem}
th,td{border:1px solid #ccc;padding:.3rem .5rem;vertical-align:top;text-align:left}
th{background:#f3f3f3}tr:nth-child(even) td{background:#fafafa}pre{white-space:pre-wrap;margin:0;font-size:.8rem;max-width:60rem}
.ch{font-weight:600}.dup{color:#a60}form{margin:.5rem 0 1rem}small{color:#666}
"""


def render_page(
    items: list[dict],
    *,
    loan_id: str | None,
    channel: str | None,
    key: str | None,
    stats: dict,
    limit: int = 200,
    before: int | None = None,
    older: int | None = None,
) -> str:
    e = lambda v: html.escape("" if v is None else str(v), quote=True)  # noqa: E731

    def link(**params: str | None) -> str:
        q = {k: v for k, v in params.items() if v}
        if key:
            q["key"] = key
        return "/outbox.html" + ("?" + urlencode(q) if q else "")

    rows = []
    for it in items:
        merged = {**it["body"], **it["response"]}
        summary = "<br>".join(f"<b>{e(k)}</b>: {e(merged[k])}" for k in _SUMMARY_FIELDS if k in merged)
        rows.append(
            "<tr>"
            f"<td>{e(it['accepted_at'])}</td>"
            f'<td class=ch><a href="{e(link(channel=it["channel"], loan_id=loan_id))}">{e(it["channel"])}</a></td>'
            f'<td><a href="{e(link(loan_id=it["loan_id"], channel=channel))}">{e(it["loan_id"])}</a></td>'
            f"<td>{summary}</td>"
            f"<td><small>{e(it['id'])}<br>{e(it['idempotency_key'])}</small></td>"
            f"<td{' class=dup' if it['presented'] > 1 else ''}>{e(it['presented'])}</td>"
            "<td><details><summary>request / response</summary>"
            f"<pre>{e(json.dumps(it['body'], ensure_ascii=False, indent=2))}</pre>"
            f"<hr><pre>{e(json.dumps(it['response'], ensure_ascii=False, indent=2))}</pre></details></td>"
            "</tr>"
        )
    options = "".join(f'<option value="{e(c)}"{" selected" if c == channel else ""}>{e(c)}</option>' for c in CHANNELS)
    filters = " · ".join(f"{e(k)} = {e(v)}" for k, v in (("loan", loan_id), ("channel", channel)) if v)
    return (
        "<!doctype html><html lang=zh-CN><head><meta charset=utf-8>"
        '<meta name=viewport content="width=device-width,initial-scale=1">'
        f"<title>Sandbox gateway outbox</title><style>{_CSS}</style></head><body>"
        "<h1>Sandbox gateway outbox</h1>"
        f"<p><small>{len(items)} deliveries shown, newest first{' (an older page)' if before else ''}"
        f"{(' · ' + filters) if filters else ''} · "
        f"requests {e(stats['requests'])}, accepted {e(stats['accepted'])}, duplicates {e(stats['duplicates'])}, "
        f"rejected {e(stats['rejected'])}, faults {e(stats['faults'])}</small></p>"
        "<form method=get action=/outbox.html>"
        f'<label>loan <input name=loan_id value="{e(loan_id)}"></label> '
        f'<label>channel <select name=channel><option value="">all</option>{options}</select></label> '
        + (f'<input type=hidden name=key value="{e(key)}">' if key else "")
        + f'<button>filter</button> <a href="{e(link())}">clear</a></form>'
        "<table><thead><tr><th>accepted at (UTC)</th><th>channel</th><th>loan</th><th>summary</th>"
        "<th>gateway id / idempotency key</th><th>presented</th><th>detail</th></tr></thead><tbody>"
        + ("".join(rows) or "<tr><td colspan=7>no deliveries</td></tr>")
        + "</tbody></table>"
        + "<p class=pages>"
        + (f'<a href="{e(link(loan_id=loan_id, channel=channel))}">newest</a> ' if before else "")
        + (
            f'<a rel=next href="{e(link(loan_id=loan_id, channel=channel, before=str(older), limit=str(limit)))}">'
            f"older {limit} →</a>"
            if older
            else ""
        )
        + "</p></body></html>"
    )
