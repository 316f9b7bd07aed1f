"""One turn at a time per thread, a non-streaming client leaving stops its turn, and model aliases."""

from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING

import httpx
import pytest

from zhiwen import service
from zhiwen.memory.kb import delete_kb
from zhiwen.memory.registry import close_all
from zhiwen.server.app import create_app
from zhiwen.settings import get_settings

if TYPE_CHECKING:
    from pathlib import Path

    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

SLOW = [f"w{i} " for i in range(40)]


def _wait_for(predicate: object, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while not predicate() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)
    return bool(predicate())  # type: ignore[operator]


def test_a_second_turn_on_a_busy_thread_is_409_and_the_thread_keeps_both_turns(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    llm.enqueue(kit.Script(kit.ANSWER, chunks=[kit.ANSWER[:10], kit.ANSWER[10:]], token_delay=1.5))
    body = kit.chat_body(stream=True, thread_id="busy-1")
    with client.stream("POST", "/v1/chat/completions", json=body) as resp:
        assert resp.status_code == 200
        lines = resp.iter_lines()
        next(
            line
            for line in lines
            if '"content": "' in line and json.loads(line[6:])["choices"][0]["delta"].get("content")
        )
        second = client.post("/v1/chat/completions", json=kit.chat_body(kit.QUESTION_2, thread_id="busy-1"))
        error = kit.assert_error(second, 409, "busy-1", "has a turn running")
        assert error["code"] == "thread_busy" and error["param"] == "thread_id"
        other = client.post("/v1/chat/completions", json=kit.chat_body(kit.QUESTION_2, thread_id="busy-2"))
        assert other.status_code == 200, other.text  # other threads are not held up
        assert [line for line in lines if line][-1] == "data: [DONE]"
    after = client.post("/v1/chat/completions", json=kit.chat_body(kit.QUESTION_2, thread_id="busy-1"))
    assert after.status_code == 200, after.text  # the thread takes turns again once the first ended
    roles = [m["role"] for m in client.get("/v1/threads/busy-1").json()["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]


def test_a_non_streaming_client_leaving_cancels_the_upstream_request(
    base_url: str, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    llm.enqueue(kit.Script("".join(SLOW), chunks=SLOW, token_delay=0.25))  # 10 s of answer
    started = time.monotonic()
    with httpx.Client(base_url=base_url, timeout=2.0) as impatient, pytest.raises(httpx.ReadTimeout):
        impatient.post("/v1/chat/completions", json=kit.chat_body())
    assert _wait_for(lambda: llm.cancelled >= 1), "the upstream request went on after the client left"
    assert time.monotonic() - started < 8
    assert len(llm.requests) == 1  # and no retry was started


def test_model_default_is_a_kb_named_default_when_one_exists(
    env: Env, llm: ScriptedLLM, kit: type[Kit], tmp_path: Path
) -> None:
    with (
        kit.serve(create_app(kit.open_settings(default_kb=kit.KB), start_model=False)) as url,
        httpx.Client(base_url=url, timeout=60) as c,
    ):
        aliased = c.post("/v1/chat/completions", json={**kit.chat_body(), "model": "default"})
        assert aliased.status_code == 200, aliased.text
        assert aliased.json()["sources"][0]["source"].endswith("gold-card.md")
        (tmp_path / "platinum.md").write_text("# Platinum card\n\nThe annual fee of the gold card is waived "
                                              "for platinum holders.\n", encoding="utf-8")  # fmt: skip
        assert service.ingest("default", [tmp_path]).added == 1
        try:
            assert "default" in [m["id"] for m in c.get("/v1/models").json()["data"]]
            own = c.post("/v1/chat/completions", json={**kit.chat_body(), "model": "default"})
            assert own.status_code == 200, own.text
            assert {s["source"].rsplit("/", 1)[-1] for s in own.json()["sources"]} == {"platinum.md"}
        finally:
            close_all()
            delete_kb(get_settings().kb_root, "default")
