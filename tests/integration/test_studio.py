"""LangGraph Studio: ``langgraph dev`` serves the graph, its forms, and real knowledge-base turns.

Set up as a user does: ``zhiwen ingest`` into the default knowledge base, the model endpoint in the
environment, then ``langgraph dev`` as docs/studio.md says: without ``--allow-blocking``, so the server runs
every turn under its blocking-call detector and a blocking call in a node fails the run. Turns go through
the LangGraph SDK, as Studio's own client does (``runs.stream`` with ``values`` and ``messages-tuple``). The
model is the scripted OpenAI-compatible server, answering with think text that must never surface.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from zhiwen.graph.context import Context
from zhiwen.graph.context_checks import BOUNDS
from zhiwen.settings import DEFAULT_KB
from zhiwen.testing.scripted_llm import Script, ScriptedLLMServer
from zhiwen.tools.bank_policy import without_fixed_texts

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
LANGGRAPH = shutil.which("langgraph", path=str(Path(sys.executable).parent)) or shutil.which("langgraph")
OFFLINE = {"LANGGRAPH_CLI_NO_ANALYTICS": "1", "LANGGRAPH_NO_VERSION_CHECK": "true"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def stop(proc: subprocess.Popen[bytes]) -> None:
    """Terminate the server's whole process group, then make sure nothing of it is left."""
    for sig, wait in ((signal.SIGTERM, 20.0), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            break
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.killpg(proc.pid, 0)
        except ProcessLookupError:
            return
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGKILL)
    pytest.fail("langgraph dev left processes behind")


DOCS = {
    "card.md": "# 金卡信用卡\n\n金卡信用卡的年费为每年三百元人民币。首年免收年费。\n",
    "wire.md": "# Wire transfers\n\nInternational wire transfers take three business days. "
    "The fee for an international wire transfer is 15 dollars.\n",
}


@dataclass
class Studio:
    client: httpx.Client
    log: Path
    url: str
    llm: ScriptedLLMServer

    def warnings(self) -> str:
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text())
        return "\n".join(line for line in text.splitlines() if "Failed to get" in line)


@pytest.fixture(scope="module")
def llm() -> Iterator[ScriptedLLMServer]:
    with ScriptedLLMServer() as server:
        yield server


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory, llm: ScriptedLLMServer) -> Iterator[Studio]:
    """``langgraph dev`` on a free port over a knowledge base ``zhiwen ingest`` made; its scratch folder
    (.langgraph_api) goes to a temporary cwd."""
    if LANGGRAPH is None or importlib.util.find_spec("langgraph_api") is None:
        pytest.skip('langgraph CLI not installed: pip install "langgraph-cli[inmem]" (in the dev extra)')
    tmp = tmp_path_factory.mktemp("studio")
    docs = tmp / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZHIWEN_", "LANGGRAPH_ALLOW"))}
    env |= {**OFFLINE, "ZHIWEN_HOME": str(tmp / "home"), "ZHIWEN_LLM_BASE_URL": llm.base_url}
    env |= {"ZHIWEN_LLM_MODEL": "scripted"}
    zhiwen = shutil.which("zhiwen", path=str(Path(sys.executable).parent))
    assert zhiwen is not None
    ingest = subprocess.run(
        [zhiwen, "ingest", str(docs)], env=env, capture_output=True, text=True, timeout=300
    )
    assert ingest.returncode == 0, ingest.stderr
    cmd = [LANGGRAPH, "dev", "--config", str(ROOT / "langgraph.json"), "--no-browser", "--no-reload"]
    log = tmp / "langgraph-dev.log"
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--host", "127.0.0.1", "--port", str(port)],
            cwd=tmp, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    client = httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30)
    try:
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited with {proc.returncode}:\n{log.read_text()[-3000:]}")
            try:
                if client.get("/ok").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev not ready after 120 s:\n{log.read_text()[-3000:]}")
            time.sleep(0.25)
        yield Studio(client, log, f"http://127.0.0.1:{port}", llm)
    finally:
        client.close()
        stop(proc)


@pytest.fixture(scope="module")
def assistant(studio: Studio) -> dict[str, Any]:
    found = studio.client.post("/assistants/search", json={"graph_id": "zhiwen"})
    assert found.status_code == 200, found.text
    assistants = found.json()
    assert len(assistants) == 1, assistants
    result: dict[str, Any] = assistants[0]
    return result


@pytest.fixture(scope="module")
def schemas(studio: Studio, assistant: dict[str, Any]) -> dict[str, Any]:
    response = studio.client.get(f"/assistants/{assistant['assistant_id']}/schemas")
    assert response.status_code == 200, response.text
    result: dict[str, Any] = response.json()
    return result


