"""``turns.closing``: what a reader of the streamed draft still needs to see when the turn ends."""

from __future__ import annotations

from typing import Any

from zhiwen.nodes.prompts import no_answer, withdrawn_notice
from zhiwen.turns import Closing, closing, withdrawn_citations

DRAFT = "Banks on Mars open at eight every morning."


def _state(answer: str, verdict: str, language: str = "en", **quality: Any) -> dict[str, Any]:
    return {"answer": answer, "quality": {"verdict": verdict, **quality}, "intent": {"language": language}}


def test_a_passed_streamed_answer_needs_nothing_more() -> None:
    assert closing(_state(DRAFT + " [1]", "pass"), DRAFT) == Closing()


def test_nothing_streamed_means_the_whole_answer() -> None:
    assert closing(_state("Hello!", "pass"), "") == Closing(answer="Hello!")
    assert closing(_state(no_answer("en"), "refuse"), "") == Closing(answer=no_answer("en"))


def test_a_refused_draft_is_withdrawn_in_the_question_language() -> None:
    end = closing(_state(no_answer("zh"), "refuse", "zh", model_refused=False), "年费是10元。")
    assert end == Closing(withdrawn_notice("zh"), no_answer("zh"))
    assert end.text() == f"{withdrawn_notice('zh')}\n\n{no_answer('zh')}"


def test_a_draft_that_declined_is_not_called_withdrawn() -> None:
    declined = "The sources do not say when banks on Mars open."
    end = closing(_state(no_answer("en"), "refuse", model_refused=True), declined)
    assert end == Closing(answer=no_answer("en"))
    assert end.text() == no_answer("en")


def test_a_refusal_already_streamed_is_not_sent_twice() -> None:
    assert closing(_state("Sorry.", "refuse"), "Sorry.") == Closing()


def test_reasoning_streamed_without_its_opening_tag_is_withdrawn_and_the_answer_follows() -> None:
    streamed = "The user asks about the fee, so I look at source 1.</think>The fee is 15 dollars."
    end = closing(_state("The fee is 15 dollars [1].", "pass"), streamed)
    assert end == Closing(withdrawn_notice("en"), "The fee is 15 dollars [1].")


def test_a_draft_replaced_by_a_quote_is_withdrawn_before_the_quote() -> None:
    quote = "资料中与您的问题最相关的原文：「金卡年费为三百元。」[1]"
    state = {"answer": quote, "quality": {"verdict": "quote"}, "intent": {"language": "zh"}}
    assert closing(state, "金卡年费为五百元。") == Closing(withdrawn_notice("zh"), quote)
    assert closing(state, quote) == Closing()  # drafts held back: the quote itself was the stream


def _cited(answer: str, verdict: str = "pass", **quality: Any) -> dict[str, Any]:
    return _state(answer, verdict, **quality) | {"sources": [{"n": 1}, {"n": 2}]}


def test_a_marker_the_gate_dropped_from_a_standing_draft_is_named() -> None:
    streamed = "The fee is 15 dollars [1] [2]."
    assert withdrawn_citations(_cited("The fee is 15 dollars [1]."), streamed) == [2]
    assert withdrawn_citations(_cited("The fee is 15 dollars [1] [2]."), streamed) == []


def test_a_marker_dropped_before_a_risk_reminder_is_named() -> None:
    reminder = "Reminder: check the payee's details."
    state = _cited(f"Send it by noon [1].\n\n{reminder}", policy_appendix=reminder)
    assert withdrawn_citations(state, "Send it by noon [1] [3].") == [3]


def test_markers_of_a_replaced_draft_are_not_listed() -> None:
    assert withdrawn_citations(_cited(no_answer("en"), "refuse", model_refused=False), "Mars [2].") == []
    assert withdrawn_citations(_cited("Quoted sentence. [1]", "quote"), "Mars [2].") == []
    assert withdrawn_citations(_cited("Hello!"), "") == []
