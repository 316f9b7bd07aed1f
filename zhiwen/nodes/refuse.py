"""Politely decline unsafe, out-of-scope or empty messages in the user's language, with the reason."""

from __future__ import annotations

from typing import Any

from langchain_core.messages import AIMessage

from zhiwen.graph.state import Quality, State
from zhiwen.nodes.prompts import refusal

__all__ = ["refuse"]


async def refuse(state: State) -> dict[str, Any]:
    intent = state["intent"]
    answer = refusal(intent["label"], intent["language"])
    quality: Quality = {
        "verdict": "refuse",
        "attempts": 0,
        "reasons": [intent["reason"]],
        "think_leak": False,
    }
    return {"answer": answer, "quality": quality, "sources": [], "messages": [AIMessage(content=answer)]}