def test_graph_is_served(studio: Studio, assistant: dict[str, Any]) -> None:
    assert assistant["graph_id"] == "zhiwen"
    assert assistant["name"] == "zhiwen"
    drawing = studio.client.get(f"/assistants/{assistant['assistant_id']}/graph")
    assert drawing.status_code == 200, drawing.text
    nodes = {n["id"] for n in drawing.json()["nodes"]}
    assert {"track_intent", "retrieve", "generate", "strip_think", "evaluate", "refuse"} <= nodes


def test_context_fields_and_descriptions(schemas: dict[str, Any]) -> None:
    properties = schemas["context_schema"]["properties"]
    for f in dataclasses.fields(Context):
        assert f.name in properties, f"Context.{f.name} missing from Studio's form"
        assert properties[f.name]["description"] == f.metadata["description"]
    assert properties["kb"]["default"] == DEFAULT_KB
    assert properties["top_k"]["default"] == 2
    assert properties["top_k"]["type"] == "integer"
    assert set(properties["retrieval_mode"]["enum"]) == {"hybrid", "bm25", "dense"}
    # Studio's form shows the bounds a run is checked against (it published none: a run failed to learn them).
    for name, (low, high) in BOUNDS.items():
        assert (properties[name]["minimum"], properties[name]["maximum"]) == (low, high), name


def test_input_and_output_schemas(studio: Studio, schemas: dict[str, Any]) -> None:
    """Studio's input form and output view; None means the state types failed to convert to JSON schema."""
    assert schemas["input_schema"] is not None, studio.warnings()
    assert set(schemas["input_schema"]["properties"]) == {"messages"}
    assert schemas["output_schema"] is not None, studio.warnings()
    assert {"messages", "answer", "sources", "quality", "reasoning", "intent"} <= set(
        schemas["output_schema"]["properties"]
    )


def _run(studio: Studio, thread_id: str, question: str, **context: Any) -> tuple[list[Any], str, list[str]]:
    """One turn through the SDK: (stream parts, all of them as JSON, the answer tokens ``generate`` streamed)."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=studio.url)
    parts = list(
        client.runs.stream(
            thread_id,
            "zhiwen",
            input={"messages": [{"role": "human", "content": question}]},
            context=context or None,
            stream_mode=["values", "messages-tuple"],
        )
    )
    tokens = [
        str(p.data[0].get("content") or "")
        for p in parts
        if p.event == "messages" and p.data[1].get("langgraph_node") == "generate"
    ]
    return parts, json.dumps([p.data for p in parts], ensure_ascii=False), [t for t in tokens if t]


def test_a_conversation_in_studio(studio: Studio) -> None:
    """Greeting, a Chinese and an English question on one thread: sourced answers, streamed tokens, no think
    text, the history kept; the default knowledge base is the one `zhiwen ingest` filled."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=studio.url)
    thread = client.threads.create()["thread_id"]
    studio.llm.llm.enqueue(
        Script(text="<think>秘密推理</think>您好！我是知问，可以回答知识库里的问题。"),
        Script(text="<think>秘密推理</think>金卡信用卡的年费为每年三百元人民币。", chunk_size=2),
        Script(text="<think>secret plan</think>International wire transfers take three business days."),
    )
    turns = [
        ("你好", None, None),
        ("金卡信用卡的年费是多少？", "三百元", "card.md"),
        ("How long do international wire transfers take?", "three business days", "wire.md"),
    ]
    for question, fact, source in turns:
        parts, text, tokens = _run(studio, thread, question)
        assert not [p for p in parts if p.event == "error"], text[-2000:]
        # Reasoning may travel beside the answer (a chunk's reasoning_content, as vLLM's parser sends it);
        # no answer text, streamed or kept, may carry it.
        final = [p.data for p in parts if p.event == "values"][-1]
        answers = [*tokens, final["answer"], *(m["content"] for m in final["messages"])]
        assert not [a for a in answers if re.search("秘密|secret plan|think>", a)], answers
        assert len(tokens) > 3, f"the answer of {question!r} streams token by token"
        if fact is None:
            assert final["answer"].startswith("您好") and final["sources"] == []
            continue
        assert fact in final["answer"] and "[1]" in final["answer"], final["answer"]
        assert final["sources"][0]["source"].endswith(source)
        assert final["quality"]["verdict"] == "pass"
        assert re.sub(r"\s*\[\d+\]", "", without_fixed_texts(final["answer"])) == "".join(tokens).strip()
    history = client.threads.get_state(thread)["values"]["messages"]
    assert [m["type"] for m in history] == ["human", "ai"] * 3, "the thread keeps the whole conversation"
    assert [m["content"] for m in history[::2]] == [q for q, _, _ in turns]
    assert "allow-blocking" not in studio.log.read_text(), "runs were checked for blocking calls"


