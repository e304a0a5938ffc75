"""A worker's cached cases hold each pinned policy once (domain.policy.shared): equal content, one copy."""

from __future__ import annotations

import uuid

from domain import policy as policies
from domain.policy import Policy, load_policy
from tests.conftest import LADDER_POLICY


def test_equal_content_is_one_copy_and_other_content_its_own():
    js = load_policy("default").model_dump_json()
    a, b = Policy.model_validate_json(js), Policy.model_validate_json(js)
    assert a is not b and policies.shared(a) is policies.shared(b) is policies.shared(a)
    other = Policy.model_validate_json(js.replace('"min_gap_days":2', '"min_gap_days":3'))
    assert other != a and policies.shared(other) is other


def test_the_fields_a_policy_set_are_part_of_its_content():
    """The version check reads which fields the pinned policy set (`agent`): a copy that set fewer is another."""
    full = load_policy("default")
    data = full.model_dump(mode="json")
    data.pop("agent")
    fewer = Policy.model_validate(data)
    assert fewer == full.model_copy()  # the same values (the default) ...
    assert policies.shared(fewer) is fewer and policies.shared(full) is not fewer  # ... but not the same fields set


async def test_cases_of_one_policy_share_its_copy_in_the_worker(cases):
    tag = uuid.uuid4().hex[:6]
    await cases.start(dpd=1, loan_id=f"SHARE-{tag}-1")
    await cases.start(dpd=1, loan_id=f"SHARE-{tag}-2")
    copies = policies._shared[(LADDER_POLICY.name, LADDER_POLICY.version, frozenset(LADDER_POLICY.model_fields_set))]
    assert sum(c == LADDER_POLICY for c in copies) == 1  # policies of other tests share the name and version
