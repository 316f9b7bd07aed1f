"""Chat models: the think-filtering wrapper (stream, invoke, inside a graph) and ReasoningChatOpenAI."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any, TypedDict

import pytest
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, AnyMessage, BaseMessage, HumanMessage
from langgraph.graph import START, StateGraph

from zhiwen.testing.scripted_llm import Script, ScriptedLLMServer
from zhiwen.tools.llm import ReasoningChatOpenAI, ThinkFilteringChatModel, make_chat_model, message_text
from zhiwen.tools.llm_server import LLMEndpoint

RAW = "<think>秘密 推理 secret plan</think>\n\nThe answer is 42 ."
SECRET_PARTS = ("秘密", "推理", "secret", "plan", "<think>", "</think>", "think>")


def _wrapper(*replies: str | AIMessage, expect_open: bool = False) -> ThinkFilteringChatModel:
    messages = [r if isinstance(r, AIMessage) else AIMessage(r) for r in replies]
    return ThinkFilteringChatModel(
        inner=GenericFakeChatModel(messages=iter(messages)), expect_open_in_prompt=expect_open
    )


def _split(chunks: list[BaseMessage]) -> tuple[str, str]:
    answer = "".join(message_text(c) for c in chunks)
    reasoning = "".join(str(c.additional_kwargs.get("reasoning_content", "")) for c in chunks)
    return answer, reasoning


def _assert_clean(chunks: list[BaseMessage]) -> None:
    for chunk in chunks:
        assert not any(part in message_text(chunk) for part in SECRET_PARTS), chunk


def test_stream_removes_think_and_keeps_reasoning_apart() -> None:
    chunks: list[BaseMessage] = list(_wrapper(RAW).stream("q"))
    assert len(chunks) > 3  # still streams word by word
    _assert_clean(chunks)
    assert _split(chunks) == ("The answer is 42 .", "秘密 推理 secret plan")


def test_astream_removes_think() -> None:
    async def collect() -> list[BaseMessage]:
        return [c async for c in _wrapper(RAW).astream("q")]

    chunks = asyncio.run(collect())
    _assert_clean(chunks)
    assert _split(chunks) == ("The answer is 42 .", "秘密 推理 secret plan")


def test_invoke_and_ainvoke_remove_think() -> None:
    for result in (_wrapper(RAW).invoke("q"), asyncio.run(_wrapper(RAW).ainvoke("q"))):
        assert result.content == "The answer is 42 ."
        assert result.additional_kwargs == {"reasoning_content": "秘密 推理 secret plan"}


def test_prompt_opened_think_block() -> None:
    raw = "秘密 推理 secret</think> 答案 是 42"
    model = _wrapper(raw, raw, expect_open=True)
    assert _split(list(model.stream("q"))) == ("答案 是 42", "秘密 推理 secret")
    assert model.invoke("q").content == "答案 是 42"


def test_text_without_think_passes_through_unchanged() -> None:
    text = "Use `<think>` tags in code:\n```\n<think>x</think>\n```"
    model = _wrapper(text, text)
    assert _split(list(model.stream("q"))) == (text, "")
    assert model.invoke("q").content == text


def test_server_separated_reasoning_is_kept() -> None:
    reply = AIMessage("The answer .", additional_kwargs={"reasoning_content": "server side reasoning"})
    model = _wrapper(reply, AIMessage("The answer .", additional_kwargs={"reasoning_content": "server"}))
    assert _split(list(model.stream("q"))) == ("The answer .", "server side reasoning")
    assert model.invoke("q").additional_kwargs == {"reasoning_content": "server"}


class _S(TypedDict):
    messages: list[AnyMessage]


def _graph_messages(model: Any) -> list[tuple[BaseMessage, dict[str, Any]]]:
    async def answer(state: _S) -> dict[str, Any]:
        return {"messages": [await model.ainvoke(state["messages"])]}

    graph = StateGraph(_S).add_node("answer", answer).add_edge(START, "answer").compile()

    async def collect() -> list[tuple[BaseMessage, dict[str, Any]]]:
        return [
            item async for item in graph.astream({"messages": [HumanMessage("q")]}, stream_mode="messages")
        ]

    return asyncio.run(collect())


def test_graph_message_stream_never_carries_think_text() -> None:
    """What Studio and a parent graph see (stream_mode="messages"): only the wrapper's filtered chunks."""
    items = _graph_messages(_wrapper(RAW))
    chunks = [c for c, _ in items if isinstance(c, AIMessageChunk)]
    assert len(chunks) > 3, "the node's model call should stream"
    _assert_clean([c for c, _ in items])
    assert _split(list(chunks)) == ("The answer is 42 .", "秘密 推理 secret plan")
    assert {meta["langgraph_node"] for _, meta in items} == {"answer"}


def test_graph_message_stream_of_a_raw_model_leaks() -> None:
    """The control for the test above: without the wrapper the raw think tokens do reach the stream."""
    items = _graph_messages(GenericFakeChatModel(messages=iter([AIMessage(RAW)])))
    assert any("secret" in message_text(c) for c, _ in items)


@pytest.fixture
def scripted() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


def test_reasoning_chat_openai_keeps_reasoning_content_from_a_stream(scripted: ScriptedLLMServer) -> None:
    scripted.llm.enqueue(
        Script(text="The answer is 42.", reasoning_content="server reasoning 秘密", chunk_size=2)
    )
    model = make_chat_model(LLMEndpoint(scripted.base_url, "scripted"), max_tokens=50, max_retries=0)
    assert isinstance(model, ReasoningChatOpenAI)
    chunks: list[BaseMessage] = list(model.stream("q"))
    assert _split(chunks) == ("The answer is 42.", "server reasoning 秘密")
    (request,) = scripted.llm.requests
    assert request["max_tokens"] == 50 and request["stream"] is True


def test_reasoning_chat_openai_keeps_reasoning_content_without_streaming(scripted: ScriptedLLMServer) -> None:
    scripted.llm.enqueue(Script(text="The answer is 42.", reasoning_content="server reasoning"))
    model = ReasoningChatOpenAI(base_url=scripted.base_url, api_key="x", model="scripted", max_retries=0)
    result = model.invoke("q")
    assert result.content == "The answer is 42."
    assert result.additional_kwargs["reasoning_content"] == "server reasoning"


def test_wrapper_over_a_scripted_reasoning_server(scripted: ScriptedLLMServer) -> None:
    scripted.llm.enqueue(
        Script(text="<think>秘密 secret</think>答案是42。", reasoning_content="served", chunk_size=1)
    )
    inner = make_chat_model(LLMEndpoint(scripted.base_url, "scripted"), max_tokens=50, max_retries=0)
    chunks: list[BaseMessage] = list(ThinkFilteringChatModel(inner=inner).stream("q"))
    _assert_clean(chunks)
    assert _split(chunks) == ("答案是42。", "served秘密 secret")
