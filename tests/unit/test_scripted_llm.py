"""Tests for the scripted OpenAI-compatible chat server used by integration tests and benchmarks."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import openai
import pytest

from zhiwen.testing.scripted_llm import Script, ScriptedLLM, ScriptedLLMServer

THINK_TEXT = "<think>用户问候。Let me think.</think>你好！Hello there."


@pytest.fixture
def server() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as srv:
        yield srv


def _client(srv: ScriptedLLMServer) -> openai.OpenAI:
    return openai.OpenAI(base_url=srv.base_url, api_key="x", max_retries=0, timeout=10)


def _wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(0.02)
    return cond()


def _ask(client: openai.OpenAI) -> str:
    resp = client.chat.completions.create(model="scripted", messages=[{"role": "user", "content": "hi"}])
    return resp.choices[0].message.content or ""


def _raw_sse(srv: ScriptedLLMServer, body: dict[str, Any]) -> list[str]:
    """POST a streaming request and return the ``data:`` payloads in order."""
    with httpx.stream("POST", f"{srv.base_url}/chat/completions", json=body, timeout=10) as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        return [line[len("data: ") :] for line in resp.iter_lines() if line.startswith("data: ")]


def test_script_default_chunking_splits_across_tags() -> None:
    assert Script(text="<think>ab</think>c").content_chunks() == ["<th", "ink", ">ab", "</t", "hin", "k>c"]
    assert Script(text="abcd", chunk_size=2).content_chunks() == ["ab", "cd"]
    assert Script(text="ab", chunks=["a", "b"]).content_chunks() == ["a", "b"]
    with pytest.raises(ValueError):
        Script(text="abc", chunks=["a", "b"])


def test_stream_reassembles_text_with_scripted_boundaries(server: ScriptedLLMServer) -> None:
    script = Script(text=THINK_TEXT)
    server.llm.enqueue(script)
    stream = _client(server).chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    chunks = list(stream)
    assert chunks[0].choices[0].delta.role == "assistant"
    deltas = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert deltas == script.content_chunks()
    assert "".join(deltas) == THINK_TEXT
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_explicit_chunks_and_only_closing_think_tag(server: ScriptedLLMServer) -> None:
    pieces = ["reasoning</", "think", ">\n\n", "Answer", "."]
    server.llm.enqueue(Script(text="".join(pieces), chunks=pieces))
    stream = _client(server).chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "q"}], stream=True
    )
    deltas = [c.choices[0].delta.content for c in stream if c.choices and c.choices[0].delta.content]
    assert deltas == pieces


def test_raw_sse_framing_done_and_usage(server: ScriptedLLMServer) -> None:
    server.llm.enqueue(Script(text="abcdefg"))
    body = {
        "model": "scripted",
        "messages": [{"role": "user", "content": "x" * 40}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    frames = _raw_sse(server, body)
    assert frames[-1] == "[DONE]"
    parsed = [json.loads(f) for f in frames[:-1]]
    assert all(p["object"] == "chat.completion.chunk" for p in parsed)
    assert parsed[0]["choices"][0]["delta"]["role"] == "assistant"
    assert [p["choices"][0]["delta"]["content"] for p in parsed[1:4]] == ["abc", "def", "g"]
    assert parsed[-2]["choices"][0]["finish_reason"] == "stop"
    usage = parsed[-1]["usage"]
    assert parsed[-1]["choices"] == []
    assert usage["completion_tokens"] == 3
    assert usage["prompt_tokens"] == 10
    assert usage["total_tokens"] == 13


def test_non_stream(server: ScriptedLLMServer) -> None:
    server.llm.enqueue(Script(text=THINK_TEXT))
    resp = _client(server).chat.completions.create(
        model="scripted", messages=[{"role": "user", "content": "hi"}]
    )
    assert resp.object == "chat.completion"
    assert resp.choices[0].message.content == THINK_TEXT
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.completion_tokens == len(Script(text=THINK_TEXT).content_chunks())


def test_status_500_raises_internal_server_error(server: ScriptedLLMServer) -> None:
    server.llm.enqueue(Script(text="never", status=500))
    with pytest.raises(openai.InternalServerError):
        _client(server).chat.completions.create(
            model="scripted", messages=[{"role": "user", "content": "hi"}], stream=True
        )
    # The failing script was consumed; the next request falls back to the default.
    assert _ask(_client(server)) == server.llm.default.text


def test_fail_times_then_success(server: ScriptedLLMServer) -> None:
    server.llm.enqueue(Script(text="recovered", fail_times=1))
    client = _client(server)
    messages: list[Any] = [{"role": "user", "content": "hi"}]
    with pytest.raises(openai.APIStatusError) as info:
        client.chat.completions.create(model="scripted", messages=messages)
    assert info.value.status_code == 503
    resp = client.chat.completions.create(model="scripted", messages=messages)
    assert resp.choices[0].message.content == "recovered"
    # With the client's own retries the transient failure is invisible.
    server.llm.enqueue(Script(text="again", fail_times=1))
    retrying = openai.OpenAI(base_url=server.base_url, api_key="x", max_retries=2, timeout=10)
    assert _ask(retrying) == "again"
    assert len(server.llm.requests) == 4


def test_cut_after_ends_without_done(server: ScriptedLLMServer) -> None:
    server.llm.enqueue(Script(text="abcdefghijkl", cut_after=2))
    frames = _raw_sse(server, {"model": "scripted", "messages": [], "stream": True})
    assert "[DONE]" not in frames
    parsed = [json.loads(f) for f in frames]
    assert "".join(p["choices"][0]["delta"].get("content") or "" for p in parsed) == "abcdef"
    assert all(p["choices"][0]["finish_reason"] is None for p in parsed)
    assert server.llm.cancelled == 0


def test_reasoning_content_delta(server: ScriptedLLMServer) -> None:
    server.llm.enqueue(Script(text="Answer.", reasoning_content="I should greet."))
    frames = _raw_sse(server, {"model": "scripted", "messages": [], "stream": True})
    deltas = [json.loads(f)["choices"][0]["delta"] for f in frames[:-1]]
    reasoning = "".join(d.get("reasoning_content") or "" for d in deltas)
    content = "".join(d.get("content") or "" for d in deltas)
    assert reasoning == "I should greet."
    assert content == "Answer."
    first_content = next(i for i, d in enumerate(deltas) if d.get("content"))
    assert all("reasoning_content" not in d for d in deltas[first_content:])

    server.llm.enqueue(Script(text="Answer.", reasoning_content="I should greet."))
    stream = _client(server).chat.completions.create(model="scripted", messages=[], stream=True)
    extra = [getattr(c.choices[0].delta, "reasoning_content", None) for c in stream if c.choices]
    assert "".join(r for r in extra if r) == "I should greet."


def test_client_disconnect_counts_cancelled(server: ScriptedLLMServer) -> None:
    server.llm.enqueue(Script(text="x" * 300, token_delay=0.05))
    body = {"model": "scripted", "messages": [], "stream": True}
    got: list[str] = []
    with (
        httpx.Client(timeout=10) as client,
        client.stream("POST", f"{server.base_url}/chat/completions", json=body) as resp,
    ):
        for line in resp.iter_lines():
            if line.startswith("data: "):
                got.append(line)
            if len(got) >= 3:
                break
    assert len(got) == 3
    assert _wait_for(lambda: server.llm.cancelled == 1)
    # A stream that runs to completion is not counted.
    server.llm.enqueue(Script(text="short"))
    _raw_sse(server, body)
    assert server.llm.cancelled == 1


def test_requests_recorded_with_max_tokens(server: ScriptedLLMServer) -> None:
    messages: list[Any] = [
        {"role": "system", "content": "sys"},
        {"role": "assistant", "content": "previous answer"},
        {"role": "user", "content": "hi"},
    ]
    _client(server).chat.completions.create(model="scripted", messages=messages, max_tokens=17, stream=True)
    assert len(server.llm.requests) == 1
    req = server.llm.requests[0]
    assert req["max_tokens"] == 17
    assert req["stream"] is True
    assert req["messages"] == messages


def test_queue_order_default_and_first_token_delay(server: ScriptedLLMServer) -> None:
    server.llm.default = Script(text="fallback")
    server.llm.enqueue(Script(text="one"), Script(text="two", first_token_delay=0.2))
    client = _client(server)
    assert _ask(client) == "one"
    start = time.monotonic()
    assert _ask(client) == "two"
    assert time.monotonic() - start >= 0.2
    assert server.llm.pending == 0
    assert _ask(client) == "fallback"


def test_models_and_health(server: ScriptedLLMServer) -> None:
    assert [m.id for m in _client(server).models.list()] == ["scripted"]
    assert httpx.get(server.base_url.removesuffix("/v1") + "/health").json() == {"status": "ok"}


def test_langchain_chat_openai_streams_text(server: ScriptedLLMServer) -> None:
    from langchain_openai import ChatOpenAI

    server.llm.enqueue(Script(text=THINK_TEXT, chunk_size=2))
    llm = ChatOpenAI(base_url=server.base_url, api_key="x", model="scripted", streaming=True, max_retries=0)
    pieces = [chunk.content for chunk in llm.stream("hi")]
    assert "".join(str(p) for p in pieces) == THINK_TEXT


def test_server_shuts_down_cleanly_even_mid_stream() -> None:
    llm = ScriptedLLM()
    srv = ScriptedLLMServer(llm).start()
    port = srv.port
    assert srv.llm is llm
    assert httpx.get(f"{srv.base_url}/models").status_code == 200
    llm.enqueue(Script(text="y" * 600, token_delay=0.05))
    body = {"model": "scripted", "messages": [], "stream": True}
    with httpx.stream("POST", f"{srv.base_url}/chat/completions", json=body, timeout=10) as resp:
        assert resp.status_code == 200
        next(resp.iter_lines())
        start = time.monotonic()
        srv.stop()  # the stream is still running: shutdown must not wait for it to finish
        assert time.monotonic() - start < 4
    srv.stop()  # idempotent
    assert not any(t.name == f"scripted-llm-{port}" for t in threading.enumerate())
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=2)


def test_cli_serves_default_script() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "zhiwen.testing.scripted_llm",
            "--port",
            str(port),
            "--text",
            "cli text",
            "--token-delay",
            "0.001",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        assert _wait_for(lambda: _healthy(base), timeout=15), f"CLI server did not start (rc={proc.poll()})"
        client = openai.OpenAI(base_url=f"{base}/v1", api_key="x", max_retries=0, timeout=10)
        stream = client.chat.completions.create(model="scripted", messages=[], stream=True)
        text = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
        assert text == "cli text"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _healthy(base: str) -> bool:
    try:
        return httpx.get(f"{base}/health", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False
