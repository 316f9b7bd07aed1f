"""Replicas that share nothing but PostgreSQL and Milvus: the deployment of the README's "More than one machine".

Two ``zhiwen serve`` processes, each with a ``ZHIWEN_HOME`` of its own (no shared disk), on a real PostgreSQL
cluster (catalog, jobs, threads, limits) and a real ``milvus-lite server`` (both retrieval legs), with the
real e5 embedder and the module's scripted LLM. A knowledge base made and filled through one replica is
listed, searched and chatted with through the other; a replica killed with SIGKILL in the middle of an ingest
leaves a knowledge base that the other searches correctly, and the next ingest, through the other, completes.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import httpx
import psycopg
import pytest
from marker_corpus import keyword, marker_documents

from zhiwen.memory.catalog_pg import close_pools
from zhiwen.memory.registry import close_all
from zhiwen.settings import get_settings

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]

KB = "shared-catalog"
N_DOCS = 80


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def _replica(
    kit: type[Kit], home: Path, extra: dict[str, str], wait: bool = True
) -> Iterator[tuple[str, subprocess.Popen[bytes]]]:
    """A ``zhiwen serve`` process with its own ``ZHIWEN_HOME``; yields its URL and process (once it is live,
    unless ``wait`` is false); stopped at the end."""
    port = _free_port()
    env = {
        **os.environ,
        "ZHIWEN_HOME": str(home),
        "ZHIWEN_ALLOW_OPEN": "true",
        "ZHIWEN_GC_FREEZE": "false",
        **extra,
    }
    log = home.with_suffix(".log")
    home.mkdir(parents=True, exist_ok=True)
    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "zhiwen.cli", "serve", "--port", str(port)],
                                env=env, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
        try:
            if wait:
                kit.wait_for_http(f"http://127.0.0.1:{port}/live", proc, f"replica {home.name}", 120, log)
            yield f"http://127.0.0.1:{port}", proc
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


@pytest.fixture
def shared(env: Env, postgres_url: str, milvus_uri: str) -> Iterator[dict[str, str]]:
    """The settings both replicas share; the database emptied of knowledge bases first."""
    with psycopg.connect(postgres_url, autocommit=True) as conn:
        for table in ("zhiwen_kb_chunks", "zhiwen_kb_flags", "zhiwen_kb_chunking", "zhiwen_kb_documents",
                      "zhiwen_kb_meta", "zhiwen_kbs", "zhiwen_jobs"):  # fmt: skip
            conn.execute(f"DROP TABLE IF EXISTS {table}")
    close_pools()
    yield {"ZHIWEN_DATABASE_URL": postgres_url, "ZHIWEN_MILVUS_URI": milvus_uri}
    close_all()
    close_pools()


def _upload(api: httpx.Client, files: dict[str, str], wait: bool = True) -> dict[str, Any]:
    resp = api.post(
        f"/v1/kbs/{KB}/documents?wait={'true' if wait else 'false'}",
        files=[("files", (name, text.encode(), "text/plain")) for name, text in files.items()],
    )
    assert resp.status_code in (201, 202), resp.text
    return dict(resp.json())


def _top(api: httpx.Client, query: str, mode: str, top_k: int = 1) -> list[dict[str, Any]]:
    resp = api.post(f"/v1/kbs/{KB}/search", json={"query": query, "mode": mode, "top_k": top_k})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["data"])


def _documents(api: httpx.Client) -> dict[str, str]:
    """File name -> document id, as the replica lists them."""
    resp = api.get(f"/v1/kbs/{KB}/documents")
    assert resp.status_code == 200, resp.text
    return {d["source"].rsplit("/", 1)[-1]: d["id"] for d in resp.json()["data"]}


def test_a_knowledge_base_made_through_one_replica_serves_on_the_other_without_a_shared_disk(
    shared: dict[str, str], llm: ScriptedLLM, kit: type[Kit], tmp_path: Path
) -> None:
    with (
        _replica(kit, tmp_path / "one", shared) as (one, _),
        _replica(kit, tmp_path / "two", shared) as (two, _),
        httpx.Client(base_url=one, timeout=120) as a,
        httpx.Client(base_url=two, timeout=120) as b,
    ):
        assert a.post("/v1/kbs", json={"name": KB}).status_code == 201
        assert b.post("/v1/kbs", json={"name": KB}).status_code == 409, "made once, for both"
        assert KB in {k["name"] for k in b.get("/v1/kbs").json()["data"]}
        _upload(a, {n: kit.DOCS[n] for n in ("gold-card.md", "wire.txt", "金卡.md")})
        docs = _documents(b)
        assert set(docs) == {"gold-card.md", "wire.txt", "金卡.md"}
        for mode in ("hybrid", "bm25", "dense"):
            assert _top(b, kit.QUESTION, mode)[0]["doc_id"] == docs["gold-card.md"], mode
        assert _top(b, "金卡年费", "bm25")[0]["doc_id"] == docs["金卡.md"]

        # A real knowledge-base turn through the other replica: retrieval there, the answer cited.
        llm.enqueue(kit.Script(kit.ANSWER))
        turn = b.post("/v1/chat/completions", json={**kit.chat_body(), "model": KB})
        assert turn.status_code == 200, turn.text
        body = turn.json()
        assert body["quality"]["verdict"] == "pass", body
        assert "300 yuan" in body["choices"][0]["message"]["content"]
        assert body["sources"][0]["doc_id"] == docs["gold-card.md"], body["sources"]
        assert kit.QUESTION in llm.requests[-1]["messages"][-1]["content"]

        # A job made through one replica is reported by the other (jobs are in the database).
        job = _upload(a, {"branch-hours.txt": "Branch opening hours: 9 to 17 on weekdays, zqxhoursmarker."},
                      wait=False)  # fmt: skip
        deadline = time.monotonic() + 120
        while (seen := b.get(f"/v1/kbs/{KB}/jobs/{job['id']}")).json().get("status") != "done":
            assert seen.status_code == 200, seen.text
            assert time.monotonic() < deadline, seen.text
            time.sleep(0.3)
        assert _top(b, "zqxhoursmarker", "bm25")[0]["doc_id"] == _documents(b)["branch-hours.txt"]

        # A deletion through the second replica reaches the first at once.
        assert b.delete(f"/v1/kbs/{KB}/documents/{docs['gold-card.md']}").status_code == 204
        for mode in ("bm25", "dense"):
            assert all(h["doc_id"] != docs["gold-card.md"] for h in _top(a, kit.QUESTION, mode, 5)), mode

    # Neither replica keeps a catalog on its disk: the database holds it.
    assert not list(tmp_path.glob("*/kbs/*/kb.sqlite")), "a catalog was written to a replica's disk"
    with psycopg.connect(shared["ZHIWEN_DATABASE_URL"]) as conn:
        assert conn.execute("SELECT name FROM zhiwen_kbs").fetchall() == [(KB,)]


def test_a_replica_killed_mid_ingest_leaves_a_base_the_other_searches_and_fills(
    shared: dict[str, str], kit: type[Kit], tmp_path: Path
) -> None:
    files = marker_documents(N_DOCS)
    url = shared["ZHIWEN_DATABASE_URL"]
    with (
        _replica(kit, tmp_path / "doomed", shared) as (doomed, proc),
        httpx.Client(base_url=doomed, timeout=120) as d,
    ):
        assert d.post("/v1/kbs", json={"name": KB}).status_code == 201
        _upload(d, files, wait=False)
        deadline = time.monotonic() + 300
        with psycopg.connect(url, autocommit=True) as conn:
            while True:
                committed = conn.execute("SELECT COUNT(*) FROM zhiwen_kb_documents").fetchone()
                if committed and committed[0] > 0:
                    break
                assert proc.poll() is None and time.monotonic() < deadline, "the ingest never committed"
                time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    with psycopg.connect(url) as conn:
        at_kill = int(conn.execute("SELECT COUNT(*) FROM zhiwen_kb_documents").fetchone()[0])  # type: ignore[index]
    assert 0 < at_kill < N_DOCS, f"killed after {at_kill} of {N_DOCS} documents: not mid-ingest"

    with (
        _replica(kit, tmp_path / "survivor", shared) as (survivor, _),
        httpx.Client(base_url=survivor, timeout=300) as s,
    ):
        docs = _documents(s)
        assert len(docs) == at_kill
        # Every committed document is whole and found; nothing of the others is ever returned.
        for name, doc_id in docs.items():
            i = int(name[3:5])
            assert _top(s, keyword(i), "bm25")[0]["doc_id"] == doc_id, name
        for i in range(N_DOCS):
            if f"doc{i:02d}.txt" not in docs:
                assert all(h["doc_id"] in docs.values() for h in _top(s, keyword(i), "hybrid", 5))
        # The dead replica's write lock went with its connection: the next ingest runs and completes.
        report = _upload(s, files)
        # The same files through another replica are the same documents: the committed ones unchanged.
        assert (report["added"], report["unchanged"]) == (N_DOCS - at_kill, at_kill), report
        docs = _documents(s)
        assert len(docs) == N_DOCS
        for i in (0, N_DOCS // 2, N_DOCS - 1):
            assert _top(s, keyword(i), "bm25")[0]["doc_id"] == docs[f"doc{i:02d}.txt"]
        stats = next(k for k in s.get("/v1/kbs").json()["data"] if k["name"] == KB)
    # The killed ingest's rows in Milvus were swept: the server holds exactly the catalog's chunks.
    with psycopg.connect(url) as conn:
        catalog_chunks = conn.execute("SELECT COUNT(*) FROM zhiwen_kb_chunks").fetchone()[0]  # type: ignore[index]
    assert stats["chunks"] == catalog_chunks
    from pymilvus import MilvusClient

    collection = _collection_of(url)
    client = MilvusClient(uri=shared["ZHIWEN_MILVUS_URI"], timeout=60)  # a busy 2-core CI machine is slow
    try:
        rows = client.query(collection, filter="", output_fields=["count(*)"], consistency_level="Strong")
    finally:
        client.close()
    assert rows[0]["count(*)"] == catalog_chunks
    get_settings.cache_clear()


def _collection_of(url: str) -> str:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT value FROM zhiwen_kb_meta WHERE key = 'milvus_collection'").fetchone()  # fmt: skip
    assert row is not None
    return str(row[0])


def test_replicas_started_together_on_a_new_database_all_start(
    shared: dict[str, str], kit: type[Kit], tmp_path: Path
) -> None:
    """Each store creates its tables at start-up: replicas starting at once used to race (one of them failed
    on the checkpointer's duplicate migration row and never started)."""
    with psycopg.connect(shared["ZHIWEN_DATABASE_URL"], autocommit=True) as conn:
        tables = [r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")]
        for table in tables:
            conn.execute(f'DROP TABLE IF EXISTS "{table}" CASCADE')
    with contextlib.ExitStack() as stack:
        started = [
            stack.enter_context(_replica(kit, tmp_path / f"r{i}", shared, wait=False)) for i in range(3)
        ]
        for i, (url, proc) in enumerate(started):
            kit.wait_for_http(
                f"{url}/ready", proc, f"replica r{i}", 180, (tmp_path / f"r{i}").with_suffix(".log")
            )
        assert all(proc.poll() is None for _, proc in started)
