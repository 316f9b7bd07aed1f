"""Write the answer with the chat model, streaming; think text is filtered inside the model wrapper."""

from __future__ import annotations

import time
from typing import Any

import httpx
import httpx2
import openai
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langgraph.runtime import Runtime

from zhiwen.errors import LLMUnavailable
from zhiwen.graph.context import Context
from zhiwen.graph.state import State
from zhiwen.nodes._common import chat_model, context_of, history
from zhiwen.nodes.prompts import CHITCHAT_SYSTEM, SYSTEM, context_block
from zhiwen.tools.llm import message_text
from zhiwen.tools.openai_stream import ChunkStallError

__all__ = ["build_messages", "generate"]


def build_messages(state: State, ctx: Context) -> list[BaseMessage]:
    """System prompt first (cacheable), then trimmed history, then numbered context and the question."""
    intent = state["intent"]
    lang = intent["language"] if intent["language"] in SYSTEM else "en"
    past = history(state.get("messages", []), ctx.max_history_tokens)
    if intent["label"] == "greeting":
        return [SystemMessage(CHITCHAT_SYSTEM[lang]), *past, HumanMessage(intent["query"])]
    return [
        SystemMessage(SYSTEM[lang]),
        *past,
        HumanMessage(context_block(intent["query"], state.get("sources", []), lang, ctx.source_chars)),
    ]


async def generate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    start = time.perf_counter()
    ctx = context_of(runtime)
    model = chat_model(ctx)
    try:
        result = await model.ainvoke(build_messages(state, ctx))
    # The openai SDK talks through httpx2; a stream cut mid-way raises its transport errors as they are.
    except (openai.APIError, httpx.HTTPError, httpx2.HTTPError, ChunkStallError) as exc:
        raise LLMUnavailable(f"the chat model endpoint failed: {type(exc).__name__}: {exc}") from exc
    reasoning = str(result.additional_kwargs.get("reasoning_content", ""))
    return {
        "draft": message_text(result).strip(),
        "model_reasoning": reasoning,
        "timings": {"generation": time.perf_counter() - start},
    }
