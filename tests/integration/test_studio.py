"""LangGraph Studio: ``langgraph dev`` loads langgraph.json and shows the graph and its Context fields.

No turn runs here (that needs a model); the schemas Studio draws its forms from are enough.
"""

from __future__ import annotations

import dataclasses
import importlib.util
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

pytestmark = pytest.mark.integration

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


@dataclass
class Studio:
    client: httpx.Client
    log: Path

    def warnings(self) -> str:
        text = re.sub(r"\x1b\[[0-9;]*m", "", self.log.read_text())
        return "\n".join(line for line in text.splitlines() if "Failed to get" in line)


@pytest.fixture(scope="module")
def studio(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Studio]:
    """``langgraph dev`` on a free port; its scratch folder (.langgraph_api) goes to a temporary cwd."""
    if LANGGRAPH is None or importlib.util.find_spec("langgraph_api") is None:
        pytest.skip('langgraph CLI not installed: pip install "langgraph-cli[inmem]" (in the dev extra)')
    tmp = tmp_path_factory.mktemp("studio")
    port = free_port()
    env = {**os.environ, **OFFLINE, "ZHIWEN_HOME": str(tmp / "home")}
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
        yield Studio(client, log)
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
    assert properties["kb"]["default"] == "sample"
    assert properties["top_k"]["default"] == 3
    assert properties["top_k"]["type"] == "integer"
    assert set(properties["retrieval_mode"]["enum"]) == {"hybrid", "bm25", "dense"}


def test_input_and_output_schemas(studio: Studio, schemas: dict[str, Any]) -> None:
    """Studio's input form and output view; None means the state types failed to convert to JSON schema."""
    assert schemas["input_schema"] is not None, studio.warnings()
    assert set(schemas["input_schema"]["properties"]) == {"messages"}
    assert schemas["output_schema"] is not None, studio.warnings()
    assert {"messages", "answer", "sources", "quality", "reasoning", "intent"} <= set(
        schemas["output_schema"]["properties"]
    )
