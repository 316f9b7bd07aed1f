"""Fixtures for the HTTP server suite: a scripted upstream LLM, a tiny knowledge base, a live zhiwen server.

Every module gets its own ``ZHIWEN_HOME`` (with the knowledge base ``bank`` ingested once by the real e5
embedder) and its own scripted upstream; ``llm`` hands each test that upstream with an empty queue.
Servers run under real uvicorn on 127.0.0.1, so streaming, disconnects, pings and lifespan are real.
Test modules reach the shared constants and helpers through the ``kit`` fixture (two ``conftest``
modules make ``from conftest import ...`` ambiguous).
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from zhiwen import service
from zhiwen.memory.registry import close_all
from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings, get_server_settings
from zhiwen.settings import get_settings
from zhiwen.testing.scripted_llm import Script, ScriptedLLM, ScriptedLLMServer
from zhiwen.testing.waiting import wait_for_http

KB = "bank"
QUESTION = "What is the annual fee of the gold card?"
ANSWER = "The annual fee of the gold card is 300 yuan."
QUESTION_2 = "How many business days does an international wire transfer take?"
ANSWER_2 = "International wire transfers take three business days."
DOCS = {
    "gold-card.md": (
        "# Gold card\n\nThe annual fee of the gold card is 300 yuan. The first year is free of charge.\n"
    ),
    "wire.txt": "International wire transfers take three business days. The wire transfer fee is 15 dollars.",
    "金卡.md": "# 金卡年费\n\n金卡信用卡的年费为每年三百元人民币。首年免收年费。\n",
}


@dataclass
class Env:
    """One module's world: data folder, scripted upstream and the knowledge base in it."""

    home: Path
    upstream: ScriptedLLMServer
    kb: str = KB

    @property
    def llm(self) -> ScriptedLLM:
        return self.upstream.llm


def reset(llm: ScriptedLLM) -> None:
    """Forget queued scripts, recorded requests and cancellations; answer ``ANSWER`` by default."""
    with llm._lock:
        llm._queue.clear()
        llm.requests.clear()
        llm.headers.clear()
        llm.cancelled = 0
        llm.default = Script(ANSWER)


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Env]:
    base = tmp_path_factory.mktemp("server")
    home, docs = base / "home", base / "docs"
    docs.mkdir()
    for name, text in DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    with (
        ScriptedLLMServer(ScriptedLLM(default=Script(ANSWER))) as upstream,
        pytest.MonkeyPatch.context() as mp,
    ):
        mp.setenv("ZHIWEN_HOME", str(home))
        mp.setenv("ZHIWEN_LLM_BASE_URL", upstream.base_url)
        mp.setenv("ZHIWEN_LLM_MODEL", "scripted")
        for var in ("ZHIWEN_API_KEYS", "ZHIWEN_ALLOW_OPEN", "ZHIWEN_CHECKPOINT_URL", "ZHIWEN_OTEL"):
            mp.delenv(var, raising=False)
        get_settings.cache_clear()
        get_server_settings.cache_clear()
        try:
            report = service.ingest(KB, [docs])
            assert report.added == len(DOCS)
            yield Env(home, upstream)
        finally:
            close_all()
            get_settings.cache_clear()
            get_server_settings.cache_clear()


@pytest.fixture
def llm(env: Env) -> ScriptedLLM:
    """The module's scripted upstream, emptied for this test."""
    reset(env.llm)
    return env.llm


def _free_socket() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    return sock


