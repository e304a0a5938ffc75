"""The console and the API's docs without a browser: local assets, sign-in, sessions and CSRF, the
dashboard's figures from the projection, and the worklists (an in-process app over a fresh database)."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import re

import httpx
import pytest

from access.operators import Operators
from api.server import create_app
from console import assets, dashboard
from console.bench_dashboard import seed
from console.worklists import FLOOR_ZONE
from db.engine import make_engine, migrate
from db.records import PaymentRecord
from db.repo import Repo
from db.tables import BorrowerRow, CaseRow, EventRow, LoanRow
from domain import display
from domain.dates import local_date

BASE = "http://console.test"
ORIGIN = {"Origin": BASE}
BOOTSTRAP = "console-test-bootstrap-0123456789"


@pytest.fixture
def fresh(tmp_path) -> Repo:
    url = f"sqlite:///{tmp_path / 'console.db'}"
    migrate(url)
    return Repo(make_engine(url))


def client(repo, base: str = BASE) -> httpx.AsyncClient:
    app = create_app(tokens=[BOOTSTRAP], repo=repo)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=base)


def token_for(repo, name: str, roles: list[str]) -> str:
    store = Operators(repo)
    return store.issue_token(store.ensure(name, roles).id).token


async def sign_in(c: httpx.AsyncClient, token: str) -> httpx.Response:
    return await c.post(
        "/console/login", data={"token": token, "next": "/console/dashboard"}, headers={"Origin": str(c.base_url).rstrip("/")}
    )


def csrf_of(html: str) -> str:
    return re.search(r'name="csrf" value="([^"]+)"', html).group(1)


# --------------------------------------------------------------------------- docs and assets


def test_the_vendored_assets_are_the_package_files_listed():
    assert assets.check_vendored() == []
    for path, (_pkg, version, _digest) in assets.VENDORED.items():
        assert version in (assets.STATIC_DIR / "vendor" / "VENDOR.md").read_text(), path


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_reference_only_same_origin_assets_and_they_are_served(fresh, page):
    async with client(fresh) as c:
        r = await c.get(page)
        assert r.status_code == 200
        refs = re.findall(r'(?:src|href)\s*=\s*["\']([^"\']+)', r.text) + re.findall(r"url\(['\"]?([^'\")]+)", r.text)
        refs += re.findall(r"url:\s*['\"]([^'\"]+)", r.text) + re.findall(r'spec-url="([^"]+)"', r.text)
        assert refs, r.text
        assert not re.search(r"https?://", r.text), "the page names another origin"
        for ref in refs:
            assert ref.startswith("/"), ref
            got = await c.get(ref)
            assert got.status_code == 200, ref
            assert len(got.content) > 100, ref
        js = [ref for ref in refs if ref.endswith(".js")]
        assert js, "no script found on the page"
        for ref in js:
            body = (await c.get(ref)).content
            listed = assets.VENDORED[ref.removeprefix(assets.STATIC_URL + "/")]
            assert hashlib.sha256(body).hexdigest() == listed[2]


# --------------------------------------------------------------------------- sign-in, sessions, CSRF


async def test_sign_in_sets_a_strict_http_only_session_cookie_and_sign_out_ends_it(fresh):
    token = token_for(fresh, "ana", ["viewer"])
    async with client(fresh) as c:
        r = await c.get("/console/dashboard")
        assert r.status_code == 303 and r.headers["location"].startswith("/console/login")
        bad = await sign_in(c, token[:-2] + "xx")
        assert bad.status_code == 401 and "token" in bad.text and "set-cookie" not in bad.headers
        r = await sign_in(c, token)
        assert r.status_code == 303 and r.headers["location"] == "/console/dashboard"
        cookie = r.headers["set-cookie"]
        assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/console" in cookie
        assert "Secure" not in cookie  # plain http on loopback
        assert token not in cookie
        page = await c.get("/console/dashboard")
        assert page.status_code == 200 and "ana" in page.text
        old = c.cookies.get("console_session")
        out = await c.post("/console/logout", data={"csrf": csrf_of(page.text)}, headers=ORIGIN)
        assert out.status_code == 303
        c.cookies.set("console_session", old, domain="console.test", path="/console")
        assert (await c.get("/console/dashboard")).status_code == 303, "the old cookie still works after sign-out"


async def test_a_session_is_known_to_every_api_replica_and_only_its_hash_is_stored(fresh):
    """Two API processes on one database (scaled out behind a load balancer): signed in on one, the operator's
    next request may land on the other. The database keeps the SHA-256 of the session id, not the id."""
    from sqlmodel import select

    from db.tables import ConsoleSessionRow

    token = token_for(fresh, "bo", ["viewer"])
    async with client(fresh) as a, client(fresh) as b:
        assert (await sign_in(a, token)).status_code == 303
        sid = a.cookies.get("console_session")
        b.cookies.set("console_session", sid, domain="console.test", path="/console")
        page = await b.get("/console/dashboard")
        assert page.status_code == 200 and "bo" in page.text
        with fresh.session() as s:
            [row] = s.exec(select(ConsoleSessionRow)).all()
        assert row.key != sid and len(row.key) == 64 and sid not in row.key
        out = await b.post("/console/logout", data={"csrf": csrf_of(page.text)}, headers=ORIGIN)
        assert out.status_code == 303
        assert (await a.get("/console/dashboard")).status_code == 303, "signed out on one replica, still in on the other"


async def test_the_cookie_is_secure_behind_https(fresh, monkeypatch):
    token = token_for(fresh, "bo", ["viewer"])
    async with client(fresh, "https://console.test") as c:
        r = await sign_in(c, token)
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
    proxied = {"Origin": BASE, "X-Forwarded-Proto": "https"}
    async with client(fresh) as c:  # a proxy's header is believed only when told to
        r = await c.post("/console/login", data={"token": token}, headers=proxied)
        assert r.status_code == 303 and "Secure" not in r.headers["set-cookie"]
    monkeypatch.setenv("CONSOLE_TRUST_PROXY", "1")
    async with client(fresh) as c:
        r = await c.post("/console/login", data={"token": token}, headers=proxied)
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]


async def test_a_revoked_token_ends_its_console_session(fresh):
    store = Operators(fresh)
    issued = store.issue_token(store.ensure("cy", ["viewer"]).id)
    async with client(fresh) as c:
        assert (await sign_in(c, issued.token)).status_code == 303
        assert (await c.get("/console/dashboard")).status_code == 200
        store.revoke(issued.token_id)
        assert (await c.get("/console/dashboard")).status_code == 303


async def test_forms_without_the_csrf_token_or_from_another_origin_are_refused(fresh):
    token = token_for(fresh, "di", ["collector"])
    async with client(fresh) as c:
        assert (await sign_in(c, token)).status_code == 303
        page = await c.get("/console/dashboard")
        csrf = csrf_of(page.text)
        r = await c.post("/console/cases/L1/promise", data={"amount": "10", "date": "2030-01-01"}, headers=ORIGIN)
        assert r.status_code == 403 and "CSRF" in r.text
        r = await c.post("/console/cases/L1/promise", data={"csrf": csrf, "amount": "10"}, headers={"Origin": "http://evil.test"})
        assert r.status_code == 403
        r = await c.post("/console/logout", data={"csrf": "wrong"}, headers=ORIGIN)
        assert r.status_code == 403
        # and a sign-in posted from another site is refused before the token is looked at
        r = await c.post("/console/login", data={"token": token}, headers={"Origin": "http://evil.test"})
        assert r.status_code == 403


async def test_sign_in_attempts_are_limited(fresh):
    async with client(fresh) as c:
        codes = [(await sign_in(c, "ct_000000000000_" + "x" * 43)).status_code for _ in range(12)]
    assert codes[:10] == [401] * 10 and codes[10:] == [429, 429]


# --------------------------------------------------------------------------- dashboard


def _case(
    repo,
    i: int,
    *,
    dpd: int,
    stage: str,
    status: str = "active",
    outcome: str | None = None,
    opened_days_ago: int = 40,
    closed_days_ago: int | None = None,
    amount: int = 100_00,
) -> None:
    now = dt.datetime.now(dt.UTC)
    loan = f"D{i}"
    with repo.session() as s:
        s.add(BorrowerRow(id=f"B{i}", name="x", phone="13800000000"))
        s.add(
            LoanRow(
                id=loan,
                borrower_id=f"B{i}",
                currency="CNY",
                principal=amount,
                interest=0,
                fees=0,
                due_date=now.date() - dt.timedelta(days=dpd),
            )
        )
        s.add(
            CaseRow(
                workflow_id=f"loan-{loan}",
                loan_id=loan,
                stage=stage,
                status=status,
                outcome=outcome,
                currency="CNY",
                outstanding=0 if outcome == "paid" else amount,
                opened_at=now - dt.timedelta(days=opened_days_ago),
                closed_at=None if closed_days_ago is None else now - dt.timedelta(days=closed_days_ago),
            )
        )
        s.commit()


def _event(repo, loan: str, kind: str, detail: str = "", days_ago: float = 1, cause: dict | None = None) -> None:
    with repo.session() as s:
        s.add(
            EventRow(
                workflow_id=f"loan-{loan}",
                loan_id=loan,
                kind=kind,
                detail=detail,
                at=dt.datetime.now(dt.UTC) - dt.timedelta(days=days_ago),
                cause=json.dumps(cause or {}),
            )
        )
        s.commit()


def test_the_dashboard_counts_stages_buckets_rolls_promises_and_refusals_from_the_projection(fresh):
    _case(fresh, 1, dpd=10, stage="reminder", opened_days_ago=5)  # M1 now, not open 30 days ago
    _case(fresh, 2, dpd=45, stage="first_call", opened_days_ago=40)  # M1 then (15), M2 now: rolled
    _case(
        fresh, 3, dpd=50, stage="first_call", opened_days_ago=40, status="closed", outcome="paid", closed_days_ago=3
    )  # M1 then, cured
    _case(fresh, 4, dpd=75, stage="home_visit", opened_days_ago=60)  # M2 then (45), M3 now: rolled
    _case(fresh, 5, dpd=20, stage="reminder", opened_days_ago=40, status="paused")  # M0 then (not yet due)
    _event(fresh, "D1", "promise", "CNY 10.00 by 2030-01-01")
    _event(fresh, "D2", "promise_broken")
    _event(fresh, "D2", "contact_refused", "first_call/call: contact_window: ...", cause={"rule": "contact_window"})
    _event(fresh, "D4", "contact_refused", "...", cause={"rule": "contact_window"})
    _event(fresh, "D4", "contact_refused", "...", cause={"rule": "daily_cap"})
    _event(fresh, "D4", "contact_refused", "old", days_ago=45, cause={"rule": "daily_cap"})
    d = dashboard.build(fresh)
    assert d.total_cases == 5 and d.open_cases == 4
    assert {r.key: r.cases for r in d.by_stage} == {"reminder": 2, "first_call": 1, "home_visit": 1}
    assert {r.key: r.cases for r in d.by_bucket} == {"M1": 2, "M2": 1, "M3": 1}
    assert [r.key for r in d.by_bucket] == ["M1", "M2", "M3"]
    assert {r.key: r.amounts["CNY"] for r in d.by_stage}["reminder"] == 200_00
    assert {r.key: r.cases for r in d.by_status} == {"active": 3, "paused": 1, "closed: paid": 1}
    assert d.roll == {"M1": {"M2": 1, "cured": 1}, "M2": {"M3": 1}, "M0": {"M1": 1}}
    assert d.roll_rate("M1") == 0.5 and d.roll_rate("M2") == 1.0 and d.roll_rate("M3") is None
    assert d.promises == {"made": 1, "broken": 1}
    assert d.refused == {"contact_window": 2, "daily_cap": 1}
    assert d.cures == {"first_call": 1}


async def test_the_dashboard_page_shows_the_stages_to_a_viewer(fresh):
    seed(fresh, 300)
    token = token_for(fresh, "eve", ["viewer"])
    async with client(fresh) as c:
        await sign_in(c, token)
        r = await c.get("/console/dashboard")
    assert r.status_code == 200
    stages = r.text.split('data-testid="by-stage"')[1].split("</table>")[0]
    # in Chinese by default, by their display names, in the ladder's order (not the alphabet's)
    shown = re.findall(r'<td data-stage="([a-z_]+)">([^<]+)</td>', stages)
    assert [k for k, _ in shown] == sorted((k for k, _ in shown), key=display.stage_rank), shown
    assert [k for k, _ in shown][:3] == ["reminder", "first_call", "home_visit"], shown
    names = dict(shown)
    assert names["lawyers_letter"] == "律师函" and names["credit_bureau"] == "征信上报" and names["enforcement"] == "强制执行"
    assert "lawyers_letter<" not in stages and '<html lang="zh-CN">' in r.text
    # amounts grouped, with the yuan sign, right-aligned, and a total row that adds them up
    amounts = re.findall(r'<td class="num">(¥[0-9,]+\.[0-9]{2})</td>', stages)
    assert amounts and all(re.fullmatch(r"¥[0-9]{1,3}(,[0-9]{3})*\.[0-9]{2}", a) for a in amounts), amounts
    total = re.search(
        r'data-testid="total"><th scope="row">合计</th><td class="num">(\d+)</td><td class="num">(¥[0-9,.]+)<', stages
    )
    assert total is not None, stages[-400:]
    minor = lambda a: int(a.lstrip("¥").replace(",", "").replace(".", ""))  # noqa: E731
    assert minor(total.group(2)) == sum(minor(a) for a in amounts[:-1])
    assert "M3+" in r.text and 'data-rule="contact_window">联系时段<' in r.text
    assert "script-src 'self'" in r.headers["content-security-policy"]
    assert "<script>" not in r.text, "an inline script would be blocked by the CSP"


# --------------------------------------------------------------------------- worklists


async def test_worklists_filter_and_page(fresh):
    today = local_date(dt.datetime.now(dt.UTC), FLOOR_ZONE)  # the floor's day, as the worklists count it
    for i in range(30):
        _case(fresh, 100 + i, dpd=20, stage="first_call")
        _event(fresh, f"D{100 + i}", "promise", f"CNY 10.00 by {today.isoformat()}; ladder paused", days_ago=2)
    _case(fresh, 200, dpd=20, stage="first_call")
    _event(fresh, "D200", "promise", f"CNY 10.00 by {today.isoformat()}; ladder paused", days_ago=3)
    _event(fresh, "D200", "promise_kept", "", days_ago=1)  # no longer due
    _case(fresh, 201, dpd=200, stage="litigation")
    token = token_for(fresh, "fay", ["viewer"])
    async with client(fresh) as c:
        await sign_in(c, token)
        p1 = await c.get("/console/worklists/promises-due")
        p2 = await c.get("/console/worklists/promises-due?page=2")
        one = await c.get("/console/worklists/promises-due?q=D107", headers={"HX-Request": "true"})
        court = await c.get("/console/worklists/court")
        missing = await c.get("/console/worklists/nope")
    listed = lambda r: re.findall(r'href="/console/cases/(D\d+)"', r.text)  # noqa: E731
    assert len(listed(p1)) == 25 and "next" in p1.text
    assert len(listed(p2)) == 5 and not set(listed(p1)) & set(listed(p2))
    assert "D200" not in listed(p1) + listed(p2)
    assert listed(one) == ["D107"] and "<html" not in one.text  # an htmx fragment
    assert listed(court) == ["D201"]
    assert missing.status_code == 404


async def test_inputs_rejected_and_unapplied_payments_are_worklists(fresh):
    from db.tables import RejectedInputRow

    now = dt.datetime.now(dt.UTC)
    for key, loan, days, reason in (("a", "D400", 0, "must not be negative ('-5')"), ("b", "D401", 9, "too old")):
        row = RejectedInputRow(
            dedupe_key=f"loan-{loan}:{key}",
            workflow_id=f"loan-{loan}",
            loan_id=loan,
            signal="record_payment",
            input_id=f"PAY-{key}",
            field="amount",
            reason=reason,
            sender="system:bank-feed",
            received_at=now - dt.timedelta(days=days),
        )
        assert fresh.record_rejected_input(row, [])
        assert not fresh.record_rejected_input(row, [])  # once per key
    fresh.record_payment(
        PaymentRecord(
            payment_id="LATE-9",
            loan_id="D402",
            workflow_id=None,
            amount=123456,
            currency="CNY",
            paid_at=now,
            status="unapplied",
            note="no open case when received",
        )
    )
    token = token_for(fresh, "gus", ["viewer"])
    async with client(fresh) as c:
        await sign_in(c, token)
        page = await c.get("/console/worklists/inputs-rejected")
        unapplied = await c.get("/console/worklists/unapplied")
    assert "LATE-9" in unapplied.text and "1234.56" in unapplied.text.replace(",", ""), unapplied.text
    assert page.status_code == 200
    assert re.findall(r'href="/console/cases/(D\d+)"', page.text) == ["D400"]  # a week back, not nine days
    assert "PAY-a" in page.text and "system:bank-feed" in page.text and "不能为负数" in page.text  # the reason in Chinese


def test_pending_proposals_are_the_cases_whose_latest_approval_event_is_a_proposal(fresh):
    from console.worklists import pending_proposals

    for i, kinds in enumerate(
        (
            ["approval_proposed"],
            ["approval_proposed", "approval_approved"],
            ["approval_proposed", "approval_rejected", "approval_proposed"],
            ["approval_proposed", "approval_expired"],
            ["promise"],
        )
    ):
        _case(fresh, 300 + i, dpd=20, stage="first_call")
        for n, kind in enumerate(kinds):
            _event(fresh, f"D{300 + i}", kind, days_ago=5 - n)
    _case(fresh, 310, dpd=20, stage="first_call", status="closed", outcome="deceased", closed_days_ago=1)
    _event(fresh, "D310", "approval_proposed")
    assert pending_proposals(fresh) == ["D300", "D302"]
    assert pending_proposals(fresh, "D302") == ["D302"]
    assert pending_proposals(fresh, "D30_") == [], "the filter's _ is not a wildcard"


async def test_a_viewer_posting_an_action_is_refused_and_nothing_is_asked_of_temporal(fresh):
    token = token_for(fresh, "gus", ["viewer"])
    async with client(fresh) as c:  # no Temporal client: a request that got that far would be a 503
        await sign_in(c, token)
        csrf = csrf_of((await c.get("/console/dashboard")).text)
        for action, data in (
            ("promise", {"amount": "10", "date": "2030-01-01"}),
            ("decide", {"decision": "approve"}),
            ("hold", {"kind": "hardship"}),
        ):
            r = await c.post(f"/console/cases/L1/{action}", data={"csrf": csrf, **data}, headers=ORIGIN)
            assert r.status_code == 403 and "角色：查看员" in r.text, (action, r.status_code)  # the viewer role, in Chinese
        r = await c.post("/console/cases/L1/contact", data={"csrf": csrf}, headers=ORIGIN)
        assert r.status_code == 403


def test_the_timeline_names_operators_where_the_case_wrote_their_ids():
    from datetime import UTC, datetime

    from console.worklists import business
    from db.tables import EventRow

    e = EventRow(
        workflow_id="loan-X",
        loan_id="X",
        at=datetime(2026, 12, 6, tzinfo=UTC),
        kind="approval_approved",
        detail="30% interest waiver (proposed by op-a621e37e6650) approved",
        actor="op-0123456789ab:supervisor",
    )
    row = business(e, {"op-a621e37e6650": "王芳", "op-0123456789ab": "李娜"})
    assert row["detail"] == "30% interest waiver (proposed by 王芳) approved" and row["who"] == "李娜 (supervisor)"
    assert business(e, {})["detail"] == e.detail  # an id with no name on file stays as it is


# --------------------------------------------------------------------------- the front door, the language, the search


async def test_the_root_sends_a_person_to_the_console_and_a_bank_system_to_the_docs(fresh):
    async with client(fresh) as c:
        person = await c.get("/", headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"})
        assert person.status_code == 303 and person.headers["location"] == "/console/dashboard"
        signed_out = await c.get(person.headers["location"])
        assert signed_out.status_code == 303 and signed_out.headers["location"].startswith("/console/login")
        login = await c.get(signed_out.headers["location"])
        assert login.status_code == 200 and "登录" in login.text
        system = await c.get("/", headers={"Accept": "application/json"})
        assert system.status_code == 303 and system.headers["location"] == "/docs"
        assert (await c.get("/docs")).status_code == 200


async def test_an_operator_switches_to_english_and_back_and_the_choice_is_remembered(fresh):
    _case(fresh, 1, dpd=10, stage="lawyers_letter")
    token = token_for(fresh, "hal", ["viewer"])
    async with client(fresh) as c:
        await sign_in(c, token)
        zh = await c.get("/console/dashboard")
        assert '<html lang="zh-CN">' in zh.text and "各阶段未结案件" in zh.text and ">律师函<" in zh.text
        switch = await c.get("/console/language/en", params={"next": "/console/worklists/court?q=D"})
        assert switch.status_code == 303 and switch.headers["location"] == "/console/worklists/court?q=D"
        cookie = switch.headers["set-cookie"]
        assert "console_lang=en" in cookie and "Max-Age=31536000" in cookie and "Path=/console" in cookie
        en = await c.get("/console/dashboard")
        assert '<html lang="en">' in en.text and "Open cases by stage" in en.text and ">Lawyer&#39;s letter<" in en.text
        assert "各阶段" not in en.text and "¥100.00" in en.text
        assert (await c.get("/console/language/xx")).status_code == 404
        away = await c.get("/console/language/zh_CN", params={"next": "https://evil.test/"})
        assert away.headers["location"] == "/console/dashboard", "the switch sends nobody off the console"
        assert "各阶段未结案件" in (await c.get("/console/dashboard")).text


async def test_the_language_an_operator_chose_follows_them_to_another_browser(fresh):
    _case(fresh, 2, dpd=10, stage="lawyers_letter")
    token = token_for(fresh, "ines", ["viewer"])
    other = token_for(fresh, "jun", ["viewer"])
    async with client(fresh) as first:
        await sign_in(first, token)
        await first.get("/console/language/en")
    assert Operators(fresh).language(Operators(fresh).find("ines").id) == "en"
    async with client(fresh) as second:  # another browser: no cookie of the first
        signed = await sign_in(second, token)
        assert "console_lang=en" in signed.headers.get("set-cookie", "")
        assert "Open cases by stage" in (await second.get("/console/dashboard")).text
    async with client(fresh) as third:  # another operator keeps the deployment's default
        signed = await sign_in(third, other)
        assert "console_lang" not in signed.headers.get("set-cookie", "")
        assert "各阶段未结案件" in (await third.get("/console/dashboard")).text


async def test_the_header_search_finds_a_case_by_loan_borrower_or_a_phones_last_four_digits(fresh):
    from sqlmodel import select

    _case(fresh, 501, dpd=10, stage="first_call")
    _case(fresh, 502, dpd=40, stage="home_visit", amount=3_855_782_56)
    with fresh.session() as s:
        b = s.get(BorrowerRow, "B502")
        b.phone = "13912345678"
        s.add(b)
        s.commit()
    token = token_for(fresh, "ivy", ["collector"])
    async with client(fresh) as c:
        await sign_in(c, token)
        page = await c.get("/console/dashboard")
        assert 'data-testid="search"' in page.text and 'for="header-q"' in page.text
        exact = await c.get("/console/search", params={"q": "D501"})
        assert exact.status_code == 303 and exact.headers["location"] == "/console/cases/D501"
        by_borrower = await c.get("/console/search", params={"q": "B502"})
        assert re.findall(r'data-testid="found-(D\d+)"', by_borrower.text) == ["D502"]
        by_phone = await c.get("/console/search", params={"q": "5678"})
        assert re.findall(r'data-testid="found-(D\d+)"', by_phone.text) == ["D502"]
        assert "139****5678" in by_phone.text and "13912345678" not in by_phone.text
        assert "¥3,855,782.56" in by_phone.text and "尾号为 5678" in by_phone.text
        none = await c.get("/console/search", params={"q": "4321"})
        assert 'data-testid="nothing-found"' in none.text
        bad = await c.get("/console/search", params={"q": "D5 01; drop"})
        assert bad.status_code == 422 and "搜索：" in bad.text
        assert "is neither an id" in bad.text  # the field named, and the reason
    with fresh.session() as s:
        audited = s.exec(select(EventRow).where(EventRow.kind == "case_found_by_search")).all()
    assert sorted(e.loan_id for e in audited) == ["D501", "D502", "D502"]
    assert all(e.actor.endswith(":collector") and e.actor.startswith("op-") for e in audited)
    assert any("last four digits" in e.detail for e in audited)
