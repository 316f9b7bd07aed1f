"""Language detection by script, and the rough token count used for history budgets."""

from __future__ import annotations

import pytest

from zhiwen.tools.language import approx_tokens, detect_language


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("金卡的年费是多少？", "zh"),
        ("What is the annual fee?", "en"),
        ("金卡 gold card annual fee?", "zh"),  # two CJK characters outweigh four words at half weight
        ("请问 wire transfer 要多久", "zh"),
        ("Is the 金 card free?", "en"),
        ("ÉTÉ café", "en"),
    ],
)
def test_detect_language(text: str, expected: str) -> None:
    assert detect_language(text) == expected


@pytest.mark.parametrize("text", ["", "   ", "12345 ？！", "🙂🙂"])
def test_no_letters_gives_the_default(text: str) -> None:
    assert detect_language(text) == "en"
    assert detect_language(text, default="zh") == "zh"


def test_approx_tokens_counts_cjk_characters_and_latin_quarters() -> None:
    assert approx_tokens("") == 1
    assert approx_tokens("金卡年费") == 4 + 1
    assert approx_tokens("abcd" * 10) == 10 + 1
    assert approx_tokens("金卡 fee") == 2 + 1 + 1
    assert approx_tokens("x" * 200_000) > approx_tokens("x" * 1_000)
