"""Replicas that share only the stores: a real PostgreSQL checkpointer and a real Chroma server.

PostgreSQL is started from the machine's ``initdb``/``pg_ctl`` (skipped, with the reason, where they are
missing); Chroma with the ``chroma run`` command that ships in the chromadb package.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import pytest

from zhiwen import service
from zhiwen.memory.registry import close_all
from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings
from zhiwen.settings import get_settings

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_two_replicas_share_threads_through_postgres(
    env: Env, llm: ScriptedLLM, kit: type[Kit], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZHIWEN_CHECKPOINT_URL", postgres_url)
    settings = kit.open_settings(gc_freeze=False)
    with (
        kit.serve(create_app(settings, start_model=False)) as one,
        kit.serve(create_app(settings, start_model=False)) as two,
        httpx.Client(base_url=one, timeout=60) as a,
        httpx.Client(base_url=two, timeout=60) as b,
    ):
        thread = a.post("/v1/threads", json={}).json()["id"]
        first = a.post("/v1/chat/completions", json=kit.chat_body(thread_id=thread))
        assert first.status_code == 200, first.text
        seen = b.get(f"/v1/threads/{thread}")  # the other replica reads the same thread
        assert seen.status_code == 200, seen.text
        assert [m["role"] for m in seen.json()["messages"]] == ["user", "assistant"]

        llm.enqueue(kit.Script(kit.ANSWER_2))
        second = b.post("/v1/chat/completions", json=kit.chat_body(kit.QUESTION_2, thread_id=thread))
        assert second.status_code == 200, second.text
        messages = a.get(f"/v1/threads/{thread}").json()["messages"]
        assert [m["role"] for m in messages] == ["user", "assistant", "user", "assistant"]
        # the second turn was answered with the first one as history, read from PostgreSQL
        sent = llm.requests[-1]["messages"]
        assert any(kit.QUESTION in str(m.get("content")) for m in sent[:-1]), sent
        assert b.delete(f"/v1/threads/{thread}").status_code in (200, 204)
        assert a.get(f"/v1/threads/{thread}").status_code == 404


def test_a_model_answer_with_a_nul_or_a_lone_surrogate_is_stored_on_postgres(
    env: Env, llm: ScriptedLLM, kit: type[Kit], postgres_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL's checkpoint store refused a NUL in the answer: the turn failed with a 502 and its thread
    kept the question without an answer. A lone surrogate failed the shared answer cache's write."""
    monkeypatch.setenv("ZHIWEN_CHECKPOINT_URL", postgres_url)
    monkeypatch.setenv("ZHIWEN_DATABASE_URL", postgres_url)
    monkeypatch.setenv("ZHIWEN_ANSWER_CACHE", "shared")
    get_settings.cache_clear()
    settings = kit.open_settings(gc_freeze=False)
    with (
        kit.serve(create_app(settings, start_model=False)) as url,
        httpx.Client(base_url=url, timeout=60) as c,
    ):
        for odd in ("\x00", "\ud800"):
            thread = c.post("/v1/threads", json={}).json()["id"]
            llm.enqueue(kit.Script(kit.ANSWER.replace("300", f"3{odd}00")))
            turn = c.post("/v1/chat/completions", json=kit.chat_body(thread_id=thread))
            assert turn.status_code == 200, turn.text
            answer = turn.json()["choices"][0]["message"]["content"]
            assert "\x00" not in answer and "\ud800" not in answer
            stored = c.get(f"/v1/threads/{thread}").json()["messages"]
            assert [m["role"] for m in stored] == ["user", "assistant"]
    get_settings.cache_clear()


