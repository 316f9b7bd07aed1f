"""Deterministic answer checks: sentence support, numbers, citation attribution, refusals, relevance."""

from __future__ import annotations

import pytest

from zhiwen.tools.grounding import add_citations, check_sentences, is_refusal, relevance

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
    ],
)
def test_refusals(text: str) -> None:
    assert is_refusal(text)


@pytest.mark.parametrize("text", ["金卡信用卡的年费为每年三百元。", "The fee is 15 dollars."])
def test_answers_are_not_refusals(text: str) -> None:
    assert not is_refusal(text)


def test_relevance_is_the_share_of_question_terms_covered() -> None:
    assert relevance("What is the wire transfer fee?", "It is 15 dollars.", [SOURCES[1]]) == 1.0
    assert relevance("金卡年费", "三百元", []) == 0.0
    assert 0.0 < relevance("wire transfer fee for mortgages", "The fee is 15 dollars.", []) < 1.0
    assert relevance("", "anything", []) == 1.0
