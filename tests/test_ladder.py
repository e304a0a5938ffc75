"""The ladder end to end on the time-skipping server."""

from __future__ import annotations

from domain.models import OutcomeIn
from workflows.case import CollectionCase


async def test_whole_ladder_to_enforcement_and_recovery(cases):
    h = await cases.start(dpd=1)
    await cases.advance(days=130)
    st = await cases.status(h)
    assert st.stage == "litigation"
    assert st.steps_done == ["reminder_notice", "first_call", "home_visit", "overdue_letter", "lawyers_letter",
                             "bureau_notice", "bureau_report", "litigation"]
    await h.execute_update(CollectionCase.record_outcome, OutcomeIn(kind="court", outcome="judgment", reference="(2026)沪0101民初1号"))
    await cases.advance(days=30)
    st = await cases.status(h)
    assert st.stage == "enforcement"
    r = await h.execute_update(CollectionCase.record_outcome, OutcomeIn(kind="court", outcome="enforcement_result", amount=st.outstanding["total"]))
    assert r.outcome == "recovered"
    result = await cases.result(h)
    assert result.status == "closed" and result.outcome == "recovered"
