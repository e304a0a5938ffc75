"""The holes an attacker's probe found (issue 14), each tested as the probe tried it. Holes 2, 6 and the
amounts/echo part of 7 are in test_logging, test_dates and test_money."""

from __future__ import annotations

import datetime as dt
import json

import httpx
import pytest
from sqlalchemy import select

from access.operators import Operators
from api.server import create_app
from app import opening, portfolio, visibility
from app.errors import BadInput
from app.inputs import check_paid_at
from db.records import CaseRecord
from db.tables import ContactChangeRow
from domain.models import PlanIn, ReleaseIn
from infra.bodycap import BodyCap
from tests.conftest import TASK_QUEUE
from tests.test_roles import Unreachable

# --------------------------------------------------------------------------- 1: a repeated open overwrote a loan


def _inp(loan_id: str, **over):
    fields = dict(
        loan_id=loan_id,
        borrower_id=f"B-{loan_id}",
        principal="5000.00",
        interest="100",
        fees="0",
        currency="CNY",
        due_date=dt.date(2026, 10, 1),
        timezone="Asia/Shanghai",
        policy="default",
    )
    fields.update(over)
    return opening.case_input(**fields)


async def test_a_repeated_open_of_a_running_case_leaves_its_loan_and_borrower_alone(env, worker, repo):
    loan = "HOLE1-A"
    first = await opening.open_case(env.client, repo, _inp(loan), opening.Contact(name="张伟", phone="13800000001"), TASK_QUEUE)
    assert first.started
    try:
        again = await opening.open_case(env.client, repo, _inp(loan), opening.Contact(name="X", phone="13999999999"), TASK_QUEUE)
        assert not again.started and "contact update" in again.message
        assert repo.borrower(f"B-{loan}").phone == "13800000001", "the next call would go to the new number"
        for field, over in (
            ("currency", {"currency": "USD"}),
            ("principal", {"principal": "9.00"}),
            ("due_date", {"due_date": dt.date(2026, 9, 1)}),
            ("borrower_id", {"borrower_id": "B-OTHER"}),
        ):
            with pytest.raises(BadInput) as exc:
                await opening.open_case(env.client, repo, _inp(loan, **over), opening.Contact(name="Y"), TASK_QUEUE)
            assert exc.value.field == field and "frozen" in exc.value.reason
        row = repo.loan(loan)
        assert (row.currency, row.principal, row.borrower_id) == ("CNY", 500000, f"B-{loan}")
        assert repo.borrower("B-OTHER") is None
    finally:
        await env.client.get_workflow_handle(f"loan-{loan}").terminate("test done")


def test_an_import_row_changing_a_running_case_s_terms_is_rejected_naming_the_column(repo):
    """The import's batch write keeps the rows of loans whose case is open (by the case projection)."""
    repo.upsert_borrower(id="B-HOLE1-I", name="Li", phone="13800000002", timezone="Asia/Shanghai")
    repo.upsert_loan(
        id="HOLE1-I",
        borrower_id="B-HOLE1-I",
        currency="CNY",
        principal=100000,
        interest=0,
        fees=0,
        due_date=dt.date(2026, 10, 1),
        policy="default",
    )
    repo.project_case(CaseRecord("loan-HOLE1-I", "HOLE1-I", "CNY", stage="reminder", status="active", outstanding=100000))
    rows = [
        portfolio.ImportRow(
            line=2,
            inp=_inp("HOLE1-I", borrower_id="B-HOLE1-I", currency="USD", principal="1000.00"),
            contact=opening.Contact(name="Li", phone="13911111111"),
            product="personal_loan",
        ),
        portfolio.ImportRow(
            line=3,
            inp=_inp("HOLE1-I", borrower_id="B-HOLE1-I", principal="1000.00"),
            contact=opening.Contact(name="Li", phone="13911111111"),
            product="personal_loan",
        ),
    ]
    batch = list(rows)
    refused = portfolio._upsert(repo, batch)
    assert [(r.line, r.column) for r in refused] == [(2, "currency")]
    assert [r.line for r in batch] == [3]  # same terms: counted as already running
    assert repo.loan("HOLE1-I").currency == "CNY"
    assert repo.borrower("B-HOLE1-I").phone == "13800000002"  # the contact details need a contact update


