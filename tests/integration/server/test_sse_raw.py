"""The SSE wire format as bytes: ``data:`` frames, ``[DONE]``, no think text, pings, and disconnects."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from zhiwen.nodes.prompts import withdrawn_notice
from zhiwen.server.app import create_app

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

THINK = "<think>secret plan: the user wants the fee</think>"


def _stream(client: httpx.Client, body: dict[str, Any]) -> list[str]:
    """Every non-empty line of one streamed response, as sent."""
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200, resp.read()
        assert resp.headers["content-type"].startswith("text/event-stream")
        return [line for line in resp.iter_lines() if line]


def _frames(lines: list[str]) -> list[dict[str, Any]]:
    assert lines[-1] == "data: [DONE]"
    assert all(line.startswith(("data: ", ":")) for line in lines), lines
    data = [line for line in lines if line.startswith("data: ")]
    assert data.count("data: [DONE]") == 1
    return [json.loads(line[6:]) for line in data[:-1]]


def _deltas(frames: list[dict[str, Any]], key: str) -> str:
    return "".join(f["choices"][0]["delta"].get(key) or "" for f in frames if f["choices"])


def test_frames_then_done(client: httpx.Client, llm: ScriptedLLM, kit: type[Kit]) -> None:
    frames = _frames(_stream(client, kit.chat_body(stream=True)))
    assert frames[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    assert {f["object"] for f in frames} == {"chat.completion.chunk"}
    assert len({f["id"] for f in frames}) == 1
    assert _deltas(frames, "content") == kit.ANSWER
    assert frames[-1]["choices"][0]["finish_reason"] == "stop"
    assert frames[-1]["quality"]["verdict"] == "pass"
    assert all(f["choices"][0]["finish_reason"] is None for f in frames[:-1])


@pytest.mark.parametrize("stream", [True, False])
def test_an_answer_cut_at_max_tokens_finishes_with_length(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit], stream: bool
) -> None:
    llm.enqueue(kit.Script(kit.ANSWER, finish_reason="length"))
    if stream:
        last = _frames(_stream(client, kit.chat_body(stream=True)))[-1]
    else:
        resp = client.post("/v1/chat/completions", json=kit.chat_body())
        assert resp.status_code == 200, resp.text
        last = resp.json()
    assert last["choices"][0]["finish_reason"] == "length"
    assert last["quality"]["truncated"] is True and last["quality"]["verdict"] == "pass"


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_think_text_never_in_content(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit], chunk_size: int
) -> None:
    llm.enqueue(kit.Script(THINK + kit.ANSWER, chunk_size=chunk_size))
    lines = _stream(client, kit.chat_body(stream=True))
    frames = _frames(lines)
    content = _deltas(frames, "content")
    assert content == kit.ANSWER
    assert "secret" not in "\n".join(lines)  # not in content, not in reasoning (not asked for), nowhere
    assert "think>" not in "\n".join(lines)
    assert _deltas(frames, "reasoning_content") == ""
    assert len(llm.requests) == 1


@pytest.mark.parametrize("chunk_size", [1, 3])
def test_reasoning_only_when_asked(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit], chunk_size: int
) -> None:
    llm.enqueue(kit.Script(THINK + kit.ANSWER, chunk_size=chunk_size))
    frames = _frames(_stream(client, kit.chat_body(stream=True, include_reasoning=True)))
    assert _deltas(frames, "content") == kit.ANSWER
    reasoning = _deltas(frames, "reasoning_content")
    assert reasoning == "secret plan: the user wants the fee"
    for f in frames:  # a frame carries reasoning or content, and think text only as reasoning
        delta = f["choices"][0]["delta"] if f["choices"] else {}
        assert "secret" not in (delta.get("content") or "")


def test_reasoning_content_field_from_upstream(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    """A vLLM reasoning parser sends ``reasoning_content`` deltas: same rule, shown only on request."""
    llm.enqueue(kit.Script(kit.ANSWER, reasoning_content="hidden steps"))
    lines = _stream(client, kit.chat_body(stream=True))
    assert "hidden steps" not in "\n".join(lines)
    llm.enqueue(kit.Script(kit.ANSWER, reasoning_content="hidden steps"))
    frames = _frames(_stream(client, kit.chat_body(stream=True, include_reasoning=True)))
    assert _deltas(frames, "reasoning_content") == "hidden steps"
    assert _deltas(frames, "content") == kit.ANSWER


def test_non_streaming_reasoning_only_when_asked(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    llm.enqueue(kit.Script(THINK + kit.ANSWER))
    plain = client.post("/v1/chat/completions", json=kit.chat_body()).json()
    assert "secret" not in json.dumps(plain)
    assert "reasoning_content" not in plain["choices"][0]["message"]
    llm.enqueue(kit.Script(THINK + kit.ANSWER))
    asked = client.post("/v1/chat/completions", json=kit.chat_body(include_reasoning=True)).json()
    message = asked["choices"][0]["message"]
    assert message["reasoning_content"] == "secret plan: the user wants the fee"
    assert "secret" not in message["content"]


def test_client_disconnect_cancels_upstream(
    client: httpx.Client, llm: ScriptedLLM, env: Env, kit: type[Kit]
) -> None:
    words = [f"w{i} " for i in range(50)]
    llm.enqueue(kit.Script("".join(words), chunks=words, token_delay=0.2))
    content_frames = 0
    started = time.monotonic()
    with client.stream("POST", "/v1/chat/completions", json=kit.chat_body(stream=True)) as resp:
        assert resp.status_code == 200
        for line in resp.iter_lines():
            if line.startswith("data: {") and json.loads(line[6:])["choices"][0]["delta"].get("content"):
                content_frames += 1
                if content_frames == 2:
                    break
    assert content_frames == 2
    assert time.monotonic() - started < 5  # two words in, far from the 10 s the whole answer takes
    deadline = time.monotonic() + 5
    while llm.cancelled < 1 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert llm.cancelled == 1, "the upstream request was not cancelled after the client left"
    assert len(llm.requests) == 1


def test_keep_alive_pings_before_first_token(env: Env, llm: ScriptedLLM, kit: type[Kit]) -> None:
    # The error window (the wait for the first event, so early failures get an HTTP status) is shorter
    # than the model's first-token delay: the stream opens and must be kept alive with pings.
    settings = kit.open_settings(ping_seconds=0.2, error_window_seconds=0.2)
    llm.enqueue(kit.Script(kit.ANSWER, first_token_delay=1.0))
    with (
        kit.serve(create_app(settings, start_model=False)) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        lines = _stream(c, kit.chat_body(stream=True))
    first_content = next(
        i for i, line in enumerate(lines) if line.startswith("data: {") and '"content": "' in line
        and json.loads(line[6:])["choices"][0]["delta"].get("content")
    )  # fmt: skip
    pings = [i for i, line in enumerate(lines[:first_content]) if line.startswith(": ping")]
    assert len(pings) >= 2, lines[:first_content]
    assert _deltas(_frames(lines), "content") == kit.ANSWER


def test_a_failure_inside_a_stream_is_logged_and_counted_under_the_stream(
    env: Env, llm: ScriptedLLM, kit: type[Kit], caplog: pytest.LogCaptureFixture
) -> None:
    """A turn that failed once its stream had begun sent its error frame and left no line in the log (the
    same failure without streaming was logged), and was counted as a chat_stream 200."""
    settings = kit.open_settings(error_window_seconds=0.2)
    llm.default = kit.Script("never sent", status=500)  # every attempt: the retries outlast the window
    with (
        kit.serve(create_app(settings, start_model=False)) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        frames = _frames(_stream(c, kit.chat_body(stream=True)))
        metrics = c.get("/metrics").text
    assert frames[-1]["error"]["type"] == "upstream_error", frames
    assert "chat turn failed while streaming" in caplog.text
    assert 'zhiwen_requests_total{route="chat_stream",status="502"} 1.0' in metrics


def test_a_draft_the_gate_retries_is_followed_by_a_withdrawal_then_the_new_answer(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    ungrounded = "Banks on Mars open at eight every morning."
    llm.enqueue(kit.Script(ungrounded), kit.Script(kit.ANSWER))
    frames = _frames(_stream(client, kit.chat_body(stream=True)))
    assert frames[-1]["quality"]["verdict"] == "pass" and frames[-1]["quality"]["attempts"] == 2
    assert _deltas(frames, "content") == f"{ungrounded}\n\n{withdrawn_notice('en')}\n\n{kit.ANSWER}"
    marked = [f for f in frames if "withdrawn" in f]  # a client that replaces the draft knows where it ends
    assert [f["withdrawn"] for f in marked] == [withdrawn_notice("en")]
    assert marked[0]["choices"][0]["delta"]["content"] == f"\n\n{withdrawn_notice('en')}\n\n"


def test_stream_drafts_false_sends_only_the_checked_answer(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    ungrounded = "Banks on Mars open at eight every morning."
    llm.enqueue(*(kit.Script(ungrounded) for _ in range(2)))
    drafted = _frames(_stream(client, kit.chat_body(stream=True)))
    shown = _deltas(drafted, "content")
    assert "Mars" in shown  # by default the draft streams, then the quote follows it, said to replace it
    notice = withdrawn_notice("en")
    assert shown.index("Mars") < shown.index(notice) < shown.index(drafted[-1]["answer"]), shown
    assert [f.get("withdrawn") for f in drafted if "withdrawn" in f] == [notice, notice]  # both drafts
    llm.enqueue(*(kit.Script(ungrounded) for _ in range(2)))
    frames = _frames(_stream(client, kit.chat_body(stream=True, stream_drafts=False)))
    assert "Mars" not in _deltas(frames, "content")
    assert frames[-1]["quality"]["verdict"] == "quote"  # the fee's source sentence, quoted instead
    assert _deltas(frames, "content") == frames[-1]["answer"]  # the quote, once

    assert llm.pending == 0  # two drafts per refused turn (the first and one retry)
    llm.enqueue(kit.Script(THINK + kit.ANSWER, chunk_size=2))
    frames = _frames(_stream(client, kit.chat_body(stream=True, stream_drafts=False, include_reasoning=True)))
    content = [
        f["choices"][0]["delta"]["content"] for f in frames[1:] if f["choices"][0]["delta"].get("content")
    ]
    assert content == [frames[-1]["answer"]]  # one delta: the checked answer with its citations
    assert frames[-1]["quality"]["verdict"] == "pass"
    assert _deltas(frames, "reasoning_content") == "secret plan: the user wants the fee"