@contextmanager
def serve(app: FastAPI, timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` under uvicorn (lifespan on) in a thread; yields its base URL (no trailing slash)."""
    sock = _free_socket()
    port = sock.getsockname()[1]
    config = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=2)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            server.should_exit = True
            raise RuntimeError("zhiwen server failed to start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
        if thread.is_alive():
            server.force_exit = True
            thread.join(5)
        sock.close()


def open_settings(**overrides: Any) -> ServerSettings:
    """Server settings without API keys (``allow_open``), plus ``overrides``."""
    return ServerSettings(allow_open=True, **overrides)


@pytest.fixture(scope="module")
def base_url(env: Env) -> Iterator[str]:
    """A zhiwen server without API keys, default limits, for the whole module."""
    with serve(create_app(open_settings(), start_model=False)) as url:
        yield url


@pytest.fixture
def client(base_url: str) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=base_url, timeout=60) as c:
        yield c


def chat_body(question: str = QUESTION, **extra: Any) -> dict[str, Any]:
    return {"model": KB, "messages": [{"role": "user", "content": question}], **extra}


def assert_error(resp: httpx.Response, status: int, *fragments: str) -> dict[str, Any]:
    """``resp`` is ``status`` with OpenAI's error body whose message holds every fragment."""
    assert resp.status_code == status, resp.text
    body = resp.json()
    assert set(body) == {"error"}, body
    error = body["error"]
    assert set(error) == {"message", "type", "param", "code"}, error
    assert isinstance(error["message"], str) and error["message"]
    assert isinstance(error["type"], str) and error["type"]
    for fragment in fragments:
        assert fragment.lower() in error["message"].lower(), error
    return dict(error)


def sse_events(lines: Iterator[str]) -> Iterator[str]:
    """The ``data:`` payloads of an SSE stream, in order (comments and blank lines skipped)."""
    for line in lines:
        if line.startswith("data:"):
            yield line[5:].strip()


def milvus_collections(uri: str) -> list[str]:
    """The collections on the Milvus server at ``uri`` (a client of its own)."""
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=10)
    try:
        return list(client.list_collections())
    finally:
        client.close()


class Kit:
    """Constants and helpers for the server tests (the ``kit`` fixture)."""

    KB = KB
    QUESTION, ANSWER, QUESTION_2, ANSWER_2 = QUESTION, ANSWER, QUESTION_2, ANSWER_2
    DOCS = DOCS
    Script = Script
    serve = staticmethod(serve)
    open_settings = staticmethod(open_settings)
    chat_body = staticmethod(chat_body)
    assert_error = staticmethod(assert_error)
    sse_events = staticmethod(sse_events)
    wait_for_http = staticmethod(wait_for_http)
    milvus_collections = staticmethod(milvus_collections)
    reset = staticmethod(reset)


@pytest.fixture(scope="session")
def kit() -> type[Kit]:
    return Kit


def _pg_binary(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    candidates = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return candidates[-1] if candidates else None


@dataclass
class PostgresCluster:
    """A throw-away PostgreSQL cluster on 127.0.0.1 (trust auth, fsync off) that a test may stop and start."""

    base: Path
    port: int
    pg_ctl: str
    as_user: list[str]

    @property
    def url(self) -> str:
        return f"postgresql://zhiwen@127.0.0.1:{self.port}/postgres"

    def _ctl(self, *args: str, check: bool = True) -> None:
        subprocess.run([*self.as_user, self.pg_ctl, "-D", str(self.base / "data"), *args],
                       capture_output=True, timeout=120, check=check)  # fmt: skip

    def start(self) -> None:
        opts = f"-p {self.port} -c listen_addresses=127.0.0.1 -k {self.base} -c fsync=off"
        self._ctl("-l", str(self.base / "log"), "-o", opts, "-w", "start")

    def stop(self, mode: str = "fast") -> None:
        self._ctl("-m", mode, "-w", "stop", check=False)


@pytest.fixture(scope="module")
def postgres() -> Iterator[PostgresCluster]:
    initdb, pg_ctl = _pg_binary("initdb"), _pg_binary("pg_ctl")
    if not initdb or not pg_ctl:
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not installed")
    as_user: list[str] = []
    base = Path(tempfile.mkdtemp(prefix="zhiwen-pg-"))
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        if shutil.which("runuser") is None:
            pytest.skip("running as root without runuser: cannot start PostgreSQL as another user")
        as_user = ["runuser", "-u", "postgres", "--"]
        shutil.chown(base, "postgres", "postgres")
    base.chmod(0o755)
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()
    subprocess.run([*as_user, initdb, "-D", str(base / "data"), "-A", "trust", "-U", "zhiwen", "-E", "UTF8",
                    "--no-sync"], check=True, capture_output=True, timeout=120)  # fmt: skip
    cluster = PostgresCluster(base, port, pg_ctl, as_user)
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop("immediate")
        shutil.rmtree(base, ignore_errors=True)


@pytest.fixture(scope="module")
def postgres_url(postgres: PostgresCluster) -> str:
    return postgres.url


@pytest.fixture(scope="module")
def milvus_uri() -> Iterator[str]:
    """A `milvus-lite server` subprocess on a free loopback port, always stopped at the end."""
    command = shutil.which("milvus-lite") or str(Path(sys.executable).parent / "milvus-lite")
    if not Path(command).exists():
        pytest.skip("the milvus-lite command is not installed (pip install -e '.[milvus]')")
    base = Path(tempfile.mkdtemp(prefix="zhiwen-milvus-"))
    sock = _free_socket()
    port = sock.getsockname()[1]
    sock.close()
    log = (base / "log").open("wb")
    proc = subprocess.Popen([command, "server", "--data-dir", str(base / "data"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    uri = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            if proc.poll() is not None:
                pytest.fail(
                    f"milvus-lite server exited: {(base / 'log').read_text(errors='replace')[-2000:]}"
                )
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "milvus-lite server did not listen within 60 s"
                time.sleep(0.2)
        assert milvus_collections(uri) == []
        yield uri
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=15)
        log.close()
        shutil.rmtree(base, ignore_errors=True)
