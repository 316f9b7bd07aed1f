"""Upstream failures: refused connections, 5xx, transient 503, a cut stream; threads survive a failed turn."""

from __future__ import annotations

import json
import socket
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from zhiwen.settings import get_settings

if TYPE_CHECKING:
    from conftest import Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]


@pytest.fixture
def upstream_down(llm: ScriptedLLM, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point the server's model endpoint at a port nobody listens on."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/v1"
    monkeypatch.setattr(get_settings(), "llm_base_url", url)
    yield url


def _stream_lines(client: httpx.Client, body: dict[str, Any]) -> tuple[int, list[str]]:
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        return resp.status_code, [line for line in resp.iter_lines() if line]


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_down_is_502_before_streaming(
    client: httpx.Client, upstream_down: str, kit: type[Kit], stream: bool
) -> None:
    started = time.monotonic()
    resp = client.post("/v1/chat/completions", json=kit.chat_body(stream=stream), timeout=30)
    elapsed = time.monotonic() - started
    error = kit.assert_error(resp, 502, "chat model endpoint failed: connection failed")
    assert error["type"] == "upstream_error" and error["code"] == "upstream_unavailable"
    assert resp.headers["content-type"] == "application/json"  # an HTTP error, not an SSE stream
    assert elapsed < 15, f"took {elapsed:.1f}s"


@pytest.mark.parametrize("stream", [False, True])
def test_upstream_500_on_every_call_is_502(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit], stream: bool
) -> None:
    llm.default = kit.Script("never sent", status=500)
    resp = client.post("/v1/chat/completions", json=kit.chat_body(stream=stream), timeout=30)
    error = kit.assert_error(resp, 502, "chat model endpoint failed: HTTP 500")
    assert "scripted error" not in error["message"], "the upstream's body is summarised, not forwarded"
    assert len(llm.requests) == 3  # the first call and the client's two retries


@pytest.mark.parametrize("stream", [False, True])
def test_one_transient_503_is_retried(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit], stream: bool
) -> None:
    llm.enqueue(kit.Script(kit.ANSWER, fail_times=1))
    started = time.monotonic()
    if stream:
        status, lines = _stream_lines(client, kit.chat_body(stream=True))
        assert status == 200 and lines[-1] == "data: [DONE]"
        text = "".join(
            json.loads(line[6:])["choices"][0]["delta"].get("content") or ""
            for line in lines[:-1] if line.startswith("data: {")
        )  # fmt: skip
    else:
        resp = client.post("/v1/chat/completions", json=kit.chat_body())
        assert resp.status_code == 200, resp.text
        text = resp.json()["choices"][0]["message"]["content"]
    assert text.startswith(kit.ANSWER.rstrip("."))
    assert len(llm.requests) == 2  # one 503, then the retry that succeeded
    assert llm.pending == 0
    assert time.monotonic() - started > 0.2  # the retry waited (backoff) before trying again


def test_a_stream_cut_short_is_marked_truncated_and_not_passed(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    """The upstream drops the stream after one chunk (no finish_reason, no [DONE]): the client gets a clean
    ending, but what arrived may stop anywhere, so it is marked truncated and the gate does not pass it."""
    second = " The first year is free of charge."
    cut = kit.Script(kit.ANSWER + second, chunks=[kit.ANSWER, second], cut_after=1)
    llm.enqueue(cut, kit.Script(cut.text, chunks=cut.chunks, cut_after=1))  # a retry is cut too
    started = time.monotonic()
    status, lines = _stream_lines(client, kit.chat_body(stream=True))
    assert time.monotonic() - started < 15
    assert status == 200
    assert lines[-1] == "data: [DONE]"
    frames = [json.loads(line[6:]) for line in lines[:-1] if line.startswith("data: {")]
    assert not any("error" in f for f in frames)  # a clean finish, not an error frame
    quality = frames[-1]["quality"]
    # Never passed; the gate's fall-back quotes the source sentence that states the fee instead.
    assert quality["verdict"] == "quote" and quality["truncated"] is True, quality
    assert any("broke off" in r for r in quality["reasons"]), quality["reasons"]
    answer = frames[-1]["answer"]
    assert answer.startswith('The passage closest to your question says: "'), (
        "the cut draft is not the answer"
    )
    assert frames[-1]["choices"][0]["finish_reason"] == "stop"  # the quote is whole, whatever the draft was
    assert 1 <= len(llm.requests) <= 2


def test_thread_survives_a_failed_turn(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    thread = client.post("/v1/threads", json={}).json()["id"]
    good_url = get_settings().llm_base_url
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        dead = f"http://127.0.0.1:{s.getsockname()[1]}/v1"
    monkeypatch.setattr(get_settings(), "llm_base_url", dead)
    failed = client.post("/v1/chat/completions", json=kit.chat_body(thread_id=thread, stream=True))
    kit.assert_error(failed, 502)

    monkeypatch.setattr(get_settings(), "llm_base_url", good_url)
    history = client.get(f"/v1/threads/{thread}")
    assert history.status_code == 200, history.text
    assert [m["role"] for m in history.json()["messages"]] == ["user"]  # the question, no answer

    llm.enqueue(kit.Script(kit.ANSWER_2))
    ok = client.post("/v1/chat/completions", json=kit.chat_body(kit.QUESTION_2, thread_id=thread))
    assert ok.status_code == 200, ok.text
    assert ok.json()["choices"][0]["message"]["content"].startswith(kit.ANSWER_2.rstrip("."))
    messages = client.get(f"/v1/threads/{thread}").json()["messages"]
    assert [m["role"] for m in messages][-2:] == ["user", "assistant"]
    assert messages[-2]["content"] == kit.QUESTION_2
