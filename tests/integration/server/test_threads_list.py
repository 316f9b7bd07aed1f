"""``GET /v1/threads`` (a key's own threads, titled) and ``POST /v1/threads/{id}`` (rename), on real sockets.

Threads are the key's own: another key that uses the same thread id has a different conversation, and an admin
key replaced by a new one at the same place in ``ZHIWEN_API_KEYS`` does not inherit the old key's threads.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from zhiwen.server.app import create_app
from zhiwen.server.quotas import Ledger
from zhiwen.server.settings import ServerSettings

if TYPE_CHECKING:
    from conftest import Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

KEY_A = "threads-key-a-5d1e8c0f27"
KEY_B = "threads-key-b-9a3f6b2e41"


def _client(url: str, key: str | None) -> httpx.Client:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.Client(base_url=url, headers=headers, timeout=60)


def _listed(c: httpx.Client, **params: Any) -> dict[str, dict[str, Any]]:
    resp = c.get("/v1/threads", params=params)
    assert resp.status_code == 200, resp.text
    body = resp.json()
    assert body["object"] == "list" and isinstance(body["has_more"], bool)
    return {t["id"]: t for t in body["data"]}


def _chat(c: httpx.Client, kit: type[Kit], thread: str, question: str) -> None:
    resp = c.post("/v1/chat/completions", json=kit.chat_body(question, thread_id=thread))
    assert resp.status_code == 200, resp.text


@pytest.fixture(scope="module")
def url(env: object, kit: type[Kit]) -> Iterator[str]:
    with kit.serve(create_app(ServerSettings(api_keys=f"{KEY_A},{KEY_B}"), start_model=False)) as base:
        yield base


def test_each_key_lists_its_own_threads_only(url: str, llm: ScriptedLLM, kit: type[Kit]) -> None:
    with _client(url, KEY_A) as a, _client(url, KEY_B) as b, _client(url, None) as anonymous:
        made = a.post("/v1/threads", json={"kb": kit.KB, "title": "  Gold card  "})
        assert made.status_code == 201, made.text
        mine = made.json()["id"]
        _chat(a, kit, "same-name", kit.QUESTION)
        _chat(b, kit, "same-name", kit.QUESTION_2)  # the same id names b's own conversation
        theirs = b.post("/v1/threads", json={}).json()["id"]

        seen_by_a, seen_by_b = _listed(a), _listed(b)
        assert mine in seen_by_a and "same-name" in seen_by_a and theirs not in seen_by_a
        assert theirs in seen_by_b and "same-name" in seen_by_b and mine not in seen_by_b
        assert seen_by_a[mine] | {"created_at": 0, "updated_at": 0} == {
            "id": mine, "object": "thread", "title": "Gold card", "kb": kit.KB,
            "created_at": 0, "updated_at": 0, "messages": 0,
        }  # fmt: skip
        # Untitled threads are called by their first question; each key sees its own.
        assert seen_by_a["same-name"]["title"] == kit.QUESTION and seen_by_a["same-name"]["messages"] == 2
        assert seen_by_b["same-name"]["title"] == kit.QUESTION_2
        assert seen_by_a["same-name"]["updated_at"] >= seen_by_a["same-name"]["created_at"] > 0

        kit.assert_error(anonymous.get("/v1/threads"), 401, "API key")
        with _client(url, "not-a-key-at-all-000") as wrong:
            kit.assert_error(wrong.get("/v1/threads"), 401)


def test_rename_then_delete(url: str, llm: ScriptedLLM, kit: type[Kit]) -> None:
    with _client(url, KEY_A) as a, _client(url, KEY_B) as b:
        _chat(a, kit, "to-rename", kit.QUESTION)
        renamed = a.post("/v1/threads/to-rename", json={"title": "  Fees 年费 "})
        assert renamed.status_code == 200, renamed.text
        assert renamed.json()["title"] == "Fees 年费" and renamed.json()["id"] == "to-rename"
        assert _listed(a)["to-rename"]["title"] == "Fees 年费"
        kit.assert_error(b.post("/v1/threads/to-rename", json={"title": "mine now"}), 404, "to-rename")
        assert _listed(a)["to-rename"]["title"] == "Fees 年费", "another key cannot rename it"

        for bad in ({"title": ""}, {"title": "   "}, {"title": "x" * 201}, {"name": "x"}, {}):
            kit.assert_error(a.post("/v1/threads/to-rename", json=bad), 400)
        kit.assert_error(a.post("/v1/threads/to-rename", content=b"{not json", headers={
            "Content-Type": "application/json"}), 400)  # fmt: skip
        kit.assert_error(a.post("/v1/threads/no-such-thread", json={"title": "x"}), 404, "no-such-thread")
        kit.assert_error(a.post("/v1/threads/bad%20id", json={"title": "x"}), 400)

        assert a.delete("/v1/threads/to-rename").status_code == 204
        assert "to-rename" not in _listed(a)
        # A new conversation under the same id starts untitled: the old title went with the thread.
        _chat(a, kit, "to-rename", kit.QUESTION_2)
        assert _listed(a)["to-rename"]["title"] == kit.QUESTION_2


def test_newest_first_with_a_limit(url: str, llm: ScriptedLLM, kit: type[Kit]) -> None:
    with _client(url, KEY_B) as b:
        made = [b.post("/v1/threads", json={"title": f"t{i}"}).json()["id"] for i in range(3)]
        resp = b.get("/v1/threads", params={"limit": 2})
        assert resp.status_code == 200, resp.text
        assert [t["id"] for t in resp.json()["data"]] == made[::-1][:2] and resp.json()["has_more"] is True
        everything = b.get("/v1/threads", params={"limit": 1000}).json()
        assert everything["has_more"] is False and {*made} <= {t["id"] for t in everything["data"]}
        for bad in ("0", "1001", "abc"):
            kit.assert_error(b.get("/v1/threads", params={"limit": bad}), 400, "limit")


def test_a_replaced_admin_key_does_not_inherit_the_threads(
    url: str, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    with _client(url, KEY_A) as a:
        _chat(a, kit, "old-key-thread", kit.QUESTION)
        assert "old-key-thread" in _listed(a)
    new_a = "threads-key-a2-7c4d0e9b13"  # takes KEY_A's place: the same ledger owner (env0), another key
    with (
        kit.serve(create_app(ServerSettings(api_keys=f"{new_a},{KEY_B}"), start_model=False)) as other,
        _client(other, new_a) as c,
    ):
        assert _listed(c) == {}
        kit.assert_error(c.post("/v1/threads/old-key-thread", json={"title": "x"}), 404)


def test_an_open_server_lists_its_threads(client: httpx.Client, llm: ScriptedLLM, kit: type[Kit]) -> None:
    thread = client.post("/v1/threads", json={"kb": kit.KB}).json()["id"]
    _chat(client, kit, thread, kit.QUESTION)
    listed = _listed(client)[thread]
    assert listed["title"] == kit.QUESTION and listed["kb"] == kit.KB and listed["messages"] == 2


@pytest.mark.parametrize("engine", ["sqlite", "postgres"])
def test_the_ledger_lists_and_titles_threads_on_both_engines(
    engine: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    url = request.getfixturevalue("postgres_url") if engine == "postgres" else None
    ledger = Ledger(tmp_path / "quotas.sqlite", {"kb": 10, "thread": 10}, url)
    try:
        for name in ("ka:one", "ka:two", "kb:one", "ka_x:three"):  # "ka_" must not match the prefix "ka:"
            ledger.claim("thread", "owner", name)
        ledger.claim("thread", "someone-else", "ka:four")
        ledger.retitle("ka:one", "First", "bank")
        ledger.retitle("ka:one", None, "treasury")  # None keeps the title
        listed = ledger.threads("owner", "ka:", 10)
        assert [(n, t, k) for n, _, t, k in listed] == [("ka:two", "", ""), ("ka:one", "First", "treasury")]
        assert [n for n, *_ in ledger.threads("owner", "ka:", 1)] == ["ka:two"]
        assert (
            ledger.thread("owner", "ka:one") == listed[1] and ledger.thread("someone-else", "ka:one") is None
        )
        ledger.release("thread", "ka:one", "owner")
        ledger.claim("thread", "owner", "ka:one")
        assert ledger.thread("owner", "ka:one")[2:] == ("", ""), "a deleted thread's title goes with it"  # type: ignore[index]
    finally:
        if url:  # the shared database outlives the test: leave it as found
            for name in ("ka:one", "ka:two", "kb:one", "ka_x:three"):
                ledger.release("thread", name, "owner")
            ledger.release("thread", "ka:four", "someone-else")
        ledger.close()
