"""Two replicas on one real Milvus server: `milvus-lite server` started on loopback for the test.

A document uploaded through one `zhiwen serve` replica is found through the other and by another process;
both legs live in the server (nothing under the knowledge base's folder but its catalog); a deletion through
one replica is seen by the other; dropping the knowledge base drops its collection. The catalog stays in the
shared ``ZHIWEN_HOME`` in this slice (issue 19 moves it to PostgreSQL).
"""

from __future__ import annotations

import json
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

from zhiwen.memory.registry import close_all
from zhiwen.server.app import create_app
from zhiwen.settings import get_settings

if TYPE_CHECKING:
    from conftest import Env, Kit

pytestmark = [pytest.mark.integration]

KB = "shared-in-milvus"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _milvus_collections(uri: str) -> list[str]:
    from pymilvus import MilvusClient

    client = MilvusClient(uri=uri, timeout=10)
    try:
        return list(client.list_collections())
    finally:
        client.close()


@pytest.fixture(scope="module")
def milvus_uri() -> Iterator[str]:
    """A `milvus-lite server` subprocess on a free loopback port, always stopped at the end."""
    command = shutil.which("milvus-lite") or str(Path(sys.executable).parent / "milvus-lite")
    if not Path(command).exists():
        pytest.skip("the milvus-lite command is not installed (pip install -e '.[milvus]')")
    base = Path(tempfile.mkdtemp(prefix="zhiwen-milvus-"))
    port = _free_port()
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
        assert _milvus_collections(uri) == []
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


def _upload(api: httpx.Client, name: str, text: str) -> dict[str, Any]:
    resp = api.post(
        f"/v1/kbs/{KB}/documents?wait=true", files=[("files", (name, text.encode(), "text/plain"))]
    )
    assert resp.status_code == 201, resp.text
    return dict(resp.json())


def _search(api: httpx.Client, query: str, mode: str = "hybrid") -> list[dict[str, Any]]:
    resp = api.post(f"/v1/kbs/{KB}/search", json={"query": query, "mode": mode, "top_k": 5})
    assert resp.status_code == 200, resp.text
    return list(resp.json()["data"])


_OTHER_PROCESS = """
import json, sys
from zhiwen import service
kb = service.open_kb(sys.argv[1])
print(json.dumps({m: [h.doc_id for h in kb.search(q, top_k=3, mode=m)] for q in sys.argv[2:] for m in ("bm25", "dense")}))
"""


def test_a_document_uploaded_through_one_replica_is_found_through_the_other(
    env: Env, kit: type[Kit], milvus_uri: str, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("ZHIWEN_HOME", str(home))
    monkeypatch.setenv("ZHIWEN_MILVUS_URI", milvus_uri)
    close_all()
    get_settings.cache_clear()
    settings = kit.open_settings(gc_freeze=False)
    try:
        with (
            kit.serve(create_app(settings, start_model=False)) as one,
            kit.serve(create_app(settings, start_model=False)) as two,
            httpx.Client(base_url=one, timeout=120) as a,
            httpx.Client(base_url=two, timeout=120) as b,
        ):
            assert a.post("/v1/kbs", json={"name": KB}).status_code == 201
            assert _upload(a, "gold-card.md", kit.DOCS["gold-card.md"])["added"] == 1
            assert _upload(a, "wire.txt", kit.DOCS["wire.txt"])["added"] == 1
            assert _upload(a, "金卡.md", kit.DOCS["金卡.md"])["added"] == 1
            docs = {
                d["source"].rsplit("/", 1)[-1]: d["id"]
                for d in b.get(f"/v1/kbs/{KB}/documents").json()["data"]
            }
            gold, wire = docs["gold-card.md"], docs["wire.txt"]
            for mode in ("hybrid", "bm25", "dense"):
                assert _search(b, kit.QUESTION, mode)[0]["doc_id"] == gold, mode
            assert _search(b, "金卡年费", "bm25")[0]["doc_id"] == docs["金卡.md"]

            # Both legs are in the server: the knowledge base's folder holds only its catalog.
            kb_folder = next(p for p in (home / "kbs").iterdir() if (p / "kb.sqlite").exists())
            assert not (kb_folder / "chroma").exists() and not (kb_folder / "bm25").exists()
            from zhiwen import service

            collection = service.open_kb(KB).server_collection
            assert collection in _milvus_collections(milvus_uri)

            # Another process, with its own Milvus client, reads the same hits from the server.
            proc = subprocess.run(
                [sys.executable, "-c", _OTHER_PROCESS, KB, kit.QUESTION, kit.QUESTION_2],
                capture_output=True, text=True, timeout=180, check=False, env=os.environ.copy(),
            )  # fmt: skip
            assert proc.returncode == 0, proc.stderr[-2000:]
            theirs = json.loads(proc.stdout.strip().splitlines()[-1])
            assert theirs["bm25"][0] == theirs["dense"][0] == wire  # the last query: the wire transfer

            # A deletion through the second replica is seen by the first.
            assert b.delete(f"/v1/kbs/{KB}/documents/{gold}").status_code == 204
            assert all(h["doc_id"] != gold for h in _search(a, kit.QUESTION, "bm25"))
            assert all(h["doc_id"] != gold for h in _search(a, kit.QUESTION, "dense"))

            assert a.delete(f"/v1/kbs/{KB}").status_code == 204
            assert collection not in _milvus_collections(milvus_uri), "dropping it drops its collection"
    finally:
        close_all()
        get_settings.cache_clear()