async def test_contact_details_change_through_an_audited_update(repo):
    repo.upsert_borrower(id="B-HOLE1-C", name="Zhao", phone="13800000003", timezone="Asia/Shanghai")
    store = Operators(repo)
    sup = store.issue_token(store.add("hole1 supervisor", ["supervisor"]).id).token
    col = store.issue_token(store.add("hole1 collector", ["collector"]).id).token
    app = create_app(["bootstrap-0123456789abcdef"], client=Unreachable(), repo=repo)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        r = await http.post(
            "/v1/borrowers/B-HOLE1-C/contact", json={"phone": "13900000004"}, headers={"Authorization": f"Bearer {col}"}
        )
        assert r.status_code == 403
        r = await http.post(
            "/v1/borrowers/B-HOLE1-C/contact",
            json={"phone": "13900000004", "name": " Zhao "},
            headers={"Authorization": f"Bearer {sup}"},
        )
        assert r.status_code == 200, r.text
        assert r.json()["changed"] == ["phone"]
    assert repo.borrower("B-HOLE1-C").phone == "13900000004"
    with repo.session() as s:
        audit = list(s.scalars(select(ContactChangeRow).where(ContactChangeRow.borrower_id == "B-HOLE1-C")))
    assert [(a.field, a.old_value, a.new_value) for a in audit] == [("phone", "13800000003", "13900000004")]
    assert audit[0].actor.startswith("op-") and audit[0].actor.endswith(":supervisor")


# --------------------------------------------------------------------------- 3: blank or invisible reviewers


@pytest.mark.parametrize("reviewer", ["   ", "\u200b", "\u200f", "\u202e", "a\x00b"])
def test_a_blank_or_invisible_reviewer_is_refused(reviewer):
    with pytest.raises(ValueError, match="reviewer"):
        ReleaseIn(kind="complaint", reviewer=reviewer)
    assert ReleaseIn(kind="complaint", reviewer=" Ｗａｎｇ Li ").reviewer == "Wang Li"


# --------------------------------------------------------------------------- 4: bodies read before authentication


async def _run(mw: BodyCap, headers: list, chunks):
    sent, received = [], 0

    async def receive():
        nonlocal received
        received += 1
        return next(chunks)

    async def send(m):
        sent.append(m)

    async def app(scope, receive, send):  # pragma: no cover - must not be reached
        raise AssertionError("the app was reached")

    mw.app = app
    await mw({"type": "http", "method": "POST", "path": "/v1/cases", "headers": headers}, receive, send)
    return sent, received


async def test_a_huge_body_is_refused_by_its_length_before_a_byte_is_read():
    def never():
        raise AssertionError("the body was read")
        yield  # pragma: no cover

    sent, received = await _run(BodyCap(None, cap=64 * 1024), [(b"content-length", b"104857600")], never())
    assert received == 0 and sent[0]["status"] == 413
    assert json.loads(sent[1]["body"])["error"]["field"] == "body"


async def test_a_chunked_body_is_cut_at_the_cap():
    def endless():
        while True:
            yield {"type": "http.request", "body": b"x" * 16384, "more_body": True}

    sent, received = await _run(BodyCap(None, cap=64 * 1024), [], endless())
    assert sent[0]["status"] == 413 and received <= 5


async def test_the_api_refuses_a_large_body_without_a_token_with_413(repo):
    app = create_app(["bootstrap-0123456789abcdef"], client=Unreachable(), repo=repo)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        r = await http.post("/v1/cases", content=b"{" + b" " * (1024 * 1024) + b"}", headers={"content-type": "application/json"})
    assert r.status_code == 413 and r.json()["error"]["field"] == "body"


