"""The ladder end to end on the time-skipping server."""

from __future__ import annotations

from datetime import date, timedelta

from domain.models import OutcomeIn

# A judgment's dates (domain/legal.py): took effect 1 Dec 2026, performance period to Wed 16 Dec 2026, so that
# enforcement may be applied for at once when it is recorded months later, in a year that may have no calendar file yet.
from tests.conftest import today_in  # noqa: E402
from workflows.case import CollectionCase

JUDGMENT_DATES = dict(effective_on=date(2026, 12, 1), performance_ends=date(2026, 12, 16))  # the recorded histories'


def judgment_dates(today: date) -> dict:
    """A judgment effective two days ago whose performance period ended yesterday, by the test server's clock (which
    earlier tests move years ahead: fixed 2026 dates put the two-year enforcement deadline behind it)."""
    return dict(effective_on=today - timedelta(days=2), performance_ends=today - timedelta(days=1))


async def test_whole_ladder_to_enforcement_and_recovery(cases):
    h = await cases.start(dpd=1)
    await cases.advance(days=130)
    st = await cases.status(h)
    assert st.stage == "litigation"
    assert st.steps_done == [
        "reminder_notice",
        "first_call",
        "home_visit",
        "overdue_letter",
        "lawyers_letter",
        "bureau_notice",
        "bureau_report",
        "litigation",
    ]
    await h.execute_update(
        CollectionCase.record_outcome,
        OutcomeIn(
            kind="court", outcome="judgment", reference="(2026)沪0101民初1号", **judgment_dates(today_in(await cases.now()))
        ),
    )
    await cases.advance(days=30)
    st = await cases.status(h)
    assert st.stage == "enforcement"
    r = await h.execute_update(
        CollectionCase.record_outcome, OutcomeIn(kind="court", outcome="enforcement_result", amount=st.outstanding["total"])
    )
    assert r.outcome == "recovered"
    result = await cases.result(h)
    assert result.status == "closed" and result.outcome == "recovered"
