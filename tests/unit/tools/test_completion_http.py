"""The aiohttp request path of streamed answers: the body sent, retries, errors, connection reuse, cleanup."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator

import openai
import pytest

from zhiwen.testing.scripted_llm import Script, ScriptedLLMServer
from zhiwen.tools.completion_http import CompletionStream
from zhiwen.tools.llm import make_chat_model, message_text
from zhiwen.tools.llm_server import LLMEndpoint
from zhiwen.tools.openai_stream import completion_chunks


@pytest.fixture
def scripted() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


def _answer(server: ScriptedLLMServer, turns: int = 1, max_retries: int = 2) -> list[str]:
    model = make_chat_model(LLMEndpoint(server.base_url, "scripted", "k"), 50, max_retries=max_retries)

    async def run() -> list[str]:
        return ["".join([message_text(c) async for c in model.astream("q")]) for _ in range(turns)]

    return asyncio.run(run())


def test_the_body_is_what_the_sdk_would_send(scripted: ScriptedLLMServer) -> None:
    scripted.llm.enqueue(Script(text="fine, thanks"))
    assert _answer(scripted) == ["fine, thanks"]
    (body,) = scripted.llm.requests
    assert body["max_tokens"] == body["max_completion_tokens"] == 50  # extra_body merged in
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["messages"] == [{"role": "user", "content": "q"}]
    assert "extra_body" not in body


def test_turns_in_one_loop_reuse_one_connection(scripted: ScriptedLLMServer) -> None:
    scripted.llm.enqueue(*(Script(text=f"answer {i}", chunk_size=2) for i in range(3)))
    assert _answer(scripted, turns=3) == ["answer 0", "answer 1", "answer 2"]
    assert len(set(scripted.llm.peers)) == 1, scripted.llm.peers  # each body was read to its end


def test_retry_after_is_honoured_then_the_answer_streams(scripted: ScriptedLLMServer) -> None:
    scripted.llm.enqueue(Script(text="after the wait", fail_times=1, retry_after=1))
    started = time.monotonic()
    assert _answer(scripted) == ["after the wait"]
    assert time.monotonic() - started >= 1.0
    assert len(scripted.llm.requests) == 2


def test_a_client_error_is_not_retried_and_names_the_status(scripted: ScriptedLLMServer) -> None:
    scripted.llm.enqueue(Script(text="never", status=400))
    with pytest.raises(openai.APIStatusError, match=r"Error code: 400 - .*scripted error 400") as caught:
        _answer(scripted)
    assert caught.value.status_code == 400
    assert len(scripted.llm.requests) == 1


def test_5xx_is_retried_max_retries_times(scripted: ScriptedLLMServer) -> None:
    scripted.llm.default = Script(text="never", status=502)
    with pytest.raises(openai.APIStatusError, match="Error code: 502"):
        _answer(scripted, max_retries=1)
    assert len(scripted.llm.requests) == 2


def test_a_refused_connection_is_an_api_connection_error() -> None:
    stream = CompletionStream("http://127.0.0.1:9/v1", {}, timeout=2, max_retries=0)

    async def run() -> None:
        async with stream.stream({"model": "m", "messages": [], "stream": True}):
            pass

    with pytest.raises(openai.APIConnectionError, match="Connection error"):
        asyncio.run(run())


def test_the_session_is_closed_when_its_loop_ends(scripted: ScriptedLLMServer) -> None:
    stream = CompletionStream(scripted.base_url, {}, timeout=5, max_retries=0)
    body = {"model": "m", "messages": [{"role": "user", "content": "q"}], "stream": True}

    async def run() -> int:
        async with stream.stream(body) as response:
            return len([c async for c in completion_chunks(response, 5)])

    assert asyncio.run(run()) > 0
    first = stream._session
    assert first is not None and first.closed  # closed by the loop's shutdown, not left to the GC
    assert asyncio.run(run()) > 0  # a new loop gets a new session
    assert stream._session is not first and stream._session is not None and stream._session.closed


def test_backoff_follows_the_sdk_schedule() -> None:
    """0.5 s doubling to 8 s, less at most a quarter: never an instant retry (the SDK's own schedule)."""
    from tenacity import RetryCallState

    from zhiwen.tools.completion_http import _wait

    for attempt, base in ((1, 0.5), (2, 1.0), (3, 2.0), (6, 8.0), (9, 8.0)):
        state = RetryCallState(None, None, (), {})
        state.attempt_number = attempt
        waits = [_wait(state) for _ in range(200)]
        assert all(0.75 * base <= w <= base for w in waits), (attempt, min(waits), max(waits))


def test_a_stream_that_stalls_after_it_began_is_a_timeout(scripted: ScriptedLLMServer) -> None:
    """vLLM under load sends its headers, then nothing: that was reported as a broken connection (metrics
    kind "connection"), which sent operators to the network instead of the model."""
    scripted.llm.enqueue(Script(text="late words", first_token_delay=3))
    model = make_chat_model(LLMEndpoint(scripted.base_url, "scripted", "k"), 50, timeout=1, max_retries=2)

    async def run() -> str:
        return "".join([message_text(c) async for c in model.astream("q")])

    with pytest.raises(openai.APITimeoutError):
        asyncio.run(run())
    assert len(scripted.llm.requests) == 1, "a stream that began is not asked again"
