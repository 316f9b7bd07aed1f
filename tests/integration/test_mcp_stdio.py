"""`zhiwen mcp` over stdio, driven by the official MCP SDK client as a desktop client would launch it.

The server process answers from a real knowledge base with a scripted model over HTTP; its stdout carries
only the protocol (a stray print would break every client).
"""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import pytest
from mcp import Client
from mcp.client.stdio import StdioServerParameters

from zhiwen.testing.scripted_llm import Script, ScriptedLLMServer

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

ANSWER = "International wire transfers take three business days."


def _data(result: Any) -> Any:
    assert not result.is_error, result.content
    structured = result.structured_content
    return (
        structured["result"] if isinstance(structured, dict) and set(structured) == {"result"} else structured
    )


def test_a_desktop_client_lists_searches_and_asks_over_stdio(graph_kb: tuple[str, Path]) -> None:
    kb, home = graph_kb
    with ScriptedLLMServer() as upstream:
        upstream.llm.default = Script(ANSWER)
        env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_")}
        env |= {
            "ZHIWEN_HOME": str(home),
            "ZHIWEN_LLM_BASE_URL": upstream.base_url,
            "ZHIWEN_LLM_MODEL": "scripted",
        }
        params = StdioServerParameters(
            command=sys.executable, args=["-m", "zhiwen.cli", "mcp", "--kb", kb], env=env
        )

        async def run() -> tuple[list[str], list[dict[str, Any]], dict[str, Any], dict[str, Any]]:
            async with Client(params, read_timeout_seconds=120) as client:
                names = sorted(t.name for t in (await client.list_tools()).tools)
                hits = _data(
                    await client.call_tool("search_knowledge_base", {"kb": kb, "query": "wire transfer"})
                )
                # --kb is the default of search too: it answered "kb Field required"
                assert (
                    _data(await client.call_tool("search_knowledge_base", {"query": "wire transfer"})) == hits
                )
                first = _data(await client.call_tool("ask", {"question": "How long do wire transfers take?"}))
                again = _data(
                    await client.call_tool(
                        "ask", {"question": "And the fee?", "thread_id": first["thread_id"]}
                    )
                )
                return names, hits, first, again

        names, hits, first, again = asyncio.run(run())
        assert names == ["ask", "list_knowledge_bases", "search_knowledge_base"]
        assert hits[0]["source"] == "wire.md" and "three business days" in hits[0]["text"]
        assert first["answer"].startswith(ANSWER) and first["verdict"] == "pass" and first["kb"] == kb
        assert first["sources"][0]["source"] == "wire.md"
        assert again["thread_id"] == first["thread_id"]
        history = upstream.llm.requests[-1]["messages"]
        assert any("How long do wire transfers take?" in str(m.get("content")) for m in history[:-1])
