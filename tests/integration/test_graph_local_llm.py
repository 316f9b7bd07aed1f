"""The turn graph against the embedded llama.cpp server running SmolLM2-135M (a real model, on the CPU)."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage

from zhiwen.graph.builder import graph
from zhiwen.graph.context import Context
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
