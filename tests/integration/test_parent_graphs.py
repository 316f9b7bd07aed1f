"""zhiwen's compiled graph as a node of a parent graph, sync and async, on a real knowledge base.

The parent adds the compiled graph itself as a node (``parent.add_node("kb_agent", graph)``), as most
LangGraph examples do, and a real turn runs through it: e5 vectors in Chroma on disk, BM25, and a chat model
over HTTP (the scripted server, answering with think text that must never surface). Async turns run under
the blocking-call detector ``langgraph dev`` uses.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.graph import START, MessagesState, StateGraph
from langgraph.graph.state import CompiledStateGraph

from zhiwen.errors import KnowledgeBaseNotFound
from zhiwen.graph.builder import graph
from zhiwen.graph.context import Context
from zhiwen.testing.scripted_llm import Script, ScriptedLLMServer
from zhiwen.tools.bank_policy import without_fixed_texts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ZH_Q, ZH_A = "金卡信用卡的年费是多少？", "金卡信用卡的年费为每年三百元人民币。"
EN_Q, EN_A = (
    "How long do international wire transfers take?",
    "International wire transfers take three business days.",
)


class ParentState(MessagesState):
    """A parent's own state: zhiwen's messages key plus keys zhiwen knows nothing of."""

    ticket_id: str
    handled_by: str


def _after(state: ParentState) -> dict[str, Any]:
    return {"handled_by": "kb_agent"}


def _parent() -> CompiledStateGraph[Any, Any, Any, Any]:
    builder = StateGraph(ParentState, context_schema=Context)
    builder.add_node("kb_agent", graph)
    builder.add_node("after", _after)
    builder.add_edge(START, "kb_agent")
    builder.add_edge("kb_agent", "after")
    return builder.compile(checkpointer=InMemorySaver())


@pytest.fixture
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


def _context(kb: tuple[str, Path], llm: ScriptedLLMServer, name: str | None = None) -> Context:
    return Context(kb=name or kb[0], base_url=llm.base_url, model="scripted", request_timeout=10)


def _answers(llm: ScriptedLLMServer) -> None:
    llm.llm.enqueue(
        Script(text=f"<think>推理</think>{ZH_A}", chunk_size=2), Script(text=f"<think>why</think>{EN_A}")
    )


def _inputs(question: str) -> dict[str, Any]:
    return {"messages": [HumanMessage(question)], "ticket_id": "T-1"}


def _thread(name: str) -> RunnableConfig:
    return {"configurable": {"thread_id": name}}


def _bare(text: str) -> str:
    """The model's answer as written: no attributed [n], no bank reminder (test_bank_policy_turns checks it)."""
    return re.sub(r"\s*\[\d{1,3}\]", "", without_fixed_texts(text))


def _check(out: dict[str, Any], answer: str, source: str) -> str:
    """The parent's final state: zhiwen's answer as its last message, the parent's own keys kept."""
    last = out["messages"][-1]
    assert isinstance(last, AIMessage)
    text = str(last.content)
    assert _bare(text) == answer and "[1]" in text, "the answer, with its citation attributed"
    assert "推理" not in text and "think" not in text
    assert out["ticket_id"] == "T-1" and out["handled_by"] == "kb_agent", "the parent's keys survive"
    assert "sources" not in out, "zhiwen's own keys stay inside the sub-agent"
    return text


def _tokens(events: list[tuple[tuple[str, ...], tuple[Any, dict[str, Any]]]]) -> list[str]:
    """The answer tokens zhiwen's generate node streamed, checked to come from the sub-graph."""
    tokens = []
    for namespace, (chunk, meta) in events:
        assert "推理" not in str(chunk.content) and "<think>" not in str(chunk.content)
        if isinstance(chunk, AIMessageChunk) and meta.get("langgraph_node") == "generate" and chunk.content:
            assert namespace and namespace[0].startswith("kb_agent:"), namespace
            tokens.append(str(chunk.content))
    return tokens


def test_sync_parent_invoke_and_stream(graph_kb: tuple[str, Path], llm: ScriptedLLMServer) -> None:
    parent, ctx = _parent(), _context(graph_kb, llm)
    _answers(llm)
    zh = _check(parent.invoke(_inputs(ZH_Q), _thread("sync"), context=ctx), ZH_A, "card.md")
    events = list(
        parent.stream(_inputs(EN_Q), _thread("sync"), context=ctx, stream_mode="messages", subgraphs=True)
    )
    tokens = _tokens(events)
    assert len(tokens) > 5, "the answer streams token by token out of a sync parent"
    assert "".join(tokens) == EN_A
    state = parent.get_state(_thread("sync")).values
    en = _check(state, EN_A, "wire.md")
    assert [m.content for m in state["messages"]] == [ZH_Q, zh, EN_Q, en], "both turns kept, in order"


def test_async_parent_without_blocking_calls(
    graph_kb: tuple[str, Path], llm: ScriptedLLMServer, no_blocking_calls: None
) -> None:
    parent, ctx = _parent(), _context(graph_kb, llm)
    _answers(llm)

    async def run() -> tuple[dict[str, Any], list[Any], dict[str, Any]]:
        first = await parent.ainvoke(_inputs(ZH_Q), _thread("async"), context=ctx)
        stream = parent.astream(
            _inputs(EN_Q), _thread("async"), context=ctx, stream_mode="messages", subgraphs=True
        )
        events = [event async for event in stream]
        return first, events, (await parent.aget_state(_thread("async"))).values

    first, events, state = asyncio.run(run())
    _check(first, ZH_A, "card.md")
    tokens = _tokens(events)
    assert len(tokens) > 5 and "".join(tokens) == EN_A
    _check(state, EN_A, "wire.md")


def test_sync_and_async_parents_give_the_same_answers(
    graph_kb: tuple[str, Path], llm: ScriptedLLMServer
) -> None:
    ctx = _context(graph_kb, llm)
    llm.llm.enqueue(Script(text=f"<think>推理</think>{ZH_A}", chunk_size=2))
    sync = _parent().invoke(_inputs(ZH_Q), _thread("a"), context=ctx)
    llm.llm.enqueue(Script(text=f"<think>推理</think>{ZH_A}", chunk_size=5))
    async_ = asyncio.run(_parent().ainvoke(_inputs(ZH_Q), _thread("b"), context=ctx))
    assert sync["messages"][-1].content == async_["messages"][-1].content
    _check(sync, ZH_A, "card.md")


@pytest.mark.parametrize("mode", ["sync", "async"])
def test_a_missing_knowledge_base_names_itself_and_how_to_make_it(
    graph_kb: tuple[str, Path], llm: ScriptedLLMServer, mode: str
) -> None:
    ctx = _context(graph_kb, llm, name="没有的库")
    parent = _parent()
    with pytest.raises(KnowledgeBaseNotFound) as caught:
        if mode == "sync":
            parent.invoke(_inputs(ZH_Q), _thread(mode), context=ctx)
        else:
            asyncio.run(parent.ainvoke(_inputs(ZH_Q), _thread(mode), context=ctx))
    message = str(caught.value)
    assert "no knowledge base named '没有的库'" in message
    assert "existing: graph" in message and "zhiwen ingest PATH --kb '没有的库'" in message
