"""The turn graph over real HTTP against a scripted OpenAI-compatible reasoning model.

Think text must never reach the answer, a message-stream chunk, a ``stream_turn`` token, the checkpointed
thread, or the history sent back to the model on the next turn, however the tags are split into chunks.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessageChunk, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from zhiwen.errors import LLMUnavailable
from zhiwen.graph.builder import build
from zhiwen.graph.context import Context
from zhiwen.memory.checkpointer import open_checkpointer
from zhiwen.testing.scripted_llm import Script, ScriptedLLMServer
from zhiwen.turns import TurnEvent, stream_turn

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60), pytest.mark.usefixtures("no_blocking_calls")]

SECRET = "秘密推理 secret"
LEAK_MARKERS = ("秘密", "secret", "<think>", "</think>", "think>")
Q1, A1 = "金卡信用卡的年费是多少？", "金卡信用卡的年费为每年三百元人民币。"
Q2, CONDENSED, A2 = "它首年免年费吗？", "金卡信用卡首年免年费吗？", "金卡信用卡首年免收年费。"


def _think(answer: str, r1: bool) -> str:
    """A reasoning model's raw output; DeepSeek-R1 templates open <think> in the prompt (bare </think>)."""
    return f"{SECRET}</think>{answer}" if r1 else f"<think>{SECRET}</think>{answer}"


def _clean(text: str) -> bool:
    return not any(marker in text for marker in LEAK_MARKERS)


@pytest.fixture
def server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as srv:
        yield srv


def _ctx(kb: tuple[str, Path], server: ScriptedLLMServer, **kw: Any) -> Context:
    return Context(kb=kb[0], base_url=server.base_url, model="scripted", request_timeout=10, **kw)


async def _turn_events(g: Any, question: str, ctx: Context, thread: str) -> list[TurnEvent]:
    return [e async for e in stream_turn(g, question, ctx, thread)]


@pytest.mark.parametrize(
    ("chunk_size", "r1"),
    [(1, False), (2, False), (3, False), (7, False), (1, True), (3, True), (7, True)],
    ids=["1", "2", "3", "7", "r1-1", "r1-3", "r1-7"],
)
def test_think_text_never_leaks(
    graph_kb: tuple[str, Path], server: ScriptedLLMServer, chunk_size: int, r1: bool
) -> None:
    ctx = _ctx(graph_kb, server, expect_think_open_in_prompt=r1)
    g = build().compile(checkpointer=InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "t"}}
    server.llm.enqueue(
        Script(text=_think(A1, r1), chunk_size=chunk_size),  # turn 1: the answer
        Script(text=_think(CONDENSED, r1), chunk_size=chunk_size),  # turn 2: condensing the follow-up
        Script(text=_think(A2, r1), chunk_size=chunk_size),  # turn 2: the answer
    )

    async def run() -> tuple[list[tuple[Any, dict[str, Any]]], dict[str, Any], list[TurnEvent], Any]:
        chunks, final = [], {}
        stream = g.astream(
            {"messages": [HumanMessage(Q1)]}, config, context=ctx, stream_mode=["messages", "values"]
        )
        async for mode, data in stream:
            if mode == "messages":
                chunks.append(data)
            else:
                final = data
        events = await _turn_events(g, Q2, ctx, "t")
        return chunks, final, events, await g.aget_state(config)

    chunks, first, events, saved = asyncio.run(run())

    # turn 1, LangGraph's message stream (what Studio and a parent graph see) and the final state
    assert chunks and all(_clean(str(chunk.content)) for chunk, _ in chunks)
    answer_tokens = "".join(
        str(c.content)
        for c, meta in chunks
        if meta["langgraph_node"] == "generate" and isinstance(c, AIMessageChunk)
    )
    assert answer_tokens == A1
    assert first["answer"] == "金卡信用卡的年费为每年三百元人民币[1]。"
    assert first["reasoning"] == SECRET
    assert first["quality"]["verdict"] == "pass" and first["quality"]["think_leak"] is False

    # turn 2 through stream_turn: a condensed follow-up
    assert "".join(e.text for e in events if e.kind == "token") == A2
    assert "".join(e.text for e in events if e.kind == "reasoning") == SECRET
    final = events[-1].state
    assert final["intent"]["method"] == "llm" and final["intent"]["query"] == CONDENSED
    assert _clean(final["answer"]) and final["answer"].startswith("金卡信用卡首年免收年费")

    # the checkpointed thread and the history that went back to the model
    assert [type(m).__name__ for m in saved.values["messages"]] == ["HumanMessage", "AIMessage"] * 2
    assert all(_clean(str(m.content)) for m in saved.values["messages"])
    assert len(server.llm.requests) == 3
    for body in server.llm.requests[1:]:
        sent = json.dumps(body["messages"], ensure_ascii=False)
        assert _clean(sent), sent
        assert "金卡信用卡的年费为每年三百元人民币" in sent  # the previous answer did go back, clean
    generate_request = server.llm.requests[2]["messages"]
    assert [m["role"] for m in generate_request] == ["system", "user", "assistant", "user"]


