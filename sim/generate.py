"""A reproducible synthetic portfolio of delinquent personal loans, split between two policies.

Everything comes from `random.Random` generators derived from the seed: the portfolio's own for the
mix, and one per loan (sim.seeds: seeded with the seed and the loan id) for that loan's amounts, borrower and
behaviour, so that loan SIM000042 is the same loan whatever the size of the portfolio.
Amounts are integer minor units (CNY fen); no PII is real.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass

from sim.behaviour import Profile, draw_profile
from sim.seeds import loan_rng

CURRENCY = "CNY"
ARMS = ("champion", "challenger")

# segment: (share, median principal in CNY, spread (sigma of the log), yearly rate range, guarantor share)
SEGMENTS = {
    "retail": (0.58, 15_000, 0.7, (0.08, 0.18), 0.08),
    "sme": (0.17, 90_000, 0.8, (0.06, 0.12), 0.55),
    "gig": (0.15, 6_000, 0.6, (0.15, 0.24), 0.03),
    "premium": (0.10, 60_000, 0.6, (0.05, 0.09), 0.20),
}
# where the borrowers live (IANA zones): mostly Beijing time, some in Xinjiang, some in Hong Kong
ZONES = (("Asia/Shanghai", 0.86), ("Asia/Urumqi", 0.09), ("Asia/Hong_Kong", 0.05))
# DPD at the start of the simulation: (low, high, share)
DPD_BANDS = ((1, 30, 0.56), (31, 60, 0.17), (61, 90, 0.11), (91, 360, 0.12), (361, 700, 0.04))

_SURNAMES = "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗"
_GIVEN = (
    "伟",
    "芳",
    "娜",
    "敏",
    "静",
    "丽",
    "强",
    "磊",
    "军",
    "洋",
    "勇",
    "艳",
    "杰",
    "娟",
    "涛",
    "明",
    "超",
    "秀英",
    "华",
    "平",
)
_CITIES = {
    "Asia/Shanghai": (
        "上海市黄浦区南京东路",
        "北京市朝阳区建国路",
        "广州市天河区体育西路",
        "成都市锦江区春熙路",
        "杭州市西湖区文三路",
    ),
    "Asia/Urumqi": ("乌鲁木齐市天山区解放南路", "喀什市人民东路", "伊宁市解放路"),
    "Asia/Hong_Kong": ("香港九龙弥敦道", "香港中环皇后大道中"),
}


@dataclass(frozen=True)
class SimLoan:
    loan_id: str
    borrower_id: str
    guarantor_id: str | None
    arm: str  # "champion" or "challenger"
    segment: str
    timezone: str
    principal: int  # minor units
    interest: int
    fees: int
    start_dpd: int
    name: str
    phone: str | None
    email: str | None
    address: str | None
    language: str
    profile: Profile

    @property
    def total(self) -> int:
        return self.principal + self.interest + self.fees

    @property
    def workflow_id(self) -> str:
        return f"loan-{self.loan_id}"


def _pick(rng: random.Random, weighted) -> object:
    r, acc = rng.random(), 0.0
    for value, weight in weighted:
        acc += weight
        if r < acc:
            return value
    return weighted[-1][0]


def _amount(rng: random.Random, median: float, sigma: float) -> int:
    """Principal in fen, rounded to whole yuan, between 1,000 and 2,000,000 CNY."""
    cny = min(2_000_000, max(1_000, rng.lognormvariate(0, sigma) * median))
    return int(round(cny)) * 100


def make_loan(seed: int, index: int, arm: str) -> SimLoan:
    loan_id = f"SIM{index:06d}"
    rng = loan_rng(seed, loan_id)
    segment = _pick(rng, [(s, v[0]) for s, v in SEGMENTS.items()])
    _, median, sigma, (r_lo, r_hi), guarantor_share = SEGMENTS[segment]
    tz = _pick(rng, ZONES)
    low, high = _pick(rng, [((lo, hi), w) for lo, hi, w in DPD_BANDS])
    start_dpd = rng.randint(low, high)
    principal = _amount(rng, median, sigma)
    # interest accrued so far: the yearly rate over the months overdue (at least one month), to the fen
    months = max(1, start_dpd // 30 + 1)
    interest = int(principal * rng.uniform(r_lo, r_hi) * months / 12)
    fees = rng.choice((0, 0, 3000, 5000, 10000, 20000)) + (5000 if start_dpd > 60 else 0)
    has_guarantor = rng.random() < guarantor_share
    name = rng.choice(_SURNAMES) + rng.choice(_GIVEN)
    phone = f"1{rng.choice('3456789')}{rng.randint(0, 999_999_999):09d}" if rng.random() < 0.97 else None
    email = f"u{index:06d}@example.cn" if rng.random() < 0.72 else None
    address = f"{rng.choice(_CITIES[tz])}{rng.randint(1, 999)}号" if rng.random() < 0.96 else None
    language = "en" if tz == "Asia/Hong_Kong" and rng.random() < 0.4 else "zh"
    profile = draw_profile(loan_rng(seed, loan_id, "profile"), segment, start_dpd)
    return SimLoan(
        loan_id=loan_id,
        borrower_id=f"SB{index:06d}",
        guarantor_id=f"SG{index:06d}" if has_guarantor else None,
        arm=arm,
        segment=segment,
        timezone=tz,
        principal=principal,
        interest=interest,
        fees=fees,
        start_dpd=start_dpd,
        name=name,
        phone=phone,
        email=email,
        address=address,
        language=language,
        profile=profile,
    )


def assign_arm(seed: int, index: int, split: str) -> str:
    """`alternate`: the first loan to the champion, the second to the challenger, and so on (equal halves);
    `hash`: by a hash of the seed and loan id (what a bank does on a live book)."""
    if split == "alternate":
        return ARMS[(index - 1) % 2]
    if split == "hash":
        digest = hashlib.sha256(f"{seed}:SIM{index:06d}:arm".encode()).digest()
        return ARMS[digest[0] % 2]
    raise ValueError(f"split: {split!r} is not 'alternate' or 'hash'")


def portfolio(seed: int, n: int, split: str = "alternate") -> list[SimLoan]:
    """`n` loans, in loan-id order."""
    return [make_loan(seed, i, assign_arm(seed, i, split)) for i in range(1, n + 1)]


def guarantor_row(seed: int, loan: SimLoan) -> dict:
    rng = loan_rng(seed, loan.loan_id, "guarantor")
    return {
        "id": loan.guarantor_id,
        "name": rng.choice(_SURNAMES) + rng.choice(_GIVEN),
        "timezone": loan.timezone,
        "phone": f"139{rng.randint(0, 99_999_999):08d}",
        "email": None,
        "address": f"{rng.choice(_CITIES[loan.timezone])}{rng.randint(1, 999)}号",
        "language": "zh",
    }
