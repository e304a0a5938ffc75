"""The ledger's contracts carry integer minor units from the workflow to the database: nothing formats them to
strings and parses them back on the way. They are local activities' inputs (a marker records a local activity's
result, not its input), so their shape is free to change; what must never happen is a string read as units."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from pydantic import ValidationError
from temporalio.testing import ActivityEnvironment

from activities.case import CaseActivities
from activities.contracts import LedgerEntry, ReversalEntry
from domain import channels
from workflows import case as case_workflow

AT = dt.datetime(2026, 11, 2, 9, 30, tzinfo=dt.UTC)


def _entry(loan: str, **kw) -> LedgerEntry:
    return LedgerEntry(
        workflow_id=f"loan-{loan}",
        case_key=f"loan-{loan}:20261001T000000",
        loan_id=loan,
        payment_id=f"PAY-{loan}",
        amount_minor=123_456,
        currency="CNY",
        paid_at=AT,
        allocation_minor={"fees": 1_500, "interest": 21_956, "principal": 100_000},
        outstanding_minor=876_544,
        total_paid_minor=123_456,
        **kw,
    )


def test_a_ledger_entry_takes_minor_units_only():
    """An old entry's decimal strings are refused, not read: "100" taken as 100 minor units would be one yuan."""
    assert _entry("X").amount_minor == 123_456
    old = {
        "workflow_id": "loan-X",
        "case_key": "loan-X:20261001T000000",
        "loan_id": "X",
        "payment_id": "PAY-X",
        "amount": "1234.56",
        "currency": "CNY",
        "paid_at": AT.isoformat(),
        "allocation": {"principal": "1234.56"},
        "outstanding": "0.00",
        "total_paid": "1234.56",
    }
    with pytest.raises(ValidationError):
        LedgerEntry.model_validate(old)
    good = _entry("X").model_dump(mode="json")
    for field, bad in [("amount_minor", "100"), ("amount_minor", 100.0), ("amount_minor", 0), ("outstanding_minor", -1)]:
        with pytest.raises(ValidationError):
            LedgerEntry.model_validate_json(json.dumps({**good, field: bad}))
    with pytest.raises(ValidationError):
        LedgerEntry.model_validate_json(json.dumps({**good, "allocation_minor": {"principal": "1000.00"}}))
    assert LedgerEntry.model_validate_json(json.dumps(good)) == _entry("X")


def test_the_case_records_its_ledger_entries_as_local_activities():
    """Why the shape may change without a patch: the workflow runs them as local activities, whose inputs replay
    never decodes."""
    import inspect

    for name in ("_ledger", "_ledger_reversal"):
        src = inspect.getsource(getattr(case_workflow.CollectionCase, name))
        assert "self._local(" in src and "execute_activity" not in src, name
    local = inspect.getsource(case_workflow.CollectionCase._local)
    assert "execute_local_activity_method" in local and "execute_activity" not in local
    assert channels.RECORD_PAYMENT and channels.RECORD_REVERSAL


async def test_the_ledger_and_the_case_row_hold_the_entry_s_minor_units(repo):
    loan = f"LE-{uuid.uuid4().hex[:8]}"
    acts = CaseActivities(repo, gateway=None)  # type: ignore[arg-type]  # the ledger needs no gateway
    assert await ActivityEnvironment().run(acts.record_payment, _entry(loan)) is True
    assert await ActivityEnvironment().run(acts.record_payment, _entry(loan)) is False  # once per payment id
    [row] = repo.payments(loan_id=loan)
    assert (row.amount, row.currency, row.status) == (123_456, "CNY", "applied")
    assert json.loads(row.allocation) == {"fees": 1_500, "interest": 21_956, "principal": 100_000}
    case = repo.case_row(f"loan-{loan}")
    assert case is not None and (case.outstanding, case.total_paid) == (876_544, 123_456)

    reversal = ReversalEntry(
        workflow_id=f"loan-{loan}",
        run_id="run-1",
        case_key=f"loan-{loan}:20261001T000000",
        loan_id=loan,
        payment_id=f"PAY-{loan}",
        amount_minor=123_456,
        currency="CNY",
        reason="returned by the bank",
        reversed_at=AT + dt.timedelta(days=1),
        outstanding_minor=1_000_000,
        total_paid_minor=0,
    )
    assert await ActivityEnvironment().run(acts.record_reversal, reversal) is True
    [rev] = repo.reversals(loan_id=loan)
    assert (rev.amount, rev.currency) == (123_456, "CNY")
    case = repo.case_row(f"loan-{loan}")
    assert case is not None and (case.outstanding, case.total_paid) == (1_000_000, 0)


def test_a_send_request_kept_by_an_older_build_reads_as_minor_units_and_renders_the_same_message():
    """A contact row keeps the request its message is rendered from, so that a rerun after a crash sends the very
    body the gateway may hold already. A row written when the request carried decimal strings thaws into minor
    units, and the message shows the same amounts."""
    from activities.case import _freeze, _thaw
    from activities.contracts import ChannelRequest
    from activities.messages import context
    from db.tables import BorrowerRow

    fields = dict(
        workflow_id="loan-L1",
        case_key="loan-L1:20261001T000000",
        loan_id="L1",
        borrower_id="B1",
        step="reminder_notice",
        action="sms",
        idempotency_key="loan-L1:20261001T000000:reminder_notice:sms",
        policy="default",
        stage="reminder",
        dpd=3,
        currency="CNY",
        due_date=dt.date(2026, 10, 1),
    )
    new = ChannelRequest(
        **fields, outstanding_minor={"principal": 1_000_000, "interest": 50_000, "fees": 2_050, "total": 1_052_050}
    )
    old_row = json.dumps(
        {
            "req": {
                **json.loads(new.model_dump_json(exclude={"events", "outstanding_minor"})),
                "outstanding": {"principal": "10000.00", "interest": "500.00", "fees": "20.50", "total": "10520.50"},
            },
            "today": "2026-10-04",
        }
    )
    thawed, today = _thaw(old_row, new, dt.date(2026, 10, 5))
    assert thawed.outstanding_minor == new.outstanding_minor and today == dt.date(2026, 10, 4)
    again, _ = _thaw(_freeze(new, today), new, today)  # and a row written now, the same
    assert again == new
    borrower = BorrowerRow(id="B1", name="张三", timezone="Asia/Shanghai", language="zh")
    shown = context(thawed, borrower, today)
    assert (shown["total"], shown["principal"], shown["interest"], shown["fees"]) == ("10520.50", "10000.00", "500.00", "20.50")
    with pytest.raises(ValidationError):  # an amount that is no amount of its currency is refused, not guessed
        ChannelRequest.model_validate({**json.loads(old_row)["req"], "outstanding": {"total": "10.505"}})