# --------------------------------------------------------------------------- 5: the raw visibility query


@pytest.mark.parametrize(
    "query",
    [
        ') OR (WorkflowType != "CollectionCase"',
        ") OR (1 = 1",
        'Stage = "x") OR ("1" = "1',
        '(Stage = "x"',
        'Stage = "x\\"',
        'Stage = "x" ORDER BY StartTime',
    ],
)
def test_the_raw_query_cannot_leave_its_frame(query):
    with pytest.raises(BadInput) as exc:
        visibility.visibility_query(query=query)
    assert exc.value.field == "query"


def test_a_query_that_only_narrows_is_kept():
    q = visibility.visibility_query(query='(Stage = "litigation") OR (Stage = "a)b")')
    assert q == 'WorkflowType = "CollectionCase" AND ((Stage = "litigation") OR (Stage = "a)b"))'


# --------------------------------------------------------------------------- 7: the low ones


def test_a_boolean_is_not_a_number():
    for field in ("waiver_percent", "instalments", "interval_months"):
        with pytest.raises(ValueError, match=field):
            PlanIn.model_validate({"kind": "interest_waiver", field: True})
    assert PlanIn.model_validate({"kind": "interest_waiver", "waiver_percent": 30}).waiver_percent == 30


def test_paid_at_is_bounded_by_the_due_date_and_now():
    now = dt.datetime(2026, 11, 30, 8, 0, tzinfo=dt.UTC)
    due = dt.date(2026, 10, 1)
    for bad in (
        dt.datetime(1, 1, 1, tzinfo=dt.UTC),
        dt.datetime(1970, 1, 1, tzinfo=dt.UTC),
        dt.datetime(2025, 9, 29, tzinfo=dt.UTC),
        now + dt.timedelta(hours=1),
    ):
        with pytest.raises(BadInput) as exc:
            check_paid_at(bad, due, now)
        assert exc.value.field == "paid_at"
    check_paid_at(dt.datetime(2026, 11, 29, tzinfo=dt.UTC), due, now)
    check_paid_at(dt.datetime(2025, 10, 1, tzinfo=dt.UTC), due, now)


async def test_duplicate_json_keys_are_refused(repo):
    store = Operators(repo)
    tok = store.issue_token(store.ensure("hole7 payments", ["payments"]).id).token
    app = create_app(["bootstrap-0123456789abcdef"], client=Unreachable(), repo=repo)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://api") as http:
        r = await http.post(
            "/v1/loans/L1/payments",
            headers={"Authorization": f"Bearer {tok}", "content-type": "application/json"},
            content=b'{"payment_id": "P1", "amount": "1.00", "amount": "900.00"}',
        )
    assert r.status_code == 422
    assert r.json()["error"]["field"] == "body" and "'amount' appears twice" in r.json()["error"]["reason"]


def test_a_demo_policy_is_refused_outside_the_dev_stack(monkeypatch, tmp_path):
    monkeypatch.delenv("COLLECTIONS_DEV_STACK", raising=False)
    with pytest.raises(BadInput) as exc:
        _inp("DEMO-1", policy=None, segment="demo", allow_policy_paths=False)
    assert exc.value.field == "segment" and "demo policy" in exc.value.reason
    with pytest.raises(BadInput) as exc:
        _inp("DEMO-2", policy="demo", allow_policy_paths=False)
    assert exc.value.field == "policy"
    chooser = portfolio._PolicyChooser(None)
    with pytest.raises(BadInput, match="demo policy"):
        chooser("demo")
    monkeypatch.setenv("COLLECTIONS_DEV_STACK", "1")
    assert _inp("DEMO-3", policy=None, segment="demo", allow_policy_paths=False).policy.name == "demo"
