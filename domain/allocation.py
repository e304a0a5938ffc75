"""Payment allocation: a payment pays the components in the policy's order."""

from __future__ import annotations

from collections.abc import Sequence

from domain.models import Balances


def allocate(amount: int, balances: Balances, order: Sequence[str]) -> tuple[dict[str, int], Balances, int]:
    """Split `amount` over the components in `order`.

    Returns (allocation per component, balances after, amount left over). The allocation
    plus the left-over always equals the amount: no cent is created or lost.
    """
    if amount < 0:
        raise ValueError("amount must not be negative")
    left = amount
    after = balances.model_dump()
    allocation: dict[str, int] = {}
    for component in order:
        take = min(left, after[component])
        if take:
            allocation[component] = take
            after[component] -= take
            left -= take
    return allocation, Balances(**after), left
