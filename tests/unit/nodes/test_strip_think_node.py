"""strip_think node: reasoning taken out of the draft and joined with what the model wrapper kept apart."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from zhiwen.graph.state import State
from zhiwen.nodes.strip_think import strip_think


def _run(**state: Any) -> dict[str, Any]:
    s: State = state  # type: ignore[assignment]
    return asyncio.run(strip_think(s))


def test_clean_draft_passes_through() -> None:
    assert _run(draft="  年费为三百元。\n", model_reasoning="") == {
        "draft": "年费为三百元。",
        "reasoning": "",
    }


def test_leading_think_block_becomes_reasoning() -> None:
    out = _run(draft="<think>秘密推理 secret</think>\n\nThe fee is 15 dollars.")
    assert out == {"draft": "The fee is 15 dollars.", "reasoning": "秘密推理 secret"}


def test_bare_closing_tag_prefix_becomes_reasoning() -> None:
    out = _run(draft="the user asks about fees</think>The fee is 15 dollars.")
    assert out == {"draft": "The fee is 15 dollars.", "reasoning": "the user asks about fees"}


def test_joins_wrapper_reasoning_and_draft_reasoning() -> None:
    out = _run(draft="<think>second</think>Answer.", model_reasoning="first")
    assert out["reasoning"] == "first\nsecond"
    assert out["draft"] == "Answer."


def test_unclosed_block_leaves_no_answer() -> None:
    assert _run(draft="<think>still thinking when max_tokens ran out") == {
        "draft": "",
        "reasoning": "still thinking when max_tokens ran out",
    }


def test_think_tags_later_in_the_answer_are_answer_text() -> None:
    draft = "Use `<think>` tags like this:\n```\n<think>x</think>\n```"
    assert _run(draft=draft) == {"draft": draft, "reasoning": ""}


@pytest.mark.parametrize("draft", ["金卡信用卡的年费为每年三百元人民币。", "The fee is 15 dollars."])
def test_clean_draft_from_a_prompt_opened_think_model_is_kept(draft: str) -> None:
    """Regression: the wrapper already applied expect_think_open_in_prompt; applying it again here
    turned every clean answer into reasoning."""
    assert _run(draft=draft, model_reasoning="秘密推理") == {"draft": draft, "reasoning": "秘密推理"}


def test_missing_keys() -> None:
    assert _run() == {"draft": "", "reasoning": ""}
