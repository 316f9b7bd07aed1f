"""Take any remaining ``<think>`` reasoning out of the draft and keep it apart as ``reasoning``."""

from __future__ import annotations

from typing import Any

from zhiwen.graph.state import State
from zhiwen.tools.think_tags import strip_think as split_think

__all__ = ["strip_think"]


async def strip_think(state: State) -> dict[str, Any]:
    """The model wrapper already filters streams; this catches drafts from any other path.

    ``Context.expect_think_open_in_prompt`` is applied by the wrapper only: the draft it returns is
    already past the prompt-opened block, so applying it again would turn the whole answer into reasoning.
    """
    split = split_think(state.get("draft", ""))
    reasoning = "\n".join(r for r in (state.get("model_reasoning", ""), split.reasoning) if r)
    return {"draft": split.answer.strip(), "reasoning": reasoning}