@pytest.fixture(scope="module")
def chroma_url(kit: type[Kit]) -> Iterator[str]:
    chroma = shutil.which("chroma") or str(Path(sys.executable).parent / "chroma")
    if not Path(chroma).exists():
        pytest.skip("the chroma command (chromadb) is not installed")
    base = Path(tempfile.mkdtemp(prefix="zhiwen-chroma-"))
    port = _free_port()
    log = (base / "log").open("wb")
    proc = subprocess.Popen([chroma, "run", "--path", str(base / "db"), "--host", "127.0.0.1", "--port",
                             str(port)], stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        try:
            kit.wait_for_http(f"{url}/api/v2/heartbeat", proc, "chroma run")
        except pytest.fail.Exception:
            pytest.fail(f"chroma run did not start: {(base / 'log').read_text(errors='replace')[-2000:]}")
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()
        shutil.rmtree(base, ignore_errors=True)


def _kit_docs(kit: type[Kit], tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    for name, text in kit.DOCS.items():
        (docs / name).write_text(text, encoding="utf-8")
    return docs


def _chroma_client(chroma_url: str) -> Any:
    import chromadb

    return chromadb.HttpClient(host="127.0.0.1", port=int(chroma_url.rsplit(":", 1)[1]))


def _server_collections(chroma_url: str) -> set[str]:
    return {c.name for c in _chroma_client(chroma_url).list_collections()}


def test_a_chroma_server_gives_the_same_hits_as_the_embedded_store(
    env: Env, kit: type[Kit], chroma_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    docs = _kit_docs(kit, tmp_path)
    queries = [kit.QUESTION, kit.QUESTION_2, "年费"]
    local = service.ingest("local-copy", [docs])
    assert local.added == len(kit.DOCS)
    expected = {q: [h.id for h in service.open_kb("local-copy").search(q, top_k=3)] for q in queries}
    close_all()

    monkeypatch.setenv("ZHIWEN_CHROMA_URL", chroma_url)
    get_settings.cache_clear()
    try:
        remote = service.ingest("remote", [docs])
        assert remote.added == len(kit.DOCS)
        got = {q: [h.id for h in service.open_kb("remote").search(q, top_k=3)] for q in queries}
        assert got == expected
        collection = service.open_kb("remote").server_collection
        assert collection.startswith("zhiwen-remote-")
        assert collection in _server_collections(chroma_url)  # the vectors live in the server, not on disk
        assert not (get_settings().kb_root / "remote" / "chroma").exists()
    finally:
        close_all()
        get_settings.cache_clear()


def test_two_installs_sharing_a_chroma_server_keep_their_vectors_apart(
    env: Env, kit: type[Kit], chroma_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from zhiwen.memory.registry import drop_kb

    docs = _kit_docs(kit, tmp_path)
    other = tmp_path / "other-docs"
    other.mkdir()
    (other / "notes.md").write_text("# Notes\n\nThe branch opens at nine.\n", encoding="utf-8")
    monkeypatch.setenv("ZHIWEN_CHROMA_URL", chroma_url)

    def install(home: str) -> None:
        close_all()
        monkeypatch.setenv("ZHIWEN_HOME", str(tmp_path / home))
        get_settings.cache_clear()

    try:
        install("first")
        service.ingest("shared-name", [docs])
        first_hits = [h.id for h in service.open_kb("shared-name").search(kit.QUESTION, top_k=3)]
        first = service.open_kb("shared-name").server_collection
        install("second")  # another install, same server, a knowledge base of the same name
        service.ingest("shared-name", [other])  # its orphan sweep used to delete the first one's vectors
        second = service.open_kb("shared-name").server_collection
        assert first != second and {first, second} <= _server_collections(chroma_url)

        install("first")
        kb = service.open_kb("shared-name")
        assert kb.vectors.count() == kb.catalog.counts()[1] > 0
        assert [h.id for h in kb.search(kit.QUESTION, top_k=3)] == first_hits

        drop_kb("shared-name")
        assert first not in _server_collections(chroma_url), "dropping a knowledge base drops its vectors"
        assert second in _server_collections(chroma_url)
    finally:
        close_all()
        get_settings.cache_clear()


def test_a_knowledge_base_made_before_collection_ids_keeps_its_collection(
    env: Env, kit: type[Kit], chroma_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    import sqlite3

    docs = _kit_docs(kit, tmp_path)
    monkeypatch.setenv("ZHIWEN_CHROMA_URL", chroma_url)
    get_settings.cache_clear()
    try:
        service.ingest("older", [docs])
        kb = service.open_kb("older")
        path, hits = kb.path, [h.id for h in kb.search(kit.QUESTION, top_k=3)]
        close_all()
        # As an older zhiwen left it: vectors in the collection named after the folder, no name stored.
        client = _chroma_client(chroma_url)
        with sqlite3.connect(path / "kb.sqlite") as db:
            (stored,) = db.execute("SELECT value FROM meta WHERE key = 'chroma_collection'").fetchone()
            db.execute("DELETE FROM meta WHERE key = 'chroma_collection'")
        old = client.get_collection(stored)
        data = old.get(include=["embeddings", "metadatas"])
        legacy = client.create_collection("zhiwen-older", embedding_function=None,
                                          configuration={"hnsw": {"space": "cosine"}}, metadata=old.metadata)  # fmt: skip
        legacy.add(ids=data["ids"], embeddings=data["embeddings"], metadatas=data["metadatas"])
        client.delete_collection(stored)

        kb = service.open_kb("older")
        assert kb.server_collection == "zhiwen-older"
        assert [h.id for h in kb.search(kit.QUESTION, top_k=3)] == hits
    finally:
        close_all()
        get_settings.cache_clear()


def test_keys_in_the_shared_database_reach_every_replica(
    env: Env, kit: type[Kit], postgres_url: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A key made with `zhiwen keys create` against ZHIWEN_DATABASE_URL (from a machine with another
    ZHIWEN_HOME) works on the replicas at once, and its revocation reaches them within seconds."""
    cli_env = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_")}
    cli_env |= {"ZHIWEN_HOME": str(tmp_path / "admin-laptop"), "ZHIWEN_DATABASE_URL": postgres_url}

    def keys(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "zhiwen.cli", "keys", *args], env=cli_env,
                              capture_output=True, text=True, timeout=60, check=False)  # fmt: skip

    made = keys("create", "--role", "chat", "--kb", kit.KB)
    assert made.returncode == 0, made.stderr
    key = made.stdout.strip().splitlines()[-1]
    key_id = key.split("_")[1]
    monkeypatch.setenv("ZHIWEN_DATABASE_URL", postgres_url)
    get_settings.cache_clear()
    settings = ServerSettings(keys_refresh_seconds=0.5, gc_freeze=False)
    try:
        with (
            kit.serve(create_app(settings, start_model=False)) as one,
            kit.serve(create_app(settings, start_model=False)) as two,
        ):
            headers = {"Authorization": f"Bearer {key}"}
            for url in (one, two):
                models = httpx.get(f"{url}/v1/models", headers=headers, timeout=30)
                assert models.status_code == 200, models.text
                assert [m["id"] for m in models.json()["data"]] == [kit.KB]
            assert not (Path(os.environ["ZHIWEN_HOME"]) / "keys.sqlite").exists() or key_id not in (
                Path(os.environ["ZHIWEN_HOME"]) / "keys.sqlite"
            ).read_bytes().decode("latin-1"), "the key is in the database, not on a replica's disk"
            revoked = keys("revoke", key_id)
            assert revoked.returncode == 0, revoked.stderr
            deadline = time.monotonic() + 5
            for url in (one, two):
                while httpx.get(f"{url}/v1/models", headers=headers, timeout=30).status_code != 401:
                    assert time.monotonic() < deadline, f"{url} still accepts a revoked key"
                    time.sleep(0.1)
    finally:
        get_settings.cache_clear()
