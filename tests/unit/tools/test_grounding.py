"""Deterministic answer checks: sentence support, numbers, citation attribution, refusals, relevance."""

from __future__ import annotations

import pytest

from zhiwen.tools.grounding import (
    add_citations,
    check_sentences,
    drop_bad_citations,
    is_refusal,
    relevance,
    source_relevance,
)

SOURCES = [
    "金卡信用卡的年费为每年三百元人民币。首年免收年费。",
    "The fee for an international wire transfer is 15 dollars.",
]


def test_each_sentence_gets_its_best_source() -> None:
    checks = check_sentences("金卡信用卡的年费为每年三百元。The wire transfer fee is 15 dollars.", SOURCES)
    assert [(c.best, c.supported) for c in checks] == [(1, True), (2, True)]
    assert [c.text for c in checks] == [
        "金卡信用卡的年费为每年三百元。",
        "The wire transfer fee is 15 dollars.",
    ]
    assert all(len(c.scores) == len(SOURCES) for c in checks)
    assert checks[0].scores[0] > checks[0].scores[1]


def test_unsupported_sentence_has_no_source() -> None:
    (check,) = check_sentences("Mars branches open at eight every morning.", SOURCES)
    assert check.best == 0 and not check.supported and check.support < 0.5


def test_invented_number_fails_even_when_the_words_match() -> None:
    (check,) = check_sentences("The fee for an international wire transfer is 25 dollars.", SOURCES)
    assert check.best == 2
    assert check.numbers_ok is False
    assert not check.supported


def test_sentences_without_content_are_skipped() -> None:
    assert check_sentences("Yes.", SOURCES) == []
    assert check_sentences("", SOURCES) == []


def test_model_citations_are_read() -> None:
    (check,) = check_sentences("The wire transfer fee is 15 dollars [2][1].", SOURCES)
    assert check.cited == (2, 1)


def test_no_sources_supports_nothing() -> None:
    (check,) = check_sentences("The fee is 15 dollars.", [])
    assert (check.best, check.numbers_ok, check.scores) == (0, False, ())


def test_add_citations_zh_before_final_punctuation_en_after() -> None:
    answer = "金卡信用卡的年费为每年三百元。The wire transfer fee is 15 dollars."
    assert add_citations(answer, check_sentences(answer, SOURCES)) == (
        "金卡信用卡的年费为每年三百元[1]。The wire transfer fee is 15 dollars. [2]"
    )


def test_add_citations_leaves_cited_and_unsupported_sentences_alone() -> None:
    answer = "The wire transfer fee is 15 dollars [2]. Mars branches open at eight every morning."
    assert add_citations(answer, check_sentences(answer, SOURCES)) == answer


def test_markers_naming_no_source_or_a_non_supporting_one_are_dropped_then_attributed() -> None:
    answer = "金卡信用卡的年费为每年三百元[3]。The wire transfer fee is 15 dollars [1]. See [2]."
    checks = check_sentences(answer, SOURCES)
    cleaned = drop_bad_citations(answer, checks, len(SOURCES))
    assert cleaned == "金卡信用卡的年费为每年三百元。The wire transfer fee is 15 dollars. See [2]."
    fixed = add_citations(cleaned, check_sentences(cleaned, SOURCES))
    assert fixed == "金卡信用卡的年费为每年三百元[1]。The wire transfer fee is 15 dollars. [2] See [2]."
    right = "The wire transfer fee is 15 dollars [2]."
    assert drop_bad_citations(right, check_sentences(right, SOURCES), len(SOURCES)) == right


@pytest.mark.parametrize(
    "answer",
    [
        "The wire transfer fee is 15 dollars. [2]",
        "金卡信用卡的年费为每年三百元。[1]",
        "金卡信用卡的年费为每年三百元。[1] The wire transfer fee is 15 dollars. [2]",
    ],
)
def test_a_marker_after_the_full_stop_cites_that_sentence(answer: str) -> None:
    """Split at the stop, the sentence counted as uncited and got a second marker: "… 15 dollars. [2] [2]"."""
    checks = check_sentences(answer, SOURCES)
    assert all(c.cited for c in checks), checks
    assert add_citations(answer, checks) == answer
    assert drop_bad_citations(answer, checks, len(SOURCES)) == answer


def test_add_citations_keeps_trailing_whitespace() -> None:
    answer = "金卡信用卡的年费为每年三百元。\n"
    assert add_citations(answer, check_sentences(answer, SOURCES)) == "金卡信用卡的年费为每年三百元[1]。\n"