def test_server_reasoning_content_becomes_output_reasoning(
    graph_kb: tuple[str, Path], server: ScriptedLLMServer
) -> None:
    server.llm.enqueue(Script(text=A1, reasoning_content="服务器推理 server-side", chunk_size=2))
    events = asyncio.run(
        _turn_events(build().compile(checkpointer=InMemorySaver()), Q1, _ctx(graph_kb, server), "r")
    )
    assert "".join(e.text for e in events if e.kind == "reasoning") == "服务器推理 server-side"
    assert "".join(e.text for e in events if e.kind == "token") == A1
    final = events[-1].state
    assert final["reasoning"] == "服务器推理 server-side"
    assert "服务器推理" not in final["answer"]


def test_quality_gate_retry_is_announced(graph_kb: tuple[str, Path], server: ScriptedLLMServer) -> None:
    server.llm.enqueue(Script(text="火星上的银行营业时间为每天早上八点。"), Script(text=A1))
    events = asyncio.run(
        _turn_events(build().compile(checkpointer=InMemorySaver()), Q1, _ctx(graph_kb, server), "q")
    )
    kinds = [e.kind for e in events]
    assert kinds.count("retry") == 1 and kinds[-1] == "final"
    after_retry = "".join(e.text for e in events[kinds.index("retry") :] if e.kind == "token")
    assert after_retry == A1
    assert events[-1].state["quality"]["verdict"] == "pass"
    assert events[-1].state["quality"]["attempts"] == 2


def test_server_error_raises_llm_unavailable(graph_kb: tuple[str, Path]) -> None:
    with ScriptedLLMServer() as srv:
        srv.llm.default = Script(text="unused", status=500)
        g = build().compile(checkpointer=InMemorySaver())
        start = time.monotonic()
        with pytest.raises(LLMUnavailable, match=r"^the chat model endpoint failed: HTTP 500\b") as info:
            asyncio.run(_turn_events(g, "你好", _ctx(graph_kb, srv), "e"))
        assert "Error code: 500" in info.value.detail, "the upstream's words, for the log and the CLI"
        assert time.monotonic() - start < 20
        assert len(srv.llm.requests) == 3  # the OpenAI client retried twice before giving up


def test_transient_error_is_retried_by_the_client(
    graph_kb: tuple[str, Path], server: ScriptedLLMServer
) -> None:
    server.llm.enqueue(Script(text="你好！我是知问。", fail_times=1))
    events = asyncio.run(
        _turn_events(build().compile(checkpointer=InMemorySaver()), "你好", _ctx(graph_kb, server), "x")
    )
    assert events[-1].state["answer"] == "你好！我是知问。"
    assert len(server.llm.requests) == 2


