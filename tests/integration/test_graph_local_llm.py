"""The turn graph against the embedded llama.cpp server running SmolLM2-135M (a real model, on the CPU)."""

from __future__ import annotations

import asyncio
import json
import os
from collections.abc import Iterator
from pathlib import Path

import aiohttp
import pytest
from langchain_core.messages import HumanMessage

from zhiwen.graph.builder import graph
from zhiwen.graph.context import Context
from zhiwen.settings import get_settings
from zhiwen.tools import llm_server

# The timeout is a hang guard, not a speed target: building the fixture's knowledge base and starting the
# model take ~30 s on a quiet 2-core machine, but several times that when another model server shares the cores.
pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(360)]

MODEL = "smollm2-135m"


@pytest.fixture
def local_servers() -> Iterator[None]:
    yield
    llm_server.stop_all()


def _gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_local_model_answers_from_the_knowledge_base(graph_kb: tuple[str, Path], local_servers: None) -> None:
    ctx = Context(
        kb=graph_kb[0], local_model=MODEL, max_tokens=40, top_k=1, quality_gate=False, request_timeout=240
    )
    question = "How long do international wire transfers take?"
    out = asyncio.run(graph.ainvoke({"messages": [HumanMessage(question)]}, context=ctx))

    assert out["answer"].strip(), "the model returned no answer"
    assert out["messages"][-1].content == out["answer"]
    assert out["sources"] and out["sources"][0]["source"].endswith("wire.md")
    assert out["quality"]["verdict"] in ("pass", "unchecked")
    assert "grounded" in out["quality"]  # the deterministic checks ran on the model's draft
    assert "<think>" not in out["answer"] and "</think>" not in out["answer"]

    server = llm_server._servers[MODEL]
    process = server.process
    assert process is not None and process.poll() is None
    assert server.log_path is not None and server.log_path.parent == graph_kb[1] / "logs"
    pid = process.pid
    llm_server.stop_all()
    assert server.process is None and llm_server._servers == {}
    assert process.returncode is not None and _gone(pid)


async def _stream_completion(base_url: str, model: str, prompt: str) -> tuple[str, str | None]:
    """(content, finish_reason) of one streamed chat completion, read to its end."""
    content: list[str] = []
    finish: str | None = None
    body = {"model": model, "stream": True, "max_tokens": 24, "temperature": 0,
            "messages": [{"role": "user", "content": prompt}]}  # fmt: skip
    async with (
        aiohttp.ClientSession() as session,
        session.post(f"{base_url}/chat/completions", json=body) as resp,
    ):
        assert resp.status == 200, await resp.text()
        async for raw in resp.content:
            line = raw.decode().strip()
            if not line.startswith("data: ") or line == "data: [DONE]":
                continue
            choice = json.loads(line[len("data: ") :])["choices"][0]
            content.append(choice["delta"].get("content") or "")
            finish = choice.get("finish_reason") or finish
    return "".join(content), finish


def test_concurrent_requests_to_the_embedded_server_both_complete(
    graph_kb: tuple[str, Path], local_servers: None
) -> None:
    """llama_cpp.server cuts a stream in progress when another request arrives unless told not to: two
    users of one server then broke each other's answers. The second request must wait, not interrupt."""
    endpoint = llm_server.resolve_endpoint(get_settings(), MODEL)

    async def both() -> list[tuple[str, str | None]]:
        first = asyncio.create_task(
            _stream_completion(endpoint.base_url, endpoint.model, "Count from 1 to 30.")
        )
        await asyncio.sleep(0.3)  # the first stream is under way when the second request arrives
        second = _stream_completion(endpoint.base_url, endpoint.model, "Name three colours.")
        return list(await asyncio.gather(first, second))

    for content, finish in asyncio.run(both()):
        assert content.strip(), "a stream ended without content"
        assert finish in ("stop", "length"), f"a stream ended without a finish reason: {finish!r}"
