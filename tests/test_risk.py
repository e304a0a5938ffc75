"""Risk class at each days-past-due threshold of 商业银行金融资产风险分类办法 (2023).

The boundaries come from the wording: "逾期" (overdue at all) is at least 关注; "逾期超过90天" (more than 90
days) at least 次级; "超过270天" at least 可疑; "超过360天" 损失. "超过" excludes the number itself (Civil Code
art. 1259), so day 90 is still 关注 and day 91 is 次级.
"""

from __future__ import annotations

import pytest

from domain.risk import CLASSES, basis, classify, count_by_class


@pytest.mark.parametrize(
    "dpd,expected",
    [
        (-5, "normal"),
        (0, "normal"),  # not yet overdue
        (1, "special_mention"),  # overdue at all (art. 10)
        (90, "special_mention"),
        (91, "substandard"),  # 超过90天 (art. 11)
        (270, "substandard"),
        (271, "doubtful"),  # 超过270天 (art. 12)
        (360, "doubtful"),
        (361, "loss"),  # 超过360天 (art. 13)
        (2000, "loss"),
    ],
)
def test_class_at_each_threshold(dpd, expected):
    assert classify(dpd) == expected


def test_basis_names_the_article():
    assert basis(91).startswith("次级: art. 11")
    assert basis(0).startswith("正常")
    assert "2023" in basis(361)


def test_count_by_class_lists_every_class():
    counts = count_by_class([0, 1, 90, 91, 271, 361, 400])
    assert list(counts) == list(CLASSES)
    assert counts == {"normal": 1, "special_mention": 2, "substandard": 1, "doubtful": 1, "loss": 2}
    assert count_by_class([]) == dict.fromkeys(CLASSES, 0)
