"""One link pattern: the answer rules (``answer_safety``) and the bank policy (``bank_policy``) see the same links."""

from __future__ import annotations

import pytest

from zhiwen.tools import answer_safety, bank_policy


@pytest.mark.parametrize(
    ("text", "link"),
    [
        ("详见 https://bank.example/fees，谢谢。", "https://bank.example/fees"),
        ("Visit www.bank.example/apply for details.", "www.bank.example/apply"),
        ("See (http://evil.example/login) now", "http://evil.example/login"),
    ],
)
def test_both_modules_find_the_same_link(text: str, link: str) -> None:
    (safety,) = answer_safety._URL.findall(text)
    (policy,) = bank_policy._URL.findall(text)
    assert safety == link
    assert policy.strip().strip("()") == link, "the policy's match is the link with its space and brackets"
    assert answer_safety.URL_PATTERN in bank_policy._URL.pattern
