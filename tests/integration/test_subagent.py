"""examples/subagent.py: zhiwen embedded in a parent graph (shared key, wrapper, streaming, checkpointer)."""

from __future__ import annotations

import asyncio
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fakes import HashEmbedder
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from zhiwen import service
from zhiwen.graph.context import Context
from zhiwen.memory import registry
from zhiwen.nodes._common import set_model_override
from zhiwen.tools.bank_policy import without_fixed_texts

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples"))
from subagent import Token, build_shared, build_wrapper, stream_tokens

KB = "tiny"
WIRE = "International wire transfers take three business days. The fee for a wire transfer is 15 dollars."
FEE_Q = "What is the fee for a wire transfer?"
FEE_A = "The fee for a wire transfer is 15 dollars."
DAYS_Q = "How long do international wire transfers take?"
DAYS_A = "International wire transfers take three business days."
CTX = Context(kb=KB)


@pytest.fixture
def kb(zhiwen_home: Path, fake_embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A one-document knowledge base embedded with the fast fake embedder."""
    monkeypatch.setattr(registry, "make_embedder", lambda settings: fake_embedder)
    monkeypatch.setattr(registry, "_embedders", {})
    docs = zhiwen_home / "docs"
    docs.mkdir()
    (docs / "wire.txt").write_text(WIRE, encoding="utf-8")
    assert service.ingest(KB, [docs]).added == 1
    yield KB
    registry.close_all()


def use_answers(*texts: str) -> None:
    """The chat model answers ``texts`` in turn, streaming word by word, each as a fresh message."""
    set_model_override(GenericFakeChatModel(messages=(AIMessage(t) for t in texts)))


@pytest.fixture(autouse=True)
def _reset_model() -> Iterator[None]:
    yield
    set_model_override(None)


def thread(name: str) -> RunnableConfig:
    return {"configurable": {"thread_id": name}}


def without_citations(text: str) -> str:
    """The model's answer as written: no attributed [n], no bank reminder (test_bank_policy_turns checks it)."""
    return re.sub(r"\s*\[\d{1,3}\]", "", without_fixed_texts(text))


def test_shared_messages_key_gets_the_answer(kb: str) -> None:
    use_answers(FEE_A)
    out = asyncio.run(build_shared().ainvoke({"messages": [HumanMessage(FEE_Q)]}, context=CTX))
    first, last = out["messages"]
    assert isinstance(first, HumanMessage) and first.content == FEE_Q
    assert isinstance(last, AIMessage)
    assert without_citations(str(last.content)) == FEE_A
    assert "[1]" in str(last.content), "evaluate attaches citations by attribution"


def test_wrapper_maps_answer_and_sources(kb: str) -> None:
    use_answers(FEE_A)
    out = asyncio.run(build_wrapper(CTX).ainvoke({"ticket": FEE_Q}))
    assert set(out) == {"ticket", "kb_answer", "kb_sources"}, "no zhiwen keys leak into the parent"
    assert without_citations(out["kb_answer"]) == FEE_A
    assert [s["n"] for s in out["kb_sources"]] == [1]
    assert out["kb_sources"][0]["source"].endswith("wire.txt")
    assert "15 dollars" in out["kb_sources"][0]["text"]


async def collect(parent: Any, inputs: dict[str, Any]) -> list[tuple[tuple[str, ...], Any, dict[str, Any]]]:
    events = []
    stream = parent.astream(inputs, thread("s"), context=CTX, stream_mode="messages", subgraphs=True)
    async for namespace, (chunk, meta) in stream:
        events.append((namespace, chunk, meta))
    return events


@pytest.mark.parametrize(
    ("kind", "node"), [("shared", "zhiwen"), ("wrapper", "ask_kb")], ids=["shared", "wrapper"]
)
def test_subgraph_tokens_stream_without_think(kb: str, kind: str, node: str) -> None:
    use_answers(f"<think>x</think>{FEE_A}")
    saver = InMemorySaver()
    parent = build_shared(saver) if kind == "shared" else build_wrapper(CTX, saver)
    inputs: dict[str, Any] = {"messages": [HumanMessage(FEE_Q)]} if kind == "shared" else {"ticket": FEE_Q}
    events = asyncio.run(collect(parent, inputs))

    tokens = [
        (ns, c, m)
        for ns, c, m in events
        if isinstance(c, AIMessageChunk) and m["langgraph_node"] == "generate"
    ]
    assert len([c for _, c, _ in tokens if c.content]) > 3, "the answer streams token by token"
    assert all(ns and ns[0].startswith(f"{node}:") for ns, _, _ in tokens), "namespace names the subgraph"
    streamed = "".join(str(c.content) for _, c, _ in tokens)
    assert streamed == FEE_A
    for _, chunk, _ in events:
        assert "<think>" not in str(chunk.content) and "</think>" not in str(chunk.content)
    values = asyncio.run(parent.aget_state(thread("s"))).values
    answer = values["messages"][-1].content if kind == "shared" else values["kb_answer"]
    assert answer != streamed and without_citations(str(answer)) == streamed

    # the same through the example's helper
    use_answers(f"<think>x</think>{FEE_A}")
    parent = build_shared() if kind == "shared" else build_wrapper(CTX)

    async def helper() -> list[Token]:
        return [item async for item in stream_tokens(parent, inputs, thread("h"), CTX)]

    pieces = asyncio.run(helper())
    assert "".join(t.text for t in pieces) == FEE_A
    assert all(t.namespace[0].startswith(f"{node}:") for t in pieces)
    assert len({t.step for t in pieces}) == 1, "one attempt: the answer passed the quality gate"


class PromptRecorder(BaseCallbackHandler):
    """Keeps the messages of every chat model call."""

    def __init__(self) -> None:
        self.prompts: list[list[BaseMessage]] = []

    def on_chat_model_start(self, serialized: Any, messages: list[list[BaseMessage]], **kwargs: Any) -> None:
        self.prompts.extend(messages)


def test_parent_checkpointer_keeps_the_conversation(kb: str) -> None:
    use_answers(FEE_A, DAYS_A)
    parent = build_shared(InMemorySaver())
    recorder = PromptRecorder()

    async def two_turns() -> list[Any]:
        await parent.ainvoke({"messages": [HumanMessage(FEE_Q)]}, thread("t"), context=CTX)
        config = thread("t") | {"callbacks": [recorder]}
        await parent.ainvoke({"messages": [HumanMessage(DAYS_Q)]}, config, context=CTX)
        other = await parent.aget_state(thread("other"))
        assert not other.values, "another thread starts empty"
        return list((await parent.aget_state(thread("t"))).values["messages"])

    messages = asyncio.run(two_turns())
    assert [type(m) for m in messages] == [HumanMessage, AIMessage, HumanMessage, AIMessage]
    assert [without_citations(str(m.content)) for m in messages] == [FEE_Q, FEE_A, DAYS_Q, DAYS_A]
    assert len({m.id for m in messages}) == 4, "each turn's messages were appended, none overwritten"
    history = [without_citations(str(m.content)) for m in recorder.prompts[-1][1:3]]
    assert history == [FEE_Q, FEE_A], "the second turn's prompt carries the first turn from the checkpoint"
