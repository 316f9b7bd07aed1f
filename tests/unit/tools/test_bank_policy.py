"""The bank persona's answer policy: steps, loan sections, risk reminders, unrequested links, hand-over."""

from __future__ import annotations

import pytest

from zhiwen.tools.bank_policy import apply_policy, handover, question_kinds, split_answer, without_fixed_texts


@pytest.mark.parametrize(
    ("question", "kinds"),
    [
        ("如何开通手机银行？", {"procedure"}),
        ("怎么办理挂失", {"procedure"}),
        ("How do I open an account?", {"procedure"}),
        ("What are the steps to reset my PIN?", {"procedure"}),
        ("跨行转账手续费多少", {"money"}),
        ("What is the wire transfer fee?", {"money"}),
        ("这款理财产品收益怎么样", {"investment"}),
        ("安心贷的利率是多少", {"loan"}),
        ("What mortgage rates do you offer?", {"loan"}),
        ("官网网址是什么", {"link_asked"}),
        ("如何办理跨境汇款", {"procedure", "money"}),
        # look-alikes: not procedures, not loans
        ("How many branches are there?", set()),
        ("How did the bank start?", set()),
        ("贷记卡的年费是多少", set()),
        ("金卡年费多少", set()),
    ],
)
def test_question_kinds(question: str, kinds: set[str]) -> None:
    assert question_kinds(question) == kinds


def test_an_answer_about_funds_concerns_investing() -> None:
    assert "investment" in question_kinds("有什么推荐的", "可以考虑稳健型基金[1]。")


def test_sentences_keep_their_citations_and_decimals() -> None:
    assert split_answer("年利率为3.45%[1]。申请人须年满18周岁[2]。请到网点办理。") == [
        "年利率为3.45%[1]。",
        "申请人须年满18周岁[2]。",
        "请到网点办理。",
    ]
    assert split_answer("The fee is 2.5 dollars. [1] Apply at a branch. [2] Bring your ID.") == [
        "The fee is 2.5 dollars. [1]",
        "Apply at a branch. [2]",
        "Bring your ID.",
    ]


def test_a_procedure_becomes_numbered_steps_word_for_word() -> None:
    answer = "携带身份证到网点[1]。填写申请表[1]。柜员审核后即可开通[2]。"
    result = apply_policy(answer, "如何开通手机银行？", "zh")
    assert result.answer == "1. 携带身份证到网点[1]。\n2. 填写申请表[1]。\n3. 柜员审核后即可开通[2]。"
    assert result.applied == ["procedure as numbered steps"] and result.appendix == ""


def test_an_answer_already_numbered_or_one_sentence_is_left_alone() -> None:
    numbered = "1. 携带身份证到网点。\n2. 填写申请表。"
    assert apply_policy(numbered, "如何开通手机银行？", "zh").answer == numbered
    one = "Visit any branch with your ID [1]."
    assert apply_policy(one, "How do I open an account?", "en").answer == one


def test_a_loan_answer_is_arranged_by_product_eligibility_rate_process_notes() -> None:
    answer = "安心贷是个人信用贷款[1]。逾期将收取罚息[1]。年利率为3.45%[1]。申请人须年满18周岁[2]。可通过手机银行申请[2]。"
    result = apply_policy(answer, "安心贷怎么样？", "zh")
    assert result.answer.splitlines() == [
        "产品：安心贷是个人信用贷款[1]。",
        "申请条件：申请人须年满18周岁[2]。",
        "利率：年利率为3.45%[1]。",
        "办理流程：可通过手机银行申请[2]。",
        "注意事项：逾期将收取罚息[1]。",
    ]
    english = apply_policy(
        "The Home Loan funds a first home [1]. Applicants must be aged 18 or over [1]. The rate is 3.9% [2].",
        "Tell me about the home loan",
        "en",
    )
    assert english.answer.splitlines() == [
        "Product: The Home Loan funds a first home [1].",
        "Eligibility: Applicants must be aged 18 or over [1].",
        "Rate: The rate is 3.9% [2].",
    ]


def test_money_and_investment_answers_get_the_risk_reminder_once() -> None:
    result = apply_policy("跨行转账手续费为每笔5元[1]。", "跨行转账手续费多少", "zh")
    assert result.answer.startswith("跨行转账手续费为每笔5元[1]。\n\n温馨提示：转账汇款前请核实收款人信息")
    assert result.appendix and result.answer.endswith(result.appendix)
    again = apply_policy(result.answer, "跨行转账手续费多少", "zh")
    assert again.answer.count("温馨提示") == 1, "not added twice"
    invest = apply_policy("The fund returned 4% last year [1].", "Should I invest in the growth fund?", "en")
    assert invest.appendix.startswith("Risk reminder: investments are not deposits")


def test_an_unrequested_link_goes_and_a_requested_one_stays() -> None:
    fee = apply_policy(
        "Wire transfers cost 25 dollars [1]. See https://bank.example.com/fees for details.",
        "What is the wire transfer fee?",
        "en",
    )
    assert fee.answer.startswith("Wire transfers cost 25 dollars [1].\n\n")
    assert "bank.example.com" not in fee.answer
    assert "removed a link the customer did not ask for" in fee.applied
    zh = apply_policy("详见 www.bank.example.com 。年费300元[1]。", "金卡年费多少", "zh")
    assert zh.answer == "年费300元[1]。"
    asked = "The site is https://bank.example.com [1]."
    assert apply_policy(asked, "What is the bank's website?", "en").answer == asked


def test_an_ordinary_answer_is_unchanged() -> None:
    answer = "金卡信用卡的年费为每年三百元人民币[1]。"
    result = apply_policy(answer, "金卡信用卡的年费是多少？", "zh")
    assert (result.answer, result.applied, result.appendix) == (answer, [], "")


def test_handover_names_the_hotline_when_there_is_one() -> None:
    assert "95588" in handover("zh", "95588") and "人工" in handover("zh", "95588")
    assert handover("en", "") == "For more help, contact a customer service agent or visit a branch."
    assert handover("fr", "95588").startswith("For more help, call the official hotline 95588")


def test_the_fixed_paragraphs_come_off_for_the_history() -> None:
    money = apply_policy("跨行转账手续费为每笔5元[1]。", "跨行转账手续费多少", "zh").answer
    assert without_fixed_texts(money) == "跨行转账手续费为每笔5元[1]。"
    both = apply_policy("Send money to the fund [1].", "How do I transfer money to invest in a fund?", "en")
    assert "\n" in both.appendix and without_fixed_texts(both.answer) == "Send money to the fund [1]."
    refused = f"No answer.\n\n{handover('zh', '+86 10 9555 8')}"
    assert without_fixed_texts(refused) == "No answer."
    steps = "1. 携带身份证。\n2. 填写申请表。"
    assert without_fixed_texts(steps) == steps, "the model's own paragraphs stay"


def test_history_sent_to_the_model_leaves_the_reminder_out() -> None:
    from langchain_core.messages import AIMessage, HumanMessage

    from zhiwen.nodes._common import history

    answer = apply_policy("跨行转账手续费为每笔5元[1]。", "跨行转账手续费多少", "zh").answer
    past = history([HumanMessage("跨行转账手续费多少"), AIMessage(answer), HumanMessage("那汇款呢")], 1000)
    assert [m.content for m in past] == ["跨行转账手续费多少", "跨行转账手续费为每笔5元[1]。"]
