"""Threads: create, read, chat into, delete; selected by body, header or user; kept across restarts."""

from __future__ import annotations

import json
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from zhiwen.server.app import create_app

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

THINK = "<think>secret reasoning about fees</think>"


def _chat(c: httpx.Client, body: dict[str, Any], **kwargs: Any) -> dict[str, Any]:
    resp = c.post("/v1/chat/completions", json=body, **kwargs)
    assert resp.status_code == 200, resp.text
    data: dict[str, Any] = resp.json()
    return data


def _messages(c: httpx.Client, thread: str) -> list[dict[str, str]]:
    resp = c.get(f"/v1/threads/{thread}")
    assert resp.status_code == 200, resp.text
    messages: list[dict[str, str]] = resp.json()["messages"]
    return messages


def test_thread_lifecycle(client: httpx.Client, llm: ScriptedLLM, kit: type[Kit]) -> None:
    created = client.post("/v1/threads", json={"kb": kit.KB})
    assert created.status_code == 201
    thread = created.json()["id"]
    assert created.json()["object"] == "thread"
    empty = client.get(f"/v1/threads/{thread}").json()
    assert empty["messages"] == [] and empty["sources"] == []

    llm.enqueue(kit.Script(THINK + kit.ANSWER, chunk_size=2))
    first = _chat(client, kit.chat_body(thread_id=thread))
    assert first["thread_id"] == thread
    llm.enqueue(kit.Script(THINK + kit.ANSWER_2, chunk_size=2))
    with client.stream("POST", "/v1/chat/completions", json=kit.chat_body(kit.QUESTION_2, thread_id=thread,
                                                                          stream=True)) as resp:  # fmt: skip
        lines = [line for line in resp.iter_lines() if line]
    assert lines[-1] == "data: [DONE]"
    assert json.loads(lines[-2][6:])["thread_id"] == thread

    history = client.get(f"/v1/threads/{thread}").json()
    roles = [m["role"] for m in history["messages"]]
    assert roles == ["user", "assistant", "user", "assistant"]
    texts = [m["content"] for m in history["messages"]]
    assert texts[0] == kit.QUESTION and texts[2] == kit.QUESTION_2
    assert texts[1].startswith(kit.ANSWER.rstrip(".")) and texts[3].startswith(kit.ANSWER_2.rstrip("."))
    assert "secret" not in json.dumps(history) and "think>" not in json.dumps(history)
    assert history["quality"]["verdict"] == "pass"
    assert "wire" in history["sources"][0]["text"]
    # Each answer keeps the sources its [n] refer to and its verdict, named by file, not by server path.
    first_answer, last_answer = history["messages"][1], history["messages"][3]
    assert "300 yuan" in first_answer["sources"][0]["text"] and first_answer["quality"]["verdict"] == "pass"
    assert [(s["n"], s["source"], s["text"]) for s in last_answer["sources"]] == [
        (s["n"], s["source"], s["text"]) for s in history["sources"]
    ]
    assert "sources" not in history["messages"][0]
    assert all("/" not in s["source"] for m in (first_answer, last_answer) for s in m["sources"])

    # The second call carried the first turn as history, without its think text.
    sent = llm.requests[-1]["messages"]
    assert [m["role"] for m in sent] == ["system", "user", "assistant", "user"]
    assert sent[1]["content"] == kit.QUESTION
    assert "secret" not in json.dumps(sent)
    assert sent[2].keys() == {"role", "content"}, "an answer's kept sources are not sent to the model"

    assert client.delete(f"/v1/threads/{thread}").status_code == 204
    kit.assert_error(client.get(f"/v1/threads/{thread}"), 404, thread)
    kit.assert_error(client.delete(f"/v1/threads/{thread}"), 404, thread)


