"""The MCP tools at /mcp on `zhiwen serve`, through the official SDK's client over streamable HTTP.

A chat key scoped to one knowledge base sees that base only, asks a real knowledge-base turn (scripted model
over HTTP) and follows up on the thread; a base outside its scope is answered as missing; no key, no MCP.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

from zhiwen import service
from zhiwen.memory.keys import open_key_store
from zhiwen.memory.registry import close_all
from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings
from zhiwen.settings import get_settings

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.usefixtures("no_blocking_calls")]

ADMIN = "admin-key-for-mcp-tests-0123456789"


@pytest.fixture(scope="module")
def served(env: Env, kit: type[Kit], tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, str]]:
    """(base URL, chat key scoped to the ``bank`` knowledge base); a second base ``other`` exists."""
    docs = tmp_path_factory.mktemp("other-docs")
    (docs / "branch.md").write_text("# Branch\n\nThe branch opens at nine.\n", encoding="utf-8")
    service.ingest("other", [docs])
    store = open_key_store(get_settings())
    _, chat_key = store.create("chat", ["bank"], "mcp test")
    store.close()
    with kit.serve(create_app(ServerSettings(api_keys=ADMIN, gc_freeze=False), start_model=False)) as url:
        yield url, chat_key
    close_all()


def _client(url: str, key: str) -> Client:
    """Made outside the event loop: httpx2 reads package metadata when it builds its transport."""
    http = httpx2.AsyncClient(headers={"Authorization": f"Bearer {key}"}, timeout=60)
    return Client(streamable_http_client(f"{url}/mcp", http_client=http))


def _data(result: Any) -> Any:
    assert not result.is_error, result.content
    structured = result.structured_content
    return (
        structured["result"] if isinstance(structured, dict) and set(structured) == {"result"} else structured
    )


def test_a_chat_key_lists_searches_and_asks_with_follow_up(
    served: tuple[str, str], llm: ScriptedLLM, kit: type[Kit]
) -> None:
    url, key = served
    mcp_client = _client(url, key)

    async def run() -> None:
        async with mcp_client as client:
            tools = {t.name for t in (await client.list_tools()).tools}
            assert tools == {"list_knowledge_bases", "search_knowledge_base", "ask"}
            bases = _data(await client.call_tool("list_knowledge_bases", {}))
            assert [b["name"] for b in bases] == ["bank"], "only the key's own base"
            hits = _data(
                await client.call_tool("search_knowledge_base", {"kb": "bank", "query": "gold card fee"})
            )
            assert hits and "300 yuan" in hits[0]["text"]
            assert hits[0]["source"] == "gold-card.md", "the file's name, never the server's path"

            first = _data(await client.call_tool("ask", {"question": kit.QUESTION, "kb": "bank"}))
            assert first["answer"].startswith(kit.ANSWER) and first["verdict"] == "pass"
            assert first["sources"][0]["source"] == "gold-card.md" and first["thread_id"]
            llm.enqueue(kit.Script(kit.ANSWER_2))
            follow = _data(
                await client.call_tool(
                    "ask", {"question": kit.QUESTION_2, "kb": "bank", "thread_id": first["thread_id"]}
                )
            )
            assert follow["thread_id"] == first["thread_id"] and follow["answer"].startswith(kit.ANSWER_2)
            sent = llm.requests[-1]["messages"]
            assert any(kit.QUESTION in str(m.get("content")) for m in sent[:-1]), (
                "the thread's history was sent"
            )

            for name, args in (
                ("ask", {"question": "What time does the branch open?", "kb": "other"}),
                ("search_knowledge_base", {"kb": "other", "query": "branch"}),
            ):
                refused = await client.call_tool(name, args)
                assert refused.is_error
                text = refused.content[0].text  # type: ignore[union-attr]
                assert "no knowledge base named 'other'" in text and "yours: bank" in text

    asyncio.run(run())


def test_the_admin_key_sees_every_base_and_no_key_gets_nothing(served: tuple[str, str]) -> None:
    url, _ = served
    admin = _client(url, ADMIN)

    async def listed() -> list[str]:
        async with admin as client:
            return [b["name"] for b in _data(await client.call_tool("list_knowledge_bases", {}))]

    assert set(asyncio.run(listed())) >= {"bank", "other"}
    bare = httpx.post(f"{url}/mcp", json={"jsonrpc": "2.0", "id": 1, "method": "tools/list"}, timeout=30)
    assert bare.status_code == 401 and "API key" in bare.json()["error"]["message"]


def test_bad_tool_input_is_a_tool_error_not_a_turn(served: tuple[str, str], llm: ScriptedLLM) -> None:
    url, key = served
    mcp_client = _client(url, key)

    async def run() -> list[str]:
        async with mcp_client as client:
            out = []
            for args in (
                {"question": "   "},
                {"question": "x" * 4001},
                {"question": "hi", "thread_id": "t" * 129},
                {"question": "hi", "thread_id": "t\u0000x"},  # a 500 deep in the shared database's lock
            ):
                result = await client.call_tool("ask", args)
                assert result.is_error
                out.append(result.content[0].text)  # type: ignore[union-attr]
            for args in (
                {"kb": "bank", "query": "fee", "top_k": 0},
                {"kb": "bank", "query": "年费 " * 1334},  # 4002 characters: over the REST search's cap too
            ):
                bad = await client.call_tool("search_knowledge_base", args)
                assert bad.is_error
                out.append(bad.content[0].text)  # type: ignore[union-attr]
            return out

    messages = asyncio.run(run())
    assert "empty" in messages[0] and "4000" in messages[1] and "128" in messages[2]
    assert "letters, digits" in messages[3]
    assert "top_k" in messages[4] and "query is longer than 4000 characters" in messages[5]
    assert llm.requests == [], "no model call for refused input"
