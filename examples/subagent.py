"""zhiwen as a sub-agent: a parent LangGraph graph embeds the compiled zhiwen graph, two ways.

Usage:  python examples/subagent.py --kb sample "How long does an international wire transfer take?"
        python examples/subagent.py --kb sample --shared "国际电汇要多久？"

Create the knowledge base first (``zhiwen demo`` or ``zhiwen ingest zhiwen/sample_kb --kb sample``);
the answer comes from the embedded model unless ZHIWEN_LLM_BASE_URL is set. Answer tokens are printed
as they stream out of the subgraph (``stream_mode="messages", subgraphs=True``).
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import uuid
from collections.abc import AsyncIterator
from typing import Any, NamedTuple

from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.base import BaseCheckpointSaver
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph
from typing_extensions import TypedDict  # pydantic (Studio's JSON schemas) needs it before 3.12

from zhiwen.errors import ZhiwenError
from zhiwen.graph.builder import graph as zhiwen_graph
from zhiwen.graph.context import Context
from zhiwen.graph.state import InputState, Source
from zhiwen.memory.registry import open_kb
from zhiwen.settings import DEFAULT_KB

__all__ = ["TicketState", "Token", "build_shared", "build_wrapper", "stream_tokens"]

Parent = CompiledStateGraph[Any, Any, Any, Any]


def build_shared(checkpointer: BaseCheckpointSaver[Any] | None = None) -> Parent:
    """(a) zhiwen as a node: it shares the parent's ``messages`` and appends its answer there."""
    builder = StateGraph(MessagesState, context_schema=Context)
    builder.add_node("zhiwen", zhiwen_graph)  # the parent's context (kb, top_k, ...) reaches it
    builder.add_edge(START, "zhiwen")
    return builder.compile(checkpointer=checkpointer)


class TicketState(TypedDict, total=False):
    ticket: str
    kb_answer: str
    kb_sources: list[Source]


def build_wrapper(context: Context, checkpointer: BaseCheckpointSaver[Any] | None = None) -> Parent:
    """(b) A parent with its own state: a wrapper node maps a ticket in and the answer back out."""

    async def ask_kb(state: TicketState, config: RunnableConfig) -> dict[str, Any]:
        # Passing ``config`` on makes zhiwen a subgraph of this run: its tokens reach the parent's stream.
        question: InputState = {"messages": [HumanMessage(state["ticket"])]}
        out = await zhiwen_graph.ainvoke(question, config, context=context)
        return {"kb_answer": out["answer"], "kb_sources": out.get("sources", [])}

    builder = StateGraph(TicketState)
    builder.add_node("ask_kb", ask_kb)
    builder.add_edge(START, "ask_kb")
    return builder.compile(checkpointer=checkpointer)


class Token(NamedTuple):
    """An answer token; ``namespace`` names the subgraph, a new ``step`` is a quality-gate retry."""

    namespace: tuple[str, ...]
    step: int
    text: str


async def stream_tokens(
    parent: Parent, inputs: dict[str, Any], config: RunnableConfig, context: Context | None = None
) -> AsyncIterator[Token]:
    """The answer tokens of zhiwen's ``generate`` node, wherever zhiwen sits in the parent."""
    stream: AsyncIterator[Any] = parent.astream(
        inputs, config, context=context, stream_mode="messages", subgraphs=True
    )
    async for namespace, (chunk, meta) in stream:
        if meta.get("langgraph_node") != "generate" or not isinstance(chunk, AIMessageChunk):
            continue  # zhiwen's final AIMessage (with citations) also passes by, from node "evaluate"
        if isinstance(chunk.content, str) and chunk.content:
            yield Token(namespace, int(meta.get("langgraph_step", 0)), chunk.content)


async def main(kb: str, question: str, shared: bool) -> None:
    context = Context(kb=kb)
    open_kb(kb)  # fail early, with a clear message, when the knowledge base does not exist
    config: RunnableConfig = {"configurable": {"thread_id": uuid.uuid4().hex}}
    inputs: dict[str, Any]
    if shared:
        parent, inputs = build_shared(InMemorySaver()), {"messages": [HumanMessage(question)]}
    else:
        parent, inputs = build_wrapper(context, InMemorySaver()), {"ticket": question}
    attempts: set[tuple[tuple[str, ...], int]] = set()
    async for token in stream_tokens(parent, inputs, config, context):
        if (token.namespace, token.step) not in attempts:
            attempts.add((token.namespace, token.step))
            print(f"\n[subgraph {'/'.join(token.namespace)}, step {token.step}]", file=sys.stderr)
        print(token.text, end="", flush=True)
    values = (await parent.aget_state(config)).values
    if shared:
        print(f"\n\nlast message: {values['messages'][-1].content}")
    else:
        print(f"\n\nkb_answer: {values['kb_answer']}")
        for s in values["kb_sources"]:
            print(f"  [{s['n']}] {s['source'].rsplit('/', 1)[-1]} · {s['title']}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="Run zhiwen as a sub-agent of a parent graph.")
    parser.add_argument("question")
    parser.add_argument(
        "--kb", default=DEFAULT_KB, help=f"knowledge base to answer from (default: {DEFAULT_KB})"
    )
    parser.add_argument("--shared", action="store_true", help="embed zhiwen as a node sharing `messages`")
    args = parser.parse_args()
    try:
        asyncio.run(main(args.kb, args.question, args.shared))
    except ZhiwenError as exc:
        sys.exit(f"subagent: error: {exc}")
