"""The per-loan random generators: one per loan and purpose, derived from the run's seed and the loan id.

Both the portfolio (sim.generate: amounts, borrower, profile) and the borrowers' behaviour (sim.behaviour) draw
from them, so that loan SIM000042 is the same loan, and behaves the same, whatever the size of the portfolio.
"""

from __future__ import annotations

import hashlib
import random


def loan_rng(seed: int, loan_id: str, purpose: str = "loan") -> random.Random:
    """The generator of one loan for one purpose; independent of every other loan's."""
    digest = hashlib.sha256(f"{seed}:{loan_id}:{purpose}".encode()).digest()
    return random.Random(int.from_bytes(digest[:8], "big"))
