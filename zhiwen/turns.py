"""Run one chat turn through the graph and turn LangGraph's streams into simple events.

The CLI, the server and the eval runner all go through ``stream_turn``: answer tokens come only from
the ``generate`` node (already think-filtered), a retry by the quality gate is announced, and token
usage reported by the endpoint is summed over the turn's model calls.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from zhiwen.graph.context import Context

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
    """
    messages = [HumanMessage(question)] if isinstance(question, str) else list(question)
    config: RunnableConfig = {"configurable": {"thread_id": thread_id or uuid.uuid4().hex}}
    start = time.perf_counter()
    generate_runs: set[str] = set()
    final: dict[str, Any] = {}
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    stream: AsyncIterator[Any] = graph.astream(
        {"messages": messages}, config, context=context, stream_mode=["messages", "values"]
    )
    try:
        async for mode, data in stream:
            if mode == "values":
                final = dict(data)
                continue
            chunk, meta = data
            if not isinstance(chunk, AIMessageChunk):
                continue
            if chunk.usage_metadata:
                usage["prompt_tokens"] += int(chunk.usage_metadata.get("input_tokens", 0))
                usage["completion_tokens"] += int(chunk.usage_metadata.get("output_tokens", 0))
            if meta.get("langgraph_node") != "generate":
                continue
            run = str(meta.get("langgraph_checkpoint_ns", "")) + str(meta.get("langgraph_step", ""))
            if run not in generate_runs:
                if generate_runs:
                    yield TurnEvent("retry", elapsed=time.perf_counter() - start)
                generate_runs.add(run)
            reasoning = chunk.additional_kwargs.get("reasoning_content")
            if reasoning:
                yield TurnEvent("reasoning", str(reasoning), elapsed=time.perf_counter() - start)
            if isinstance(chunk.content, str) and chunk.content:
                yield TurnEvent("token", chunk.content, elapsed=time.perf_counter() - start)
    finally:
        # Closing the graph stream cancels a running node and with it the upstream LLM request.
        await stream.aclose()  # type: ignore[attr-defined]
    yield TurnEvent("final", state=final, elapsed=time.perf_counter() - start, usage=usage)
