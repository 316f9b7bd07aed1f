"""Take any remaining ``<think>`` reasoning out of the draft and keep it apart as ``reasoning``."""

from __future__ import annotations

from typing import Any

from langgraph.runtime import Runtime

from zhiwen.graph.context import Context
from zhiwen.graph.state import State
from zhiwen.nodes._common import context_of
from zhiwen.tools.think_tags import strip_think as split_think

__all__ = ["strip_think"]


async def strip_think(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    """The model wrapper already filters streams; this catches drafts from any other path."""
    ctx = context_of(runtime)
    split = split_think(state.get("draft", ""), ctx.expect_think_open_in_prompt)
    reasoning = "\n".join(r for r in (state.get("model_reasoning", ""), split.reasoning) if r)
    return {"draft": split.answer.strip(), "reasoning": reasoning}
