"""Malformed chat requests get a 4xx with OpenAI's error body naming the problem, never a 5xx."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from zhiwen.server.app import create_app

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

MAX_BODY = 20_000
MAX_CHARS = 2_000
URL = "/v1/chat/completions"


@pytest.fixture(scope="module")
def small(env: Env, kit: type[Kit]) -> Iterator[httpx.Client]:
    """A server with small body and message limits."""
    settings = kit.open_settings(max_body_bytes=MAX_BODY, max_message_chars=MAX_CHARS)
    with (
        kit.serve(create_app(settings, start_model=False)) as url,
        httpx.Client(base_url=url, timeout=30) as c,
    ):
        yield c


def _user(text: Any) -> list[dict[str, Any]]:
    return [{"role": "user", "content": text}]


# (case id, request body or raw bytes, status, fragments of the message, param)
CASES: list[tuple[str, Any, int, tuple[str, ...], str | None]] = [
    ("invalid-json", b'{"model": "bank", "messages": [', 400, ("not valid JSON",), None),
    ("invalid-utf8", b'{"model": "bank", "messages": [{"role": "user", "content": "\xff\xfe"}]}', 400,
     ("UTF-8",), None),
    ("json-not-object", b"[1, 2, 3]", 400, ("object",), None),
    ("messages-a-string", {"model": "bank", "messages": "hi"}, 400, ("messages", "list"), "messages"),
    ("messages-missing", {"model": "bank"}, 400, ("messages", "required"), "messages"),
    ("model-missing", {"messages": _user("hi")}, 400, ("model", "required"), "model"),
    ("model-wrong-type", {"model": 7, "messages": _user("hi")}, 400, ("model",), "model"),
    ("empty-messages", {"model": "bank", "messages": []}, 400, ("messages", "at least 1"), "messages"),
    ("empty-user-message", {"model": "bank", "messages": _user("")}, 400, ("empty",), "messages.0.content"),
    ("whitespace-user-message", {"model": "bank", "messages": _user(" \n\t ")}, 400, ("empty",),
     "messages.0.content"),
    ("null-content", {"model": "bank", "messages": _user(None)}, 400, ("empty",), "messages.0.content"),
    ("content-wrong-type", {"model": "bank", "messages": _user(42)}, 400, ("messages.0.content",),
     "messages.0.content"),
    ("image-part", {"model": "bank", "messages": _user([{"type": "image_url", "image_url": {"url": "x"}}])},
     400, ("messages.0.content.0.type", "'text'"), "messages.0.content.0.type"),
    ("unknown-role", {"model": "bank", "messages": [{"role": "wizard", "content": "hi"}]}, 400,
     ("messages.0.role",), "messages.0.role"),
    ("last-not-user", {"model": "bank", "messages": [*_user("hi"), {"role": "assistant", "content": "yo"}]},
     400, ("last message", "user"), "messages.1.role"),
    ("unknown-model", {"model": "no-such-kb", "messages": _user("hi")}, 404, ("no-such-kb", "/v1/models"),
     "model"),
    ("n-2", {"model": "bank", "messages": _user("hi"), "n": 2}, 400, ("n",), "n"),
    ("temperature-9", {"model": "bank", "messages": _user("hi"), "temperature": 9}, 400, ("temperature",),
     "temperature"),
    ("stream-not-bool", {"model": "bank", "messages": _user("hi"), "stream": "yes please"}, 400, ("stream",),
     "stream"),
    ("bad-thread-id", {"model": "bank", "messages": _user("hi"), "thread_id": "../../etc"}, 400,
     ("thread_id",), "thread_id"),
    ("too-long-message", {"model": "bank", "messages": _user("x" * (MAX_CHARS + 1))}, 400,
     ("longer than 2000",), "messages.0.content"),
]  # fmt: skip


@pytest.mark.parametrize(
    ("body", "status", "fragments", "param"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_bad_request(
    small: httpx.Client, llm: ScriptedLLM, kit: type[Kit],
    body: Any, status: int, fragments: tuple[str, ...], param: str | None,
) -> None:  # fmt: skip
    if isinstance(body, bytes):
        resp = small.post(URL, content=body, headers={"content-type": "application/json"})
    else:
        resp = small.post(URL, json=body)
    error = kit.assert_error(resp, status, *fragments)
    assert error["param"] == param
    assert error["type"] == ("not_found_error" if status == 404 else "invalid_request_error")
    assert llm.requests == []  # refused before any model call


@pytest.mark.parametrize(
    ("content", "content_type", "expected"),
    [(b"", "application/json", "the request body is empty: send a JSON object"),
     (b'{"model": "bank", "messages": [{"role": "user", "content": "hi"}]}', "text/plain",
      "not a JSON object: send one with Content-Type: application/json")],
    ids=["empty-body", "json-as-text-plain"],
)  # fmt: skip
def test_a_body_that_is_not_json_says_what_to_send(
    small: httpx.Client, llm: ScriptedLLM, kit: type[Kit], content: bytes, content_type: str, expected: str
) -> None:
    resp = small.post(URL, content=content, headers={"content-type": content_type})
    assert kit.assert_error(resp, 400, expected)["param"] is None
    assert llm.requests == []


@pytest.mark.parametrize("stream", [False, True])
@pytest.mark.parametrize(
    ("messages", "param"),
    [(_user("fee \ud800?"), "messages.0.content"),
     (_user([{"type": "text", "text": "fee"}, {"type": "text", "text": "\udfff?"}]), "messages.0.content.1.text"),
     ([{"role": "system", "content": "be \udc00 brief"}, *_user("fee?")], "messages.0.content")],
    ids=["content", "text-part", "earlier-message"],
)  # fmt: skip
def test_lone_surrogate_is_400_not_an_upstream_error(
    small: httpx.Client, llm: ScriptedLLM, kit: type[Kit], messages: Any, param: str, stream: bool
) -> None:
    """JSON may escape half a surrogate pair; such text cannot be encoded for the model, so it is the
    request's fault, refused before the turn, and no upstream error is counted (alerts fire on those)."""

    def upstream_errors() -> list[str]:
        return [line for line in small.get("/metrics").text.splitlines() if "upstream_errors_total{" in line]

    before = upstream_errors()
    raw = json.dumps({"model": "bank", "messages": messages, "stream": stream})  # ASCII: "\ud800" escaped
    resp = small.post(URL, content=raw, headers={"content-type": "application/json"})
    error = kit.assert_error(resp, 400, param, "surrogate")
    assert error["param"] == param and error["type"] == "invalid_request_error"
    assert llm.requests == []
    assert upstream_errors() == before


