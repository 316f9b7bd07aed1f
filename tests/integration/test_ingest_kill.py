"""SIGKILL a real ``zhiwen ingest`` mid-run: every document is then fully visible or absent.

The ingest runs as a subprocess with the real e5 embedder; it is killed right after its first commit.
The knowledge base is then opened in this process and checked, and the ingest re-run to completion.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from marker_corpus import keyword, marker_documents

from zhiwen.memory.kb import KnowledgeBase, kb_dir
from zhiwen.tools.embeddings import E5Embedder

pytestmark = pytest.mark.integration

N_DOCS = 60
KB = "k"


def write_corpus(folder: Path) -> None:
    folder.mkdir()
    for name, text in marker_documents(N_DOCS).items():
        (folder / name).write_text(text, encoding="utf-8")


def committed_documents(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        try:
            return int(con.execute("SELECT COUNT(*) FROM documents").fetchone()[0])
        finally:
            con.close()
    except sqlite3.Error:
        return 0  # not created yet


def run_ingest(folder: Path, env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "zhiwen.cli", "ingest", str(folder), "--kb", KB],
        env=env, capture_output=True, text=True, timeout=timeout, check=False,
    )  # fmt: skip


_VERIFY = """
import json, sys
from pathlib import Path
from zhiwen.memory.kb import KnowledgeBase
from zhiwen.tools.embeddings import E5Embedder
kb = KnowledgeBase.open(Path(sys.argv[1]), sys.argv[2], E5Embedder())
keywords = json.loads(sys.argv[3])
docs = {Path(d.source).stem: d for d in kb.documents()}
chunk_ids = kb.catalog.all_chunk_ids()
found = {stem: [h.doc_id for h in kb.search(kw, top_k=1, mode="bm25")] for stem, kw in keywords.items()}
print(json.dumps({
    "docs": sorted(docs),
    "chunks": kb.catalog.counts()[1],
    "n_chunks_sum": sum(d.n_chunks for d in docs.values()),
    "catalog_equals_vectors": chunk_ids == kb.vectors.all_ids(),
    "keyword_misses": sorted(s for s, ids in found.items() if ids != [docs[s].doc_id]),
}))
"""


def test_killed_ingest_leaves_whole_documents(tmp_path: Path, e5: E5Embedder) -> None:
    folder = tmp_path / "docs"
    write_corpus(folder)
    home = tmp_path / "home"
    env = {**os.environ, "ZHIWEN_HOME": str(home)}
    db = kb_dir(home / "kbs", KB) / "kb.sqlite"

    log = tmp_path / "ingest.log"  # a file, not a pipe: a full pipe would stall the child
    with log.open("w") as stderr:
        proc = subprocess.Popen(
            [sys.executable, "-m", "zhiwen.cli", "ingest", str(folder), "--kb", KB],
            env=env, stdout=subprocess.DEVNULL, stderr=stderr,
        )  # fmt: skip
    try:
        deadline = time.monotonic() + 90
        while committed_documents(db) == 0:
            assert proc.poll() is None, f"ingest ended before its first commit: {log.read_text()}"
            assert time.monotonic() < deadline, "no commit within 90 s"
            time.sleep(0.02)
        still_running = proc.poll() is None
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert still_running, "the ingest finished before it could be killed; the corpus is too small"
    assert proc.returncode == -9

    # --- the state a kill leaves behind, read in this process -------------------------------------
    kb = KnowledgeBase.open(home / "kbs", KB, e5)
    try:
        docs = kb.documents()
        assert 0 < len(docs) < N_DOCS, "killed after the first group and before the last"
        vector_ids = kb.vectors.all_ids()
        committed = {d.doc_id for d in docs}
        for d in docs:
            chunks = kb.catalog.chunk_ids_of(d.doc_id)
            assert len(chunks) == d.n_chunks > 0, d.source
            assert set(chunks) <= vector_ids, f"{d.source}: committed chunks missing from Chroma"
            hits = kb.search(keyword(int(Path(d.source).stem[3:])), top_k=3, mode="bm25")
            assert hits and hits[0].doc_id == d.doc_id, d.source
        assert sum(d.n_chunks for d in docs) == kb.catalog.counts()[1]
        committed_stems = {Path(d.source).stem for d in docs}
        missing = [i for i in range(N_DOCS) if f"doc{i:02d}" not in committed_stems]
        assert missing
        for i in missing:  # queries aimed at documents that never committed
            for mode in ("hybrid", "bm25", "dense"):
                for hit in kb.search(f"{keyword(i)} procedure", top_k=10, mode=mode):  # type: ignore[arg-type]
                    assert hit.doc_id in committed, f"{mode} returned a chunk of an uncommitted document"
    finally:
        kb.close()

    # --- a second ingest completes the job --------------------------------------------------------
    done = run_ingest(folder, env, timeout=240)
    assert done.returncode == 0, done.stderr
    assert f"{N_DOCS - len(docs)} added, 0 replaced, {len(docs)} unchanged" in done.stdout

    keywords = {f"doc{i:02d}": keyword(i) for i in range(N_DOCS)}
    verify = subprocess.run(
        [sys.executable, "-c", _VERIFY, str(home / "kbs"), KB, json.dumps(keywords)],
        env=env, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert verify.returncode == 0, verify.stderr
    state = json.loads(verify.stdout)
    assert state["docs"] == sorted(keywords)
    assert state["chunks"] == state["n_chunks_sum"] >= N_DOCS
    assert state["catalog_equals_vectors"], "orphan vectors of the killed run were swept"
    assert state["keyword_misses"] == []