@pytest.mark.parametrize(
    "text",
    [
        "知识库中没有找到相关信息。",
        "资料中没有提及这一点。",
        "The knowledge base does not contain this information.",
        "I cannot answer that from the context.",
        "This is not mentioned in the context.",
        "The knowledge base does not contain this information.",
        "知识库中没有找到相关信息。",
        "文档中未提及该卡的年费。",
        "根据所给资料，没有提到提前还款的费用。",
        "The sources don't mention the early repayment fee.",
        "I could not find the answer in the documents.",
        "Sorry, there is no relevant information in the passages.",
        "不知道。",
        "我不知道这张卡的年费。",
        "抱歉，我们也不知道。",
    ],
)
def test_refusals(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize(
    "text",
    [
        "金卡信用卡的年费为每年三百元。",
        "The fee is 15 dollars.",
        "The annual fee does not include the supplementary card [1].",  # were refused as refusals
        "年费不包含附属卡的费用[1]。",
        "该产品未提供纸质对账单，只提供电子对账单。",
        "Online banking is not available in branches outside the mainland.",
        "根据资料，年费不包含附属卡费用[1]。",
        "According to the documents, the fee does not include VAT.",
        "参考利率不包含浮动部分。",
        "如果找不到卡片，请立即挂失。",
        # "不知道" said of someone else is an answer (cmrc2018-dev DEV_1969_QUERY_2, refused before)
        "因为他们很长一段时间里都不知道早晨出现的启明星和傍晚出现的太白星实际是同一颗星。",
        "客户往往不知道附属卡也收年费[1]。",
    ],
)
def test_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_relevance_is_the_share_of_question_terms_covered() -> None:
    assert relevance("What is the wire transfer fee?", "It is 15 dollars.", [SOURCES[1]]) == 1.0
    assert relevance("金卡年费", "三百元", []) == 0.0
    assert 0.0 < relevance("wire transfer fee for mortgages", "The fee is 15 dollars.", []) < 1.0
    assert relevance("", "anything", []) == 1.0


def test_source_relevance_counts_the_question_topic_in_the_sources_not_the_answer() -> None:
    question = "硕塞是如何被提升为亲王的？"
    on_topic = "硕塞在姜瓖反叛期间移师代州，解围有功，被提升为亲王。"
    off_topic = "守觉法亲王出家为僧，因此《平家物语》将他记载为后白河的第二皇子。"
    answer = "硕塞被提升为亲王是因为次兄守觉法亲王出家为僧。"
    assert source_relevance(question, [on_topic]) == 1.0
    low = source_relevance(question, [off_topic])
    assert low is not None and low < 0.4
    # the answer restates the question, so the answer-inclusive relevance barely tells the two apart
    assert relevance(question, answer, [off_topic]) > 0.6  # above any useful threshold


def test_source_relevance_ignores_question_words_and_needs_something_to_measure() -> None:
    # "什么" is not a topic: a source naming the fee fully covers the question
    assert source_relevance("金卡的年费是什么？", ["金卡信用卡的年费为每年三百元。"]) == 1.0
    assert source_relevance("What is the wire transfer fee?", ["The wire transfer fee is 15 dollars."]) == 1.0
    assert source_relevance("金卡的年费是什么？", []) is None  # no supporting source
    assert source_relevance("什么？", ["金卡信用卡的年费为每年三百元。"]) is None  # no topic terms


CARDS = [
    "The Gold card annual fee is 300 yuan. The first year is free.",
    "The Platinum card annual fee is 2000 yuan and includes lounge access.",
]


@pytest.mark.parametrize(
    ("sentence", "ok"),
    [
        ("The Gold card annual fee is 2000 yuan.", False),  # the Platinum passage's figure
        ("The Gold card annual fee is 300 yuan.", True),
        ("The Platinum card annual fee is 2000 yuan.", True),
        ("The annual fee is 300 yuan.", True),  # both passages fit the words: either may back it
        ("The Gold card annual fee is 2000 yuan [2].", False),  # citing the Platinum passage does not help
        ("The Platinum card annual fee is 2000 yuan [2].", True),
    ],
)
def test_a_figure_must_come_from_the_passage_its_words_match(sentence: str, ok: bool) -> None:
    (check,) = check_sentences(sentence, CARDS)
    assert check.numbers_ok is ok


@pytest.mark.parametrize(
    ("sentence", "ok"),
    [("金卡年费为2000元。", False), ("白金卡年费为2000元。", True), ("金卡年费为一千元。", True)],
)
def test_a_passage_whose_words_contain_the_sentences_loses_to_the_exact_one(sentence: str, ok: bool) -> None:
    (check,) = check_sentences(sentence, ["金卡年费为1000元。", "白金卡年费为2000元。"])
    assert check.numbers_ok is ok


@pytest.mark.parametrize(
    ("sentence", "ok"),
    [
        ("金卡信用卡的年费为每年三百元。", True),
        ("金卡信用卡的年费为每年五百元。", False),
        ("金卡年费为３００元。", True),
    ],
)
def test_figures_in_chinese_numerals_and_full_width_are_checked(sentence: str, ok: bool) -> None:
    (check,) = check_sentences(sentence, ["金卡信用卡的年费为每年300元人民币。"])
    assert check.numbers_ok is ok
