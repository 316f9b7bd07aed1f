"""The Milvus backend on embedded Milvus Lite (a temporary ``.db``): what the KB contract does not cover.

Ingest, replace, delete and drop must leave Milvus holding exactly the catalog's chunks; the BM25 field must
split into zhiwen's own tokens; bad settings and an unreachable server are one-line errors.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fakes import HashEmbedder
from pydantic import ValidationError

from zhiwen.errors import StoreUnavailable, ZhiwenError
from zhiwen.memory.ingest import ingest_paths
from zhiwen.memory.kb import KnowledgeBase, delete_kb, kb_exists
from zhiwen.retrieval.milvus import MilvusBackend, _client, terms_text
from zhiwen.settings import Settings, get_settings
from zhiwen.tools.tokenize import tokenize

DOCS = {
    "fee.txt": "金卡信用卡的年费为每年三百元人民币，首年免收年费。The gold card's annual fee is 300 yuan.",
    "wire.txt": "International wire transfers take three business days; 境外汇款需要三到五个工作日。",
    "code.txt": "Error code XQ-7731 means the transaction was declined by the fraud filter.",
}


@pytest.fixture
def milvus(zhiwen_home: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setenv("ZHIWEN_MILVUS_URI", str(zhiwen_home / "milvus.db"))
    get_settings.cache_clear()
    yield zhiwen_home
    get_settings.cache_clear()


def _docs(folder: Path) -> Path:
    folder.mkdir(exist_ok=True)
    for name, text in DOCS.items():
        (folder / name).write_text(text, encoding="utf-8")
    return folder


def _bm25_docs(kb: KnowledgeBase, query: str) -> list[str]:
    return [Path(h.metadata["source"]).name for h in kb.search(query, top_k=5, mode="bm25")]


def test_milvus_lites_analyzer_splits_the_terms_into_zhiwens_tokens() -> None:
    from milvus_lite.analyzer.factory import create_analyzer

    analyzer = create_analyzer({"tokenizer": "standard"})  # what the backend falls back to on Milvus Lite
    for text in [*DOCS.values(), "ＡＴＭ机２０２４年 Ünïcode café naïve", "个人住房贷款的最长期限为三十年"]:
        tokens = tokenize(text)
        assert tokens and analyzer.tokenize(terms_text(tokens)) == tokens


def test_terms_text_fits_a_varchar_at_a_token_boundary() -> None:
    tokens = ["年费"] * 20_000  # 6 bytes each plus spaces
    text = terms_text(tokens)
    assert len(text.encode()) <= 65_535 and set(text.split(" ")) == {"年费"}


def test_ingest_replace_delete_and_drop_keep_milvus_equal_to_the_catalog(
    milvus: Path, tmp_path: Path
) -> None:
    folder = _docs(tmp_path / "docs")
    root = get_settings().kb_root
    kb = KnowledgeBase.open(root, "milvus-kb", HashEmbedder(), create=True)
    assert isinstance(kb.backend, MilvusBackend)
    assert ingest_paths(kb, [folder]).added == len(DOCS)
    assert kb.backend.all_ids() == kb.catalog.all_chunk_ids() and kb.backend.count() == kb.catalog.counts()[1]
    assert not (kb.path / "chroma").exists() and not (kb.path / "bm25").exists(), "both legs live in Milvus"
    assert _bm25_docs(kb, "XQ-7731")[0] == "code.txt"
    assert _bm25_docs(kb, "年费")[0] == "fee.txt"
    hit = kb.search("wire transfer days", top_k=1, mode="hybrid")[0]
    assert Path(hit.metadata["source"]).name == "wire.txt" and set(hit.legs) == {"bm25", "dense"}

    # Re-ingest a changed document: its old chunks leave Milvus, the new text is found.
    old = set(kb.catalog.chunk_ids_of(hit.doc_id))
    (folder / "wire.txt").write_text("Wire transfers now arrive within one business day.", encoding="utf-8")
    report = ingest_paths(kb, [folder])
    assert (report.replaced, report.unchanged) == (1, 2)
    assert not old & kb.backend.all_ids()
    assert kb.backend.all_ids() == kb.catalog.all_chunk_ids()
    assert "wire.txt" not in _bm25_docs(kb, "International")
    assert _bm25_docs(kb, "arrive")[0] == "wire.txt"

    # Delete a document: gone from both legs.
    kb.delete_document(str(folder / "code.txt"))
    assert "code.txt" not in _bm25_docs(kb, "XQ-7731 fraud")
    assert all(
        Path(h.metadata["source"]).name != "code.txt" for h in kb.search("fraud", top_k=10, mode="dense")
    )
    assert kb.backend.all_ids() == kb.catalog.all_chunk_ids()

    # Drop the knowledge base: its collection goes with it.
    collection = kb.server_collection
    assert collection in _client().list_collections()
    kb.close()
    delete_kb(root, "milvus-kb")
    assert collection not in _client().list_collections()
    assert not (root / "milvus-kb").exists()


def test_orphans_of_an_interrupted_ingest_are_never_returned_and_are_swept(
    milvus: Path, tmp_path: Path
) -> None:
    kb = KnowledgeBase.open(get_settings().kb_root, "orphans", HashEmbedder(), create=True)
    ingest_paths(kb, [_docs(tmp_path / "docs")])
    ghost = ["ghost-1", "ghost-2"]
    vectors = np.asarray(HashEmbedder().embed_passages(["orbitplat"] * 2))
    kb.backend.add(ghost, ["ghost-doc"] * 2, [["orbitplat"]] * 2, vectors)  # written, never committed
    assert set(ghost) <= kb.backend.all_ids()
    assert {h.id for h in kb.backend.bm25(["orbitplat"], 5)} == set(ghost), "the leg finds them"
    assert kb.search("orbitplat", mode="bm25") == []
    assert kb.sweep_orphan_vectors() == 2
    assert kb.backend.all_ids() == kb.catalog.all_chunk_ids()
    kb.close()


def test_a_knowledge_base_stays_on_the_backend_it_was_made_with(
    zhiwen_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = get_settings().kb_root
    KnowledgeBase.open(root, "made-local", HashEmbedder(), create=True).close()
    monkeypatch.setenv("ZHIWEN_MILVUS_URI", str(zhiwen_home / "milvus.db"))
    get_settings.cache_clear()
    with pytest.raises(
        ZhiwenError, match=r"'made-local' keeps its chunks in the embedded stores.*unset ZHIWEN_MILVUS_URI"
    ):
        KnowledgeBase.open(root, "made-local", HashEmbedder())
    KnowledgeBase.open(root, "made-in-milvus", HashEmbedder(), create=True).close()
    monkeypatch.delenv("ZHIWEN_MILVUS_URI")
    get_settings.cache_clear()
    with pytest.raises(
        ZhiwenError, match=r"'made-in-milvus' keeps its chunks in Milvus.*set ZHIWEN_MILVUS_URI"
    ):
        KnowledgeBase.open(root, "made-in-milvus", HashEmbedder())


@pytest.mark.parametrize("uri", ["milvus.sqlite", "folder/", "ftp://host/x.db", "http://"])
def test_a_milvus_uri_that_is_neither_a_db_path_nor_a_url_is_refused(uri: str) -> None:
    with pytest.raises(ValidationError, match="milvus_uri"):
        Settings(milvus_uri=uri)


def test_an_unreachable_milvus_is_a_one_line_error_naming_it(
    zhiwen_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again: nothing listens there
    uri = f"http://zhiwen:s3cret@127.0.0.1:{port}"
    monkeypatch.setenv("ZHIWEN_MILVUS_URI", uri)
    get_settings.cache_clear()
    started = time.monotonic()
    with pytest.raises(StoreUnavailable) as caught:  # a 503 from the HTTP server
        KnowledgeBase.open(get_settings().kb_root, "unreachable", HashEmbedder(), create=True)
    message = str(caught.value)
    assert (
        message.startswith(f"cannot reach Milvus at http://zhiwen:***@127.0.0.1:{port}")
        and "\n" not in message
    )
    assert "s3cret" not in message
    assert time.monotonic() - started < 15
    assert not kb_exists(get_settings().kb_root, "unreachable"), "a base made and not opened is removed again"