def test_body_over_limit_is_413(small: httpx.Client, llm: ScriptedLLM, kit: type[Kit]) -> None:
    big = json.dumps({"model": "bank", "messages": _user("x" * (MAX_BODY + 10))})
    kit.assert_error(
        small.post(URL, content=big, headers={"content-type": "application/json"}), 413, "larger"
    )


def test_chunked_body_over_limit_is_413(small: httpx.Client, llm: ScriptedLLM, kit: type[Kit]) -> None:
    """Without a Content-Length the limit is enforced while the body is read."""

    def chunks() -> Iterator[bytes]:
        yield b'{"model": "bank", "messages": [{"role": "user", "content": "'
        for _ in range(10):
            yield b"x" * 4000
        yield b'"}]}'

    resp = small.post(URL, content=chunks(), headers={"content-type": "application/json"})
    assert "content-length" not in {k.lower() for k in resp.request.headers}
    kit.assert_error(resp, 413, "larger")


@pytest.mark.parametrize(
    "header", [b"bad id!", b"a/b", b"x" * 129, "线程".encode(), "été".encode("latin-1")]
)  # the last are letters to str.isalnum(), but not ids /v1/threads/{id} could serve
def test_bad_thread_id_header(small: httpx.Client, llm: ScriptedLLM, kit: type[Kit], header: bytes) -> None:
    resp = small.post(URL, json=kit.chat_body("hi"), headers={"X-Thread-Id": header})
    error = kit.assert_error(resp, 400, "X-Thread-Id")
    assert error["param"] == "thread_id"
    assert llm.requests == []


def test_wrong_method_and_path(small: httpx.Client, kit: type[Kit]) -> None:
    kit.assert_error(small.get(URL), 405, "Method Not Allowed")
    kit.assert_error(small.post("/v1/nothing-here", json={}), 404, "Not Found")


def test_limits_do_not_refuse_good_requests(small: httpx.Client, llm: ScriptedLLM, kit: type[Kit]) -> None:
    ok = small.post(URL, json={"model": kit.KB, "messages": _user(kit.QUESTION + " " * (MAX_CHARS - 60))})
    assert ok.status_code == 200, ok.text
    assert len(llm.requests) == 1


def test_control_characters_in_titles_and_ids_are_400_and_claim_nothing(
    small: httpx.Client, kit: type[Kit]
) -> None:
    """On PostgreSQL a NUL in a thread's title was a 500 that left the thread claimed (counted against the key's
    limit, listed, its id never given to the client); in a document or job id, a 500."""
    before = small.get("/v1/threads").json()["data"]
    error = kit.assert_error(small.post("/v1/threads", json={"title": "t\u0000itle"}), 400, "title")
    assert error["param"] == "title"
    assert small.get("/v1/threads").json()["data"] == before, "no thread was made"
    thread = small.post("/v1/threads", json={"title": "Fees"}).json()["id"]
    kit.assert_error(small.post(f"/v1/threads/{thread}", json={"title": "re\u0000name"}), 400, "title")
    kit.assert_error(small.post(f"/v1/threads/{thread}", json={"title": "two\nlines"}), 400, "title")
    titles = {t["id"]: t["title"] for t in small.get("/v1/threads").json()["data"]}
    assert titles[thread] == "Fees"
    for path in (f"/v1/kbs/{kit.KB}/documents/abc%00def", f"/v1/kbs/{kit.KB}/jobs/abc%00def"):
        resp = small.delete(path) if "documents" in path else small.get(path)
        kit.assert_error(resp, 400)
