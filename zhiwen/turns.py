"""Run one chat turn through the graph and turn LangGraph's streams into simple events.

The CLI, the server and the eval runner all go through ``stream_turn``: answer tokens come only from
the ``generate`` node (already think-filtered), and a retry by the quality gate is announced.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AIMessageChunk, HumanMessage
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


async def stream_turn(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    question: str,
    context: Context,
    thread_id: str | None = None,
) -> AsyncIterator[TurnEvent]:
    """Stream one turn; with a checkpointer on ``graph``, ``thread_id`` selects the conversation."""
    config: RunnableConfig = {"configurable": {"thread_id": thread_id or uuid.uuid4().hex}}
    start = time.perf_counter()
    generate_runs: set[str] = set()
    final: dict[str, Any] = {}
    stream: AsyncIterator[Any] = graph.astream(
        {"messages": [HumanMessage(question)]},
        config,
        context=context,
        stream_mode=["messages", "values"],
    )
    async for mode, data in stream:
        if mode == "values":
            final = dict(data)
            continue
        chunk, meta = data
        if meta.get("langgraph_node") != "generate" or not isinstance(chunk, AIMessageChunk):
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
    yield TurnEvent("final", state=final, elapsed=time.perf_counter() - start)
