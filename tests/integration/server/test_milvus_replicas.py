"""Two replicas on one real Milvus server: `milvus-lite server` started on loopback for the test.

A document uploaded through one `zhiwen serve` replica is found through the other and by another process;
both legs live in the server (nothing under the knowledge base's folder but its catalog); a deletion through
one replica is seen by the other; dropping the knowledge base drops its collection. The catalog stays in the
shared ``ZHIWEN_HOME`` in this slice (issue 19 moves it to PostgreSQL).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
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
            assert collection in kit.milvus_collections(milvus_uri)

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
            assert collection not in kit.milvus_collections(milvus_uri), "dropping it drops its collection"
    finally:
        close_all()
        get_settings.cache_clear()