def test_a_missing_knowledge_base_is_a_clear_run_error(studio: Studio) -> None:
    from langgraph_sdk import get_sync_client

    thread = get_sync_client(url=studio.url).threads.create()["thread_id"]
    parts, text, _ = _run(studio, thread, "金卡信用卡的年费是多少？", kb="没有的库")
    errors = [p.data for p in parts if p.event == "error"]
    assert errors, text[-2000:]
    assert errors[0]["error"] == "KnowledgeBaseNotFound"
    assert "no knowledge base named '没有的库' (existing: default)" in errors[0]["message"]
    assert "zhiwen ingest PATH --kb" in errors[0]["message"]


@pytest.mark.parametrize(
    ("context", "fragments"),
    [
        ({"top_k": "three"}, ["top_k must be int", "'three'"]),
        ({"max_retries": 1_000_000}, ["max_retries must be from 0 to 3"]),
        (
            {"persona": "pirate", "quality_gate": "no"},
            ["persona must be one of 'bank', 'general'", "quality_gate"],
        ),
        ({"kb": ""}, ["kb must name a knowledge base"]),
        ({"base_url": "http://user:pw@llm.example/v1"}, ["base_url must hold no user or password"]),
    ],
)
def test_a_bad_context_value_is_a_run_error_naming_it(
    studio: Studio, context: dict[str, Any], fragments: list[str]
) -> None:
    """They were "An internal error occurred", a TypeError naming no field, or silently taken (a persona of
    "pirate" ran the bank's prompt; one run with max_retries 1,000,000 called the model 2,501 times)."""
    from langgraph_sdk import get_sync_client

    thread = get_sync_client(url=studio.url).threads.create()["thread_id"]
    asked = len(studio.llm.llm.requests)
    parts, text, _ = _run(studio, thread, "金卡信用卡的年费是多少？", **context)
    errors = [p.data for p in parts if p.event == "error"]
    assert errors, text[-2000:]
    assert errors[0]["error"] in ("ContextError", "ValueError"), errors[0]
    for fragment in fragments:
        assert fragment in errors[0]["message"], errors[0]
    assert len(studio.llm.llm.requests) == asked, "the model was not called"


def test_a_failing_model_endpoint_is_a_run_error_without_its_body(studio: Studio) -> None:
    """LangGraph's API server shows a run's error by its message, which held the upstream's response body."""
    from langgraph_sdk import get_sync_client

    thread = get_sync_client(url=studio.url).threads.create()["thread_id"]
    failing = [Script(text="secret upstream words", status=500)] * 3  # the client retries twice
    studio.llm.llm.enqueue(*failing)
    parts, text, _ = _run(studio, thread, "金卡信用卡的年费是多少？")
    errors = [p.data for p in parts if p.event == "error"]
    assert errors, text[-2000:]
    assert errors[0]["message"].startswith("the chat model endpoint failed: HTTP 500"), errors[0]
    assert "scripted error" not in text and "secret upstream" not in text, errors[0]


def test_stream_drafts_off_sends_only_the_checked_answer(studio: Studio) -> None:
    """studio.md's "false: only the checked answer"; the draft streamed anyway (messages and custom)."""
    from langgraph_sdk import get_sync_client

    client = get_sync_client(url=studio.url)
    thread = client.threads.create()["thread_id"]
    studio.llm.llm.enqueue(Script(text="金卡信用卡的年费为每年三百元人民币。", chunk_size=2))
    parts = list(
        client.runs.stream(
            thread,
            "zhiwen",
            input={"messages": [{"role": "human", "content": "金卡信用卡的年费是多少？"}]},
            context={"stream_drafts": False},
            stream_mode=["values", "messages-tuple", "custom"],
        )
    )
    text = json.dumps([p.data for p in parts], ensure_ascii=False)
    assert not [p for p in parts if p.event == "error"], text[-2000:]
    nodes = {p.data[1].get("langgraph_node") for p in parts if p.event == "messages"}
    assert "generate" not in nodes, "no draft token on the messages stream"
    assert not [p for p in parts if p.event == "custom"], "no draft delta on the custom stream"
    final = [p.data for p in parts if p.event == "values"][-1]
    assert "三百元" in final["answer"] and final["quality"]["verdict"] == "pass"
