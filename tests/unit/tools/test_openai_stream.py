"""The raw SSE chunk reader and the endpoint model's own think filtering (async fast path)."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator, Iterator

import httpx
import openai
import pytest
from langchain_core.messages import BaseMessage

from zhiwen.testing.scripted_llm import Script, ScriptedLLMServer
from zhiwen.tools.llm import make_chat_model, message_text
from zhiwen.tools.llm_server import LLMEndpoint
from zhiwen.tools.openai_stream import ChunkStallError, completion_chunks
from zhiwen.tools.think_tags import strip_think


class _Body(httpx.AsyncByteStream):
    """Response bytes in the given pieces, with an optional pause before one of them."""

    def __init__(self, pieces: list[bytes], pause_before: int = -1, pause: float = 0.0) -> None:
        self.pieces, self.pause_before, self.pause = pieces, pause_before, pause
        self.read_to_end = False

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for i, piece in enumerate(self.pieces):
            if i == self.pause_before:
                await asyncio.sleep(self.pause)
            yield piece
        self.read_to_end = True


def _response(body: bytes | list[bytes], **kw: float) -> httpx.Response:
    pieces = [body] if isinstance(body, bytes) else body
    request = httpx.Request("POST", "http://test/v1/chat/completions")
    return httpx.Response(200, stream=_Body(pieces, **kw), request=request)  # type: ignore[arg-type]


def _collect(response: httpx.Response, stall: float | None = None) -> list[dict[str, object]]:
    async def run() -> list[dict[str, object]]:
        return [c async for c in completion_chunks(response, stall)]

    return asyncio.run(run())


def test_reads_data_lines_and_stops_at_done() -> None:
    body = (
        b": keep-alive\n\n"
        b'data: {"choices":[{"delta":{"content":"a"}}]}\n\n'
        b"event: message\n"
        b'data:{"choices":[{"delta":{"content":"b"}}]}\n\n'
        b"data: [DONE]\n\n"
        b'data: {"choices":[{"delta":{"content":"after done"}}]}\n\n'
    )
    response = _response(body)
    chunks = _collect(response)
    assert [c["choices"][0]["delta"]["content"] for c in chunks] == ["a", "b"]  # type: ignore[index]
    # the body is read to its end, so the HTTP connection goes back to the pool
    assert response.stream.read_to_end  # type: ignore[attr-defined]


def test_an_event_split_across_reads_and_multi_line_data() -> None:
    raw = b'data: {"choices":\ndata: [{"delta":{"content":"x"}}]}\n\ndata: [DONE]\n\n'
    pieces = [raw[i : i + 5] for i in range(0, len(raw), 5)]
    chunks = _collect(_response(pieces))
    assert chunks == [{"choices": [{"delta": {"content": "x"}}]}]


def test_an_error_object_in_the_stream_raises_an_api_error() -> None:
    body = b'data: {"choices":[]}\n\ndata: {"error": {"message": "model crashed", "code": 500}}\n\n'
    with pytest.raises(openai.APIError, match="model crashed"):
        _collect(_response(body))


def test_a_stall_between_chunks_raises_after_the_bound() -> None:
    body = [b'data: {"choices":[]}\n\n', b": ping\n\n", b"data: [DONE]\n\n"]
    with pytest.raises(ChunkStallError, match=r"sent nothing for 0\.05 s"):
        _collect(_response(body, pause_before=1, pause=0.5), stall=0.05)
    # the same pause under a looser bound is fine
    assert len(_collect(_response(body, pause_before=1, pause=0.1), stall=5.0)) == 1


def test_a_slow_consumer_is_not_cancelled_by_the_stall_bound() -> None:
    async def run() -> int:
        n = 0
        async for _ in completion_chunks(_response(b'data: {"a":1}\n\ndata: {"a":2}\n\n'), 0.05):
            await asyncio.sleep(0.2)  # longer than the bound: the bound covers the endpoint only
            n += 1
        return n

    assert asyncio.run(run()) == 2


@pytest.fixture
def scripted() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


def _astream(model_kw: dict[str, bool], server: ScriptedLLMServer) -> list[BaseMessage]:
    model = make_chat_model(LLMEndpoint(server.base_url, "scripted"), 50, max_retries=0, **model_kw)

    async def run() -> list[BaseMessage]:
        return [c async for c in model.astream("q")]

    return asyncio.run(run())


def test_endpoint_model_filters_think_in_its_own_stream_at_any_chunking(scripted: ScriptedLLMServer) -> None:
    rng = random.Random(7)
    text = "<think>秘密 secret plan</think>\n答案是 42 [1]。"
    for _ in range(8):
        cuts = sorted(rng.sample(range(1, len(text)), 6))
        chunks = [text[a:b] for a, b in zip([0, *cuts], [*cuts, len(text)], strict=True)]
        scripted.llm.enqueue(Script(text=text, chunks=chunks, reasoning_content="served"))
        out = _astream({"filter_think": True}, scripted)
        answer = "".join(message_text(c) for c in out)
        reasoning = "".join(str(c.additional_kwargs.get("reasoning_content", "")) for c in out)
        assert answer == strip_think(text).answer == "答案是 42 [1]。"
        assert "secret" not in answer and "think>" not in answer
        assert reasoning == "served秘密 secret plan"
        assert any(c.usage_metadata for c in out if hasattr(c, "usage_metadata")), "usage is kept"


def test_endpoint_model_without_filter_streams_raw_text(scripted: ScriptedLLMServer) -> None:
    scripted.llm.enqueue(Script(text="<think>plan</think>answer", chunk_size=4))
    out = _astream({}, scripted)
    assert "".join(message_text(c) for c in out) == "<think>plan</think>answer"


def test_endpoint_model_raises_on_an_error_status(scripted: ScriptedLLMServer) -> None:
    scripted.llm.enqueue(Script(text="one two three four", chunk_size=2, status=503))
    with pytest.raises(openai.APIStatusError):
        _astream({"filter_think": True}, scripted)
