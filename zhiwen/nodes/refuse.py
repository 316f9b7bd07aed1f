"""Politely decline unsafe, out-of-scope or empty messages in the user's language, with the reason."""

from __future__ import annotations

import asyncio
from typing import Any

from langgraph.runtime import Runtime

from zhiwen.graph.context import Context
from zhiwen.graph.state import Quality, State, answer_message
from zhiwen.nodes._common import context_of, kb_hotline
from zhiwen.nodes.prompts import refusal
from zhiwen.tools.bank_policy import handover

__all__ = ["refuse"]


async def refuse(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    intent = state["intent"]
    ctx = context_of(runtime)
    answer = refusal(intent["label"], intent["language"], ctx.persona)
    if ctx.persona == "bank" and intent["label"] != "empty":
        # The bank refusals hand over to a person: the hotline's number when the knowledge base has one.
        hotline = await asyncio.to_thread(kb_hotline, ctx.kb)
        answer = f"{answer}\n\n{handover(intent['language'], hotline)}"
    quality: Quality = {
        "verdict": "refuse",
        "attempts": 0,
        "reasons": [intent["reason"]],
        "think_leak": False,
    }
    return {
        "answer": answer,
        "quality": quality,
        "sources": [],
        "messages": [answer_message(answer, [], quality)],
    }
