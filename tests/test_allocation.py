"""Payment allocation: the policy's order, and never a cent created or lost."""

from __future__ import annotations

from itertools import permutations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from domain.allocation import allocate
from domain.models import Balances

DEFAULT = ["fees", "interest", "principal"]
ORDERS = [list(p) for p in permutations(DEFAULT)]


def test_fees_then_interest_then_principal():
    b = Balances(principal=100_000, interest=5_000, fees=2_000)
    alloc, after, left = allocate(6_000, b, DEFAULT)
    assert alloc == {"fees": 2_000, "interest": 4_000}
    assert after == Balances(principal=100_000, interest=1_000, fees=0)
    assert left == 0


def test_payment_reaching_principal():
    b = Balances(principal=100_000, interest=5_000, fees=2_000)
    alloc, after, left = allocate(10_000, b, DEFAULT)
    assert alloc == {"fees": 2_000, "interest": 5_000, "principal": 3_000}
    assert after == Balances(principal=97_000, interest=0, fees=0)
    assert left == 0


def test_exact_payoff_and_surplus():
    b = Balances(principal=100, interest=10, fees=1)
    alloc, after, left = allocate(111, b, DEFAULT)
    assert after.total == 0 and left == 0 and sum(alloc.values()) == 111
    alloc, after, left = allocate(150, b, DEFAULT)
    assert after.total == 0 and left == 39 and alloc == {"fees": 1, "interest": 10, "principal": 100}


def test_principal_first_order():
    b = Balances(principal=1_000, interest=500, fees=200)
    alloc, after, left = allocate(1_100, b, ["principal", "interest", "fees"])
    assert alloc == {"principal": 1_000, "interest": 100}
    assert after == Balances(principal=0, interest=400, fees=200)
    assert left == 0


def test_zero_components_are_skipped_and_zero_payment_allocates_nothing():
    b = Balances(principal=1_000, interest=0, fees=0)
    alloc, after, left = allocate(300, b, DEFAULT)
    assert alloc == {"principal": 300}
    assert allocate(0, b, DEFAULT) == ({}, b, 0)


def test_negative_amount_rejected():
    with pytest.raises(ValueError, match="negative"):
        allocate(-1, Balances(principal=10), DEFAULT)


def test_input_balances_are_not_mutated():
    b = Balances(principal=1_000, interest=100, fees=10)
    allocate(500, b, DEFAULT)
    assert b == Balances(principal=1_000, interest=100, fees=10)


balances = st.builds(
    Balances,
    principal=st.integers(min_value=0, max_value=10**12),
    interest=st.integers(min_value=0, max_value=10**10),
    fees=st.integers(min_value=0, max_value=10**8),
)


@settings(max_examples=500, deadline=None)
@given(b=balances, amount=st.integers(min_value=0, max_value=2 * 10**12), order=st.sampled_from(ORDERS))
def test_allocation_never_creates_or_loses_a_cent(b, amount, order):
    alloc, after, left = allocate(amount, b, order)
    # every cent of the payment is either allocated or left over
    assert sum(alloc.values()) + left == amount
    # every allocated cent came off exactly one component, and no balance went negative
    for c in DEFAULT:
        assert getattr(after, c) == getattr(b, c) - alloc.get(c, 0)
        assert getattr(after, c) >= 0
    assert after.total == b.total - sum(alloc.values())
    assert all(v > 0 for v in alloc.values())
    assert left == max(0, amount - b.total)


@settings(max_examples=500, deadline=None)
@given(b=balances, amount=st.integers(min_value=0, max_value=2 * 10**12), order=st.sampled_from(ORDERS))
def test_allocation_respects_the_order(b, amount, order):
    alloc, after, left = allocate(amount, b, order)
    # A component receives money only once every component before it is fully paid.
    for i, c in enumerate(order):
        if alloc.get(c):
            assert all(getattr(after, earlier) == 0 for earlier in order[:i])
    # At most one component is partly paid, and nothing after it got anything.
    partly = [c for c in order if alloc.get(c) and getattr(after, c) > 0]
    assert len(partly) <= 1
    if partly:
        rest = order[order.index(partly[0]) + 1 :]
        assert not any(alloc.get(c) for c in rest)
        assert left == 0
    # The dict lists the components in the order they were paid.
    assert list(alloc) == [c for c in order if c in alloc]
