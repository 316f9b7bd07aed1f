"""Politely decline unsafe, out-of-scope or empty messages in the user's language, with the reason."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from zhiwen.graph.context import Context
from zhiwen.graph.state import Quality, State
from zhiwen.nodes._common import context_of
from zhiwen.nodes.prompts import refusal

__all__ = ["refuse"]


async def refuse(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    intent = state["intent"]
    answer = refusal(intent["label"], intent["language"], context_of(runtime).persona)
    quality: Quality = {
        "verdict": "refuse",
        "attempts": 0,
        "reasons": [intent["reason"]],
        "think_leak": False,
    }
    return {"answer": answer, "quality": quality, "sources": [], "messages": [AIMessage(content=answer)]}
