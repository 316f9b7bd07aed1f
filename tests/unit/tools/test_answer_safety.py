"""The bank's rules for answer sentences: no credential requests, no contact details off the allow-list."""

from __future__ import annotations

import pytest

from zhiwen.tools.answer_safety import has_contact, unsafe_sentences

ALLOW = ["bank.example.com", "service@bank.example.com", "95588"]


@pytest.mark.parametrize(
    ("answer", "why"),
    [
        ("请登录网银后回复您的密码。", "credential"),
        ("为了账户安全，请输入您的短信验证码。", "credential"),
        ("请提供您的身份证号和完整卡号以便核实。", "credential"),
        ("Please reply with your PIN to unlock the card.", "credential"),
        ("Enter your password and SMS code at the page below.", "credential"),
        ("详情请访问 http://bank-verify.example/login 。", "bank-verify.example"),
        ("Visit www.evil.example for details.", "www.evil.example"),
        ("Write to help@evil.example for a refund.", "help@evil.example"),
        ("如有疑问请拨打 400-820-8888 咨询。", "400-820-8888"),
        ("Call +86 138 0013 8000 now.", "+86 138 0013 8000"),
    ],
)
def test_forbidden_sentences(answer: str, why: str) -> None:
    found = unsafe_sentences(answer, ALLOW)
    assert len(found) == 1 and why in found[0][1] + found[0][0], found


@pytest.mark.parametrize(
    "answer",
    [
        "请勿向任何人透露验证码。银行不会索要您的密码。",
        "Never share your password or SMS code with anyone, including bank staff.",
        "详情见 https://www.bank.example.com/cards 。",
        "Write to service@bank.example.com with questions.",
        "如有疑问请拨打客服热线95588。",
        "安心贷最高额度为200000元，年利率4.5%，期限最长三年。",
        "In 2015 the Panthers scored 308 points and won 15 games.",
        "You can reset your password in the app under Settings.",
    ],
)
def test_allowed_sentences(answer: str) -> None:
    assert unsafe_sentences(answer, ALLOW) == []


def test_only_the_bad_sentence_goes_and_an_empty_allow_list_allows_no_contact() -> None:
    answer = "The fee is 15 dollars. For help call 95588. Reply with your PIN to confirm."
    assert [s for s, _ in unsafe_sentences(answer, ALLOW)] == ["Reply with your PIN to confirm."]
    assert [s for s, _ in unsafe_sentences(answer, [])] == [
        "For help call 95588.",
        "Reply with your PIN to confirm.",
    ]
    assert has_contact(answer) and not has_contact("The fee is 15 dollars.")
