"""``figures``: one canonical spelling for the figures a text states, in Chinese and English."""

from __future__ import annotations

import pytest

from zhiwen.tools.figures import figures


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("年费为300元", {"300"}),
        ("年费为３００元", {"300"}),  # full width, as in many Chinese PDFs
        ("年费为三百元", {"300"}),
        ("三百零五元", {"305"}),
        ("一万二千元", {"12000"}),
        ("一千万元", {"10000000"}),
        ("3万元", {"30000"}),
        ("0.03万元", {"300"}),
        ("1,000 dollars", {"1000"}),
        ("3.65%", {"3.65"}),
        ("二〇二四年", {"2024"}),
        ("2024年3月", {"2024", "3"}),
        ("十五天", {"15"}),
        ("三十年", {"30"}),
        ("五年", {"5"}),
        ("九岁", {"9"}),
        ("白金卡年费两千元", {"2000"}),
        ("百分之五", {"5"}),
        ("百分之二十", {"20"}),
        ("百分之三点五", {"3.5"}),
        ("3千元", {"3000"}),
        ("3000万元", {"30000000"}),
        ("单笔限额为三千万", {"30000000"}),
        ("低0.2个百分点", {"0.2"}),
        ("两三年", {"3"}),  # "两" is left out, as in "两个"; a source's "2-3年" holds 3
        ("两年", {"2"}),
        ("十年", {"10"}),
        ("百元", {"100"}),
        ("Mario Addison added 6½ sacks", {"6.5"}),  # NFKC alone gave 61 and 2
        ("¾ of a point", {"0.75"}),
    ],
)
def test_figures_have_one_spelling(text: str, expected: set[str]) -> None:
    assert figures(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "我们一起办理",
        "统一标准",
        "十分重要",
        "千万不要",
        "万一丢失",
        "第一条",
        "两个",
        "一年",
        "两三个工作日",
        "百货商场",
        "百姓",
        "百度",
        "十足",
        "千里之外",
        "上百家",
        "数百",
        "几十万",
    ],
)
def test_numeral_characters_in_ordinary_words_are_not_figures(text: str) -> None:
    assert figures(text) == set()


def test_lenient_keeps_the_digits_written_before_a_multiplier() -> None:
    assert figures("3万元", lenient=True) == {"3", "30000"}