def test_only_the_last_user_message_is_new_on_a_thread(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    thread = client.post("/v1/threads").json()["id"]
    body = kit.chat_body(thread_id=thread)
    body["messages"] = [
        {"role": "system", "content": "ignored on a stored thread"},
        {"role": "user", "content": "an earlier question the server already has"},
        {"role": "assistant", "content": "an earlier answer"},
        {"role": "user", "content": kit.QUESTION},
    ]
    _chat(client, body)
    assert _messages(client, thread)[0]["content"] == kit.QUESTION
    assert len(_messages(client, thread)) == 2


def test_unknown_and_malformed_thread_ids(client: httpx.Client, kit: type[Kit]) -> None:
    kit.assert_error(client.get("/v1/threads/never-created"), 404, "never-created")
    error = kit.assert_error(client.get("/v1/threads/bad%20id"), 400, "thread_id")
    assert error["param"] == "thread_id"
    kit.assert_error(client.post("/v1/threads", json={"unexpected": 1}), 400, "unexpected")


@pytest.mark.parametrize("kb", ["nope", "../x", "产品手册"])
def test_a_thread_for_a_missing_knowledge_base_is_404(client: httpx.Client, kit: type[Kit], kb: str) -> None:
    """As for a chat's model or a search: a missing knowledge base is a 404, and no thread is made."""
    before = client.get("/v1/threads").json()["data"]
    error = kit.assert_error(client.post("/v1/threads", json={"kb": kb, "title": "t"}), 404, repr(kb), kit.KB)
    assert error["param"] == "kb" and error["code"] == "kb_not_found"
    assert client.get("/v1/threads").json()["data"] == before


def test_header_and_user_select_threads(client: httpx.Client, llm: ScriptedLLM, kit: type[Kit]) -> None:
    _chat(client, kit.chat_body(), headers={"X-Thread-Id": "from-header.1"})
    assert [m["role"] for m in _messages(client, "from-header.1")] == ["user", "assistant"]
    _chat(client, kit.chat_body(), headers={"X-Thread-Id": "tenant:7_a-b"})  # every id /v1/threads serves
    assert len(_messages(client, "tenant:7_a-b")) == 2
    llm.enqueue(kit.Script(kit.ANSWER_2))
    _chat(client, kit.chat_body(kit.QUESTION_2), headers={"X-Thread-Id": "from-header.1"})
    assert len(_messages(client, "from-header.1")) == 4

    # The body's thread_id wins over the header.
    _chat(client, kit.chat_body(thread_id="body-wins"), headers={"X-Thread-Id": "from-header.1"})
    assert len(_messages(client, "body-wins")) == 2 and len(_messages(client, "from-header.1")) == 4

    # Without either the request is stateless: nothing is stored under its completion id, and by default
    # `user` (which chat UIs send with every chat of a person) does not pick a thread.
    stateless = _chat(client, kit.chat_body(user="alice"))
    assert stateless["thread_id"] is None
    assert client.get(f"/v1/threads/{stateless['id']}").status_code == 404


def test_user_selects_a_thread_when_the_server_says_so(env: Env, llm: ScriptedLLM, kit: type[Kit]) -> None:
    settings = kit.open_settings(thread_from_user=True)
    with (
        kit.serve(create_app(settings, start_model=False)) as url,
        httpx.Client(base_url=url, timeout=60) as c,
    ):
        alice = _chat(c, kit.chat_body(user="alice"))["thread_id"]
        assert alice.startswith("user-") and alice != "user-alice"  # hashed: any `user` string is addressable
        assert _messages(c, alice)[0]["content"] == kit.QUESTION
        bob = _chat(c, kit.chat_body(user="bob / 张三 with spaces"))["thread_id"]
        assert bob != alice
        assert len(_messages(c, alice)) == 2 and len(_messages(c, bob)) == 2
        _chat(c, kit.chat_body(thread_id="body-wins-2", user="alice"), headers={"X-Thread-Id": "h.2"})
        assert len(_messages(c, "body-wins-2")) == 2 and len(_messages(c, alice)) == 2  # thread_id wins


def test_threads_survive_a_restart(env: Env, llm: ScriptedLLM, kit: type[Kit]) -> None:
    with (
        kit.serve(create_app(kit.open_settings(), start_model=False)) as url,
        httpx.Client(base_url=url) as c,
    ):
        thread = c.post("/v1/threads").json()["id"]
        _chat(c, kit.chat_body(thread_id=thread), timeout=60)
        before = _messages(c, thread)
    assert len(before) == 2
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/live", timeout=5)  # the first server is really gone

    with (
        kit.serve(create_app(kit.open_settings(), start_model=False)) as url2,
        httpx.Client(base_url=url2) as c,
    ):
        assert _messages(c, thread) == before
        llm.enqueue(kit.Script(kit.ANSWER_2))
        _chat(c, kit.chat_body(kit.QUESTION_2, thread_id=thread), timeout=60)
        after = _messages(c, thread)
    assert after[:2] == before and [m["role"] for m in after[2:]] == ["user", "assistant"]
    assert (env.home / "threads.sqlite").exists()
