"""Run one chat turn through the graph and turn LangGraph's streams into simple events.

The CLI, the server and the eval runner all go through ``stream_turn``: answer tokens come only from
the ``generate`` node's writes to the ``custom`` stream (already think-filtered), a retry by the quality
gate is announced, and token usage reported by the endpoint for the answers is summed.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from zhiwen.graph.context import Context
from zhiwen.nodes.generate import AnswerDelta

__all__ = ["TurnEvent", "stream_turn"]


@dataclass
class TurnEvent:
    """kind: token (answer text), reasoning, retry (a new attempt starts), final (the output state)."""

    kind: Literal["token", "reasoning", "retry", "final"]
    text: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)


async def stream_turn(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    question: str | Sequence[BaseMessage],
    context: Context,
    thread_id: str | None = None,
) -> AsyncGenerator[TurnEvent, None]:
    """Stream one turn; with a checkpointer on ``graph``, ``thread_id`` selects the conversation.

    ``question`` is the new user message, or a list of messages (a stateless caller's whole history).
    With ``context.stream_drafts`` off, no token, reasoning or retry event is sent: the caller gets the
    checked answer from the final state only.
    """
    messages = [HumanMessage(question)] if isinstance(question, str) else list(question)
    config: RunnableConfig = {"configurable": {"thread_id": thread_id or uuid.uuid4().hex}}
    start = time.perf_counter()
    attempt: int | None = None
    final: dict[str, Any] = {}
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    stream: AsyncIterator[Any] = graph.astream(
        {"messages": messages}, config, context=context, stream_mode=["custom", "values"]
    )
    try:
        async for mode, data in stream:
            if mode == "values":
                final = dict(data)
                continue
            if not isinstance(data, AnswerDelta):
                continue
            if data.usage:
                usage["prompt_tokens"] += int(data.usage.get("input_tokens", 0))
                usage["completion_tokens"] += int(data.usage.get("output_tokens", 0))
            if not context.stream_drafts:
                continue
            if attempt != data.attempt:
                if attempt is not None:
                    yield TurnEvent("retry", elapsed=time.perf_counter() - start)
                attempt = data.attempt
            if data.reasoning:
                yield TurnEvent("reasoning", data.reasoning, elapsed=time.perf_counter() - start)
            if data.text:
                yield TurnEvent("token", data.text, elapsed=time.perf_counter() - start)
    finally:
        # Closing the graph stream cancels a running node and with it the upstream LLM request.
        await stream.aclose()  # type: ignore[attr-defined]
    yield TurnEvent("final", state=final, elapsed=time.perf_counter() - start, usage=usage)