def test_stream_cut_mid_answer_completes_with_what_arrived(
    graph_kb: tuple[str, Path], server: ScriptedLLMServer
) -> None:
    """A stream that stops without finish_reason or [DONE] is not an error; with the gate off the partial
    answer stands, marked truncated (with the gate on it is not passed: tests/integration/server/test_faults.py)."""
    raw = f"<think>{SECRET}</think>{A1}首年免收年费。"
    think_len = len(f"<think>{SECRET}</think>")
    server.llm.enqueue(Script(text=raw, chunk_size=3, cut_after=12))
    arrived = raw[: 12 * 3][think_len:]
    assert 0 < len(arrived) < len(A1)
    ctx = _ctx(graph_kb, server, quality_gate=False)
    start = time.monotonic()
    events = asyncio.run(_turn_events(build().compile(checkpointer=InMemorySaver()), Q1, ctx, "c"))
    assert time.monotonic() - start < 20
    assert "".join(e.text for e in events if e.kind == "token") == arrived
    final = events[-1].state
    assert final["answer"].startswith(arrived) and _clean(final["answer"])
    assert final["quality"]["verdict"] == "unchecked"  # never a retry: the gate is off
    assert final["quality"]["truncated"] is True
    assert len(server.llm.requests) == 1


def test_consecutive_event_loops_reuse_no_dead_connections(
    graph_kb: tuple[str, Path], server: ScriptedLLMServer
) -> None:
    """Regression: the second ``asyncio.run`` against the same endpoint failed with "Event loop is closed"
    (langchain-openai shares one async HTTP client per URL, bound to the first loop)."""
    g = build().compile(checkpointer=InMemorySaver())
    server.llm.default = Script(text="你好！我是知问。")
    for i in range(3):
        events = asyncio.run(_turn_events(g, "你好", _ctx(graph_kb, server), f"loop-{i}"))
        assert events[-1].state["answer"] == "你好！我是知问。"
    assert len(server.llm.requests) == 3


def test_threads_survive_a_restart(
    graph_kb: tuple[str, Path], server: ScriptedLLMServer, tmp_path: Path
) -> None:
    db = tmp_path / "threads.sqlite"
    ctx = _ctx(graph_kb, server)
    config: RunnableConfig = {"configurable": {"thread_id": "persist"}}
    answer = "金卡信用卡的年费为每年三百元人民币。"
    server.llm.enqueue(Script(text="<think>秘密 secret</think>你好！我是知问。"), Script(text=answer))

    async def first() -> None:
        async with open_checkpointer(db) as saver:
            out = (
                await build()
                .compile(checkpointer=saver)
                .ainvoke({"messages": [HumanMessage("你好")]}, config, context=ctx)
            )
            assert out["answer"] == "你好！我是知问。"

    async def after_restart() -> tuple[list[str], dict[str, Any]]:
        async with open_checkpointer(db) as saver:
            g = build().compile(checkpointer=saver)
            before = [str(m.content) for m in (await g.aget_state(config)).values["messages"]]
            return before, await g.ainvoke(
                {"messages": [HumanMessage("金卡的年费是多少？")]}, config, context=ctx
            )

    asyncio.run(first())  # each asyncio.run is a fresh event loop, like a restarted process
    assert db.exists()
    before, out = asyncio.run(after_restart())
    assert before == ["你好", "你好！我是知问。"]
    assert out["answer"].startswith("金卡信用卡的年费为每年三百元人民币")
    assert [str(m.content) for m in out["messages"]][:3] == ["你好", "你好！我是知问。", "金卡的年费是多少？"]
    # The knowledge question is asked with the turns kept from before the restart, without their think text.
    sent = server.llm.requests[-1]["messages"]
    assert sent[1:3] == [
        {"role": "user", "content": "你好"},
        {"role": "assistant", "content": "你好！我是知问。"},
    ]
    assert "金卡的年费是多少？" in sent[3]["content"]
