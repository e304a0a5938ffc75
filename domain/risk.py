"""The five-class risk category of a case's loan, by days past due.

Source: 商业银行金融资产风险分类办法 (国家金融监督管理总局 (then 中国银保监会) and 中国人民银行 令2023年第1号,
issued 10 February 2023, in force 1 July 2023). The five classes are 正常 / 关注 / 次级 / 可疑 / 损失
(art. 5, number not verified). By days overdue:
- art. 10: an asset whose principal, interest or return is overdue is at least 关注 (special mention). The article
  excepts a short delay (within 7 days) caused by an operational or technical failure; the case cannot tell that
  cause from its own data, so every overdue day counts (failing closed: the stricter class);
- art. 11 (一): overdue 超过90天 (more than 90 days): at least 次级 (substandard);
- art. 12 (一): overdue 超过270天: at least 可疑 (doubtful);
- art. 13 (一): overdue 超过360天: 损失 (loss).

"超过" (more than) does not include the number itself: Civil Code art. 1259 (民法所称的"以上"、"以下"、"以内"、"届满",
包括本数; 所称的"不满"、"超过"、"以外", 不包括本数). So DPD 90 is still 关注, DPD 91 is 次级; 270/271, 360/361 likewise.
Days overdue are counted as `domain.dates.days_past_due` counts them: DPD 1 is the first day after the due date.

Caveat on the source: the regulation's own text could not be read in the sources searchable here. What was found
are secondary summaries of it (news of its publication on 11 February 2023, and articles quoting the thresholds as
"逾期后应至少归为关注类, 逾期90天以上应至少归为次级类, 逾期270天以上…可疑类, 逾期360天以上应归为损失类"). The article
numbers (10-13) and the article wording "超过" are given from the published regulation as remembered, NOT verified
here: a compliance officer must check them against the official text. Were it "以上" (which includes the number,
art. 1259), each boundary would move one day earlier: `THRESHOLDS` is the one place to change, and
tests/test_risk.py names the four boundaries.

Restructured assets (重组资产), the regulation's restructuring articles (arts. 17-20 as the issue cites them; the
numbers NOT verified here, as above). As the secondary sources summarise them:
- a restructuring is a change of the contract in the debtor's favour because the debtor is in financial difficulty
  (deferral 展期, instalments, a waiver are such changes). A plan agreed in a collection case is one
  (policy `[risk] plans_are_restructurings`);
- the observation period (重组观察期) runs from the first payment day of the changed terms and covers at least two
  payment periods and at least one year (`observation_months`, `observation_periods`);
- during it, an asset that was performing (正常/关注) before the restructuring is at least 关注 (`restructured_at_least`),
  and one that was non-performing (次级/可疑/损失) is not upgraded;
- a debtor who does not pay under the changed terms during it: the asset is downgraded to non-performing
  (`broken_at_least`, 次级), on top of the days-past-due floor of the original contract;
- after it, with the changed terms kept, the asset is classed by the changed contract's own days overdue again.
The days overdue of a restructured asset are counted against the changed schedule (its oldest unpaid instalment),
not against the original due date the case keeps for its ladder. Whether a compliance officer reads the articles
the same way must be checked against the official text: every number is a policy setting.

The other criteria of art. 10-13 (the debtor's finances, an impairment) need an analyst's judgement and can only
raise the class; they are not modelled.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from datetime import date
from typing import Literal

RiskClass = Literal["normal", "special_mention", "substandard", "doubtful", "loss"]
CLASSES: tuple[RiskClass, ...] = ("normal", "special_mention", "substandard", "doubtful", "loss")
CHINESE: dict[RiskClass, str] = {
    "normal": "正常",
    "special_mention": "关注",
    "substandard": "次级",
    "doubtful": "可疑",
    "loss": "损失",
}
NON_PERFORMING: frozenset[RiskClass] = frozenset({"substandard", "doubtful", "loss"})  # 不良: the three non-performing classes

# (more than this many days overdue, at least this class), highest first
THRESHOLDS: tuple[tuple[int, RiskClass, str], ...] = (
    (360, "loss", "art. 13 (一): 逾期超过360天"),
    (270, "doubtful", "art. 12 (一): 逾期超过270天"),
    (90, "substandard", "art. 11 (一): 逾期超过90天"),
    (0, "special_mention", "art. 10 (一): 逾期"),
)
SOURCE = "商业银行金融资产风险分类办法 (2023年第1号令)"


def classify(dpd: int) -> RiskClass:
    """The class that `dpd` days overdue calls for at least."""
    for more_than, cls, _ in THRESHOLDS:
        if dpd > more_than:
            return cls
    return "normal"


def basis(dpd: int) -> str:
    """The article that set the class, for `status`."""
    for more_than, cls, article in THRESHOLDS:
        if dpd > more_than:
            return f"{CHINESE[cls]}: {article} ({SOURCE})"
    return f"{CHINESE['normal']}: not overdue ({SOURCE})"


def count_by_class(dpds: Iterable[int]) -> dict[RiskClass, int]:
    """How many cases fall in each class (every class listed, zeros included), for a portfolio report."""
    counts = Counter(classify(d) for d in dpds)
    return {c: counts.get(c, 0) for c in CLASSES}


SOURCE_RESTRUCTURED = "商业银行金融资产风险分类办法 (2023), restructured assets (arts. 17-20, numbers not verified)"


def worst(*classes: RiskClass) -> RiskClass:
    return max(classes, key=CLASSES.index)


def restructured(
    days_overdue: int,
    before: RiskClass,
    today: date,
    observation_ends: date,
    broken: bool,
    at_least: RiskClass,
    broken_at_least: RiskClass,
) -> tuple[RiskClass, str]:
    """A restructured asset's class and its basis. `days_overdue`: against the changed schedule while the plan holds,
    against the original contract once it broke."""
    floor = classify(days_overdue)
    if broken:
        cls = worst(floor, broken_at_least)
        return cls, f"{CHINESE[cls]}: a restructuring not kept ({SOURCE_RESTRUCTURED}); {days_overdue} days overdue"
    if today <= observation_ends:
        kept = before if before in NON_PERFORMING else at_least
        cls = worst(floor, at_least, kept)
        return cls, (
            f"{CHINESE[cls]}: restructured, in its observation period to {observation_ends} (at least {CHINESE[at_least]}; "
            f"{CHINESE[before]} before it, not upgraded while observed; {SOURCE_RESTRUCTURED})"
        )
    return floor, (
        f"{CHINESE[floor]}: restructured, observation period ended {observation_ends} with the changed terms kept; "
        f"{days_overdue} days overdue on them ({SOURCE_RESTRUCTURED})"
    )
