"""Ingestion keeps the catalog, Chroma and BM25 consistent: re-ingest, replace, delete, orphans, staleness."""

from __future__ import annotations

import json
import shutil
import threading
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from fakes import HashEmbedder

from zhiwen.errors import KnowledgeBaseNotFound, ZhiwenError
from zhiwen.memory.catalog import Catalog
from zhiwen.memory.catalogs import catalogs_for
from zhiwen.memory.chunking import CHUNKER_VERSION
from zhiwen.memory.documents import Document
from zhiwen.memory.ingest import ingest_documents, ingest_paths
from zhiwen.memory.kb import KnowledgeBase, delete_kb, kb_dir, list_kbs

FILES = {
    "fees.txt": "金卡信用卡的年费为每年三百元人民币。首年免收年费。",
    "wire.md": "# Wire transfers\n\nInternational wire transfers take three business days. The fee is 15 dollars.",
    "sub/mortgage.txt": "个人住房贷款的最长期限为三十年。首付比例不低于百分之二十。",
    "sub/branch.html": "<html><head><title>Branches</title></head><body><p>Branches open at nine.</p></body></html>",
}


def write_files(folder: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = folder / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def assert_consistent(kb: KnowledgeBase) -> None:
    """Every committed chunk is in Chroma and BM25, and nothing else is."""
    catalog_ids = kb.catalog.all_chunk_ids()
    assert kb.vectors.all_ids() == catalog_ids
    assert set(kb.bm25().ids) == catalog_ids
    _, chunks = kb.catalog.counts()
    assert sum(d.n_chunks for d in kb.documents()) == chunks == len(catalog_ids)
    for d in kb.documents():
        assert len(kb.catalog.chunk_ids_of(d.doc_id)) == d.n_chunks > 0


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    write_files(docs, FILES)
    return docs


@pytest.fixture
def kb(tmp_path: Path, fake_embedder: HashEmbedder) -> Iterator[KnowledgeBase]:
    kb = KnowledgeBase.open(tmp_path / "kbs", "test", fake_embedder, create=True)
    yield kb
    kb.close()


def doc_of(kb: KnowledgeBase, path: Path) -> str:
    (row,) = kb.catalog.find_documents(str(path))
    return row.doc_id


def test_ingest_then_reingest_unchanged(kb: KnowledgeBase, folder: Path, fake_embedder: HashEmbedder) -> None:
    progress: list[tuple[int, int]] = []
    report = ingest_paths(kb, [folder], progress=lambda done, total: progress.append((done, total)))
    assert (report.added, report.replaced, report.unchanged, report.skipped) == (4, 0, 0, [])
    assert report.chunks == kb.catalog.counts()[1] > 0
    assert progress[0] == (0, report.chunks) and progress[-1] == (report.chunks, report.chunks)
    assert report.summary().startswith("4 added, 0 replaced, 0 unchanged")
    assert_consistent(kb)

    generation, calls = kb.catalog.generation, fake_embedder.calls
    again = ingest_paths(kb, [folder])
    assert (again.added, again.replaced, again.unchanged, again.chunks) == (0, 0, 4, 0)
    assert kb.catalog.generation == generation, "nothing committed"
    assert fake_embedder.calls == calls, "nothing embedded"
    assert_consistent(kb)


def _as_if_chunked_by_version_1(kb: KnowledgeBase) -> None:
    assert isinstance(kb.catalog, Catalog)
    with kb.catalog._lock:  # the SQLite catalog's own connection: no writer method forgets a version
        kb.catalog._db.execute("DELETE FROM chunking")


def test_a_newer_chunker_recuts_only_documents_whose_chunks_change(
    kb: KnowledgeBase, folder: Path, fake_embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    import zhiwen.memory.ingest as ingest_module

    lines = "\n".join(f"line {i} of a scanned statement with no sentence ends" for i in range(40))
    (folder / "scan.txt").write_text(lines, encoding="utf-8")
    # Version 1 cut over-long sentences every ``size`` characters: stand in for it with fixed cuts.
    real = ingest_module.chunk_document
    monkeypatch.setattr(ingest_module, "chunk_document", lambda doc: real(doc, size=300, overlap=0))
    ingest_paths(kb, [folder])
    monkeypatch.setattr(ingest_module, "chunk_document", real)
    _as_if_chunked_by_version_1(kb)
    scan = doc_of(kb, folder / "scan.txt")
    old_ids = set(kb.catalog.chunk_ids_of(scan))
    assert kb.catalog.chunker_version(scan) == 1

    calls = fake_embedder.calls
    report = ingest_paths(kb, [folder])
    assert (report.added, report.replaced, report.rechunked, report.unchanged) == (0, 1, 1, 4)
    assert "1 replaced (1 re-chunked by a newer chunker)" in report.summary()
    assert fake_embedder.calls == calls + 1, "only the re-cut document is embedded"
    new_ids = set(kb.catalog.chunk_ids_of(scan))
    assert new_ids == {c.id for c in real(Document(str(folder / "scan.txt"), lines, "scan"))} != old_ids
    assert all(kb.catalog.chunker_version(d.doc_id) == CHUNKER_VERSION for d in kb.documents())
    assert_consistent(kb)

    generation = kb.catalog.generation
    again = ingest_paths(kb, [folder])
    assert (again.replaced, again.rechunked, again.unchanged) == (0, 0, 5)
    assert kb.catalog.generation == generation


def test_changed_file_replaces_its_chunks(kb: KnowledgeBase, folder: Path) -> None:
    ingest_paths(kb, [folder])
    path = folder / "fees.txt"
    doc_id = doc_of(kb, path)
    old_chunks = set(kb.catalog.chunk_ids_of(doc_id))
    old_row = kb.catalog.document(doc_id)
    assert old_row is not None
    assert kb.search("年费", mode="bm25")[0].doc_id == doc_id

    path.write_text("白金卡没有年费。Platinum cards carry no annual charge.", encoding="utf-8")
    report = ingest_paths(kb, [folder])
    assert (report.added, report.replaced, report.unchanged) == (0, 1, 3)
    new_chunks = set(kb.catalog.chunk_ids_of(doc_id))
    assert new_chunks and not new_chunks & old_chunks
    assert not old_chunks & kb.catalog.all_chunk_ids()
    assert not old_chunks & kb.vectors.all_ids()
    new_row = kb.catalog.document(doc_id)
    assert new_row is not None and new_row.sha256 != old_row.sha256 and new_row.n_chunks == len(new_chunks)
    hits = kb.search("platinum", mode="bm25")
    assert hits and hits[0].doc_id == doc_id and "白金卡" in hits[0].text
    assert all("三百元" not in h.text for h in kb.search("三百元人民币", top_k=20))
    assert_consistent(kb)


def test_delete_document_everywhere(kb: KnowledgeBase, folder: Path) -> None:
    ingest_paths(kb, [folder])
    path = folder / "sub" / "mortgage.txt"
    doc_id = doc_of(kb, path)
    chunks = set(kb.catalog.chunk_ids_of(doc_id))
    assert kb.search("住房贷款", mode="bm25")[0].doc_id == doc_id

    removed = kb.delete_document(str(path))
    assert [d.doc_id for d in removed] == [doc_id]
    assert kb.catalog.document(doc_id) is None
    assert not chunks & kb.vectors.all_ids()
    assert not chunks & set(kb.bm25().ids)
    for mode in ("hybrid", "bm25", "dense"):
        assert all(h.doc_id != doc_id for h in kb.search("住房贷款 三十年", top_k=50, mode=mode))  # type: ignore[arg-type]
    assert_consistent(kb)
    with pytest.raises(ZhiwenError, match="no document"):
        kb.delete_document(str(path))


def test_delete_by_folder_and_by_id(kb: KnowledgeBase, folder: Path) -> None:
    ingest_paths(kb, [folder])
    removed = kb.delete_document(str(folder / "sub"))
    assert sorted(Path(d.source).name for d in removed) == ["branch.html", "mortgage.txt"]
    fees = doc_of(kb, folder / "fees.txt")
    assert [d.doc_id for d in kb.delete_document(fees)] == [fees]
    assert [Path(d.source).name for d in kb.documents()] == ["wire.md"]
    assert_consistent(kb)
    for everything in ("", "/", " "):
        with pytest.raises(ZhiwenError, match="no document"):
            kb.delete_document(everything)
    assert len(kb.documents()) == 1, "an empty reference deletes nothing"


def test_deleting_a_folder_spares_folders_that_differ_in_case_or_wildcards(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    write_files(tmp_path / "Policy", {"a.txt": "Upper-case folder: the gold card fee is 300 yuan."})
    write_files(tmp_path / "policy", {"b.txt": "Lower-case folder: wire transfers take three days."})
    write_files(tmp_path / "p_licy", {"c.txt": "Underscore folder: mortgages last thirty years."})
    ingest_paths(kb, [tmp_path / "Policy", tmp_path / "policy", tmp_path / "p_licy"])
    removed = kb.delete_document(str(tmp_path / "Policy"))
    assert [Path(d.source).name for d in removed] == ["a.txt"]
    assert sorted(Path(d.source).name for d in kb.documents()) == ["b.txt", "c.txt"]
    assert [Path(d.source).name for d in kb.delete_document(str(tmp_path / "p_licy"))] == ["c.txt"]
    assert_consistent(kb)


def test_a_file_is_one_document_however_its_path_is_typed(
    kb: KnowledgeBase, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folder.parent)
    assert ingest_paths(kb, [Path("docs")]).added == 4
    assert ingest_paths(kb, [Path("./docs/../docs/")]).unchanged == 4
    assert ingest_paths(kb, [folder]).unchanged == 4
    monkeypatch.chdir(folder)
    assert ingest_paths(kb, [Path("fees.txt")]).unchanged == 1
    assert len(kb.documents()) == 4 and all(Path(d.source).is_absolute() for d in kb.documents())
    assert [d.source for d in kb.delete_document("fees.txt")] == [str(folder / "fees.txt")]
    monkeypatch.chdir(folder.parent)
    assert sorted(Path(d.source).name for d in kb.delete_document("docs/sub")) == [
        "branch.html",
        "mortgage.txt",
    ]


def test_a_document_stored_under_a_relative_path_is_taken_over_not_duplicated(
    kb: KnowledgeBase, folder: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(folder.parent)
    text = (folder / "fees.txt").read_text(encoding="utf-8")
    ingest_documents(kb, [Document(source="docs/fees.txt", text=text)])  # as an older version stored it
    report = ingest_paths(kb, [folder / "fees.txt"])
    assert (report.added, report.replaced) == (0, 1)
    assert [d.source for d in kb.documents()] == [str(folder / "fees.txt")]
    assert_consistent(kb)


def test_bad_files_are_reported_and_the_rest_ingested(kb: KnowledgeBase, folder: Path) -> None:
    (folder / "binary.txt").write_bytes(b"\x00\x01\x02 binary")
    (folder / "empty.md").write_text("", encoding="utf-8")
    (folder / "slides.pptx").write_bytes(b"PK\x03\x04")
    (folder / "corpus.jsonl").write_text('{"_id": "1", "text": "ok"}\nnot json\n', encoding="utf-8")
    report = ingest_paths(kb, [folder, folder / "missing.txt"])
    assert report.added == 4
    skipped = "\n".join(report.skipped)
    assert len(report.skipped) == 5
    for name in ("binary.txt", "empty.md", "slides.pptx", "corpus.jsonl:2", "missing.txt"):
        assert name in skipped
    assert_consistent(kb)


def test_identical_files_are_separate_documents(kb: KnowledgeBase, folder: Path) -> None:
    """Same name and text in two folders (same title too): two documents, no shared chunk rows."""
    (folder / "v2").mkdir()
    shutil.copy(folder / "fees.txt", folder / "v2" / "fees.txt")
    report = ingest_paths(kb, [folder])
    assert report.added == 5
    assert_consistent(kb)
    original, copy = doc_of(kb, folder / "fees.txt"), doc_of(kb, folder / "v2" / "fees.txt")
    assert {h.doc_id for h in kb.search("年费", top_k=10, mode="bm25")} >= {original, copy}
    kb.delete_document(str(folder / "v2" / "fees.txt"))
    assert kb.search("年费", mode="bm25")[0].doc_id == original, "deleting a copy keeps the original"
    assert_consistent(kb)


def test_beir_passages(kb: KnowledgeBase, tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    rows = [{"_id": f"p{i}", "title": f"Title {i}", "text": f"Passage {i} about topic{i}."} for i in range(5)]
    rows.append({"_id": "dup", "title": "Title 0", "text": "Passage 0 about topic0."})  # duplicate, other id
    corpus.write_text("\n".join(json.dumps(r) for r in rows), encoding="utf-8")
    report = ingest_paths(kb, [corpus])
    assert report.added == 6
    assert {h.doc_id for h in kb.search("topic0", top_k=10, mode="bm25")} == {"p0", "dup"}
    assert kb.search("topic3", mode="bm25")[0].text == "Title 3\nPassage 3 about topic3."
    assert_consistent(kb)


def test_documents_without_terms(kb: KnowledgeBase, tmp_path: Path) -> None:
    """A document of punctuation / stop words only has no BM25 terms; the KB must still work."""
    path = tmp_path / "dots.txt"
    path.write_text("。。。！！！？？？", encoding="utf-8")
    report = ingest_paths(kb, [path])
    assert report.added == 1
    assert kb.search("年费", mode="bm25") == []
    assert [h.doc_id for h in kb.search("年费", mode="dense")] == [doc_of(kb, path)]
    assert_consistent(kb)


def test_orphan_vectors_are_never_returned_and_swept(
    kb: KnowledgeBase, folder: Path, fake_embedder: HashEmbedder
) -> None:
    ingest_paths(kb, [folder])
    query = "信用卡年费 annual fee"
    vector = fake_embedder.embed_query(query)
    orphans = [f"orphan-{i}" for i in range(3)]
    kb.vectors.upsert(orphans, np.stack([vector] * 3), ["ghost-doc"] * 3)
    assert set(orphans) <= kb.vectors.all_ids()
    for mode in ("hybrid", "dense"):
        hits = kb.search(query, top_k=10, mode=mode)  # type: ignore[arg-type]
        assert hits, "real chunks still come back"
        assert not {h.id for h in hits} & set(orphans)
        assert all(h.doc_id != "ghost-doc" for h in hits)
    report = ingest_paths(kb, [folder])  # nothing changed, but the sweep runs
    assert report.unchanged == 4
    assert not set(orphans) & kb.vectors.all_ids()
    assert_consistent(kb)


def test_a_second_writer_waits_and_cannot_sweep_the_first_ones_vectors(
    tmp_path: Path, folder: Path, fake_embedder: HashEmbedder
) -> None:
    """Writer 1 has vectors in Chroma not yet in its catalog; writer 2's ingest must not sweep them."""
    first = KnowledgeBase.open(tmp_path / "kbs", "test", fake_embedder, create=True)
    second = KnowledgeBase.open(tmp_path / "kbs", "test", fake_embedder)
    pending = ["pending-1", "pending-2"]
    try:
        with first.writing():
            first.vectors.upsert(pending, np.stack([fake_embedder.embed_query("x")] * 2), ["doc-1"] * 2)
            other = threading.Thread(target=ingest_paths, args=(second, [folder / "fees.txt"]))
            other.start()
            other.join(1.0)
            assert other.is_alive(), "the second ingest did not wait for the write lock"
            assert set(pending) <= first.vectors.all_ids()
            first.vectors.delete(pending)  # writer 1 gives up its work and releases the lock
        other.join(30)
        assert not other.is_alive()
        assert [d.source for d in second.documents()] == [str(folder / "fees.txt")]
        assert_consistent(second)
    finally:
        second.close()
        first.close()


@pytest.mark.parametrize("damage", ["delete-folder", "old-generation", "leftover-scratch"])
def test_stale_bm25_is_rebuilt(
    tmp_path: Path, folder: Path, fake_embedder: HashEmbedder, damage: str
) -> None:
    kb = KnowledgeBase.open(tmp_path / "kbs", "test", fake_embedder, create=True)
    ingest_paths(kb, [folder])
    expected = [h.id for h in kb.search("年费 wire", top_k=10, mode="bm25")]
    assert expected
    kb.close()
    bm25_dir = kb.path / "bm25"
    if damage == "delete-folder":
        shutil.rmtree(bm25_dir)
    elif damage == "old-generation":
        meta = json.loads((bm25_dir / "meta.json").read_text())
        (bm25_dir / "meta.json").write_text(json.dumps({**meta, "generation": meta["generation"] - 1}))
    else:
        for scratch in ("bm25.tmp-1", "bm25.old-1"):
            shutil.copytree(bm25_dir, kb.path / scratch)
        shutil.rmtree(bm25_dir)

    reopened = KnowledgeBase.open(tmp_path / "kbs", "test", fake_embedder)
    try:
        assert [h.id for h in reopened.search("年费 wire", top_k=10, mode="bm25")] == expected
        meta = json.loads((bm25_dir / "meta.json").read_text())
        assert meta["generation"] == reopened.catalog.generation
    finally:
        reopened.close()


def test_another_instance_sees_new_commits(tmp_path: Path, folder: Path, fake_embedder: HashEmbedder) -> None:
    """A reader whose BM25 index is cached notices a writer's commit through the generation."""
    writer = KnowledgeBase.open(tmp_path / "kbs", "test", fake_embedder, create=True)
    reader = KnowledgeBase.open(tmp_path / "kbs", "test", fake_embedder)
    try:
        ingest_paths(writer, [folder / "fees.txt"])
        assert reader.search("年费", mode="bm25")
        assert reader.search("wire transfers", mode="bm25") == []
        ingest_paths(writer, [folder / "wire.md"])
        assert reader.search("wire transfers", mode="bm25")[0].metadata["title"] == "Wire transfers"
    finally:
        reader.close()
        writer.close()


def test_kb_listing_and_dropping(tmp_path: Path, fake_embedder: HashEmbedder, folder: Path) -> None:
    root = tmp_path / "kbs"
    assert list_kbs(root) == []
    with pytest.raises(KnowledgeBaseNotFound, match="no knowledge base named '银行'"):
        KnowledgeBase.open(root, "银行", fake_embedder)
    kb = KnowledgeBase.open(root, "银行", fake_embedder, create=True)
    report = ingest_paths(kb, [folder])
    kb.close()
    assert kb_dir(root, "银行").name.startswith("kb-")
    assert list_kbs(root) == [("银行", 4, report.chunks)]
    delete_kb(root, "银行")
    assert list_kbs(root) == []
    # Created again in the same process (a server): must not reuse Chroma's state of the deleted folder.
    again = KnowledgeBase.open(root, "银行", fake_embedder, create=True)
    try:
        assert ingest_paths(again, [folder]).added == 4
        assert again.vectors.count() == again.catalog.counts()[1]
        assert again.search("年费", mode="dense")
    finally:
        again.close()
    assert list_kbs(root) == [("银行", 4, report.chunks)]
    with pytest.raises(ZhiwenError):
        kb_dir(root, "  ")


def test_listing_never_brings_back_a_base_deleted_after_its_names_were_read(
    tmp_path: Path, fake_embedder: HashEmbedder
) -> None:
    root = tmp_path / "kbs"
    KnowledgeBase.open(root, "gone", fake_embedder, create=True).close()
    home = catalogs_for(root)
    [(folder, name)] = home.names()
    delete_kb(root, "gone")
    with pytest.raises(KnowledgeBaseNotFound):
        home.open(folder, name, create=False)
    assert not (root / folder).exists()
    assert list_kbs(root) == []


def test_searches_during_ingest(kb: KnowledgeBase, tmp_path: Path) -> None:
    """Searching threads (a server) and an ingest rebuild the BM25 index concurrently without errors."""
    errors: list[BaseException] = []
    finished = threading.Event()

    def write() -> None:
        try:
            for i in range(20):
                path = tmp_path / f"d{i}.txt"
                path.write_text(f"Document {i} about topic{i} and banks.", encoding="utf-8")
                ingest_paths(kb, [path])
        except BaseException as exc:
            errors.append(exc)
        finally:
            finished.set()

    def read() -> None:
        while not finished.is_set():
            try:
                kb.search("banks topic3", mode="bm25")
            except BaseException as exc:
                errors.append(exc)

    threads = [threading.Thread(target=write), *(threading.Thread(target=read) for _ in range(2))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors[:3]
    assert kb.search("topic19", mode="bm25")[0].text == "Document 19 about topic19 and banks."
    assert_consistent(kb)


def test_service_keeps_knowledge_bases_under_zhiwen_home(zhiwen_home: Path, folder: Path) -> None:
    """The shared service path (CLI, server) with the real e5 embedder behind its vector cache."""
    from zhiwen import service

    try:
        report = service.ingest("服务", [folder])
        assert report.added == 4 and not report.skipped
        assert list_kbs(zhiwen_home / "kbs") == [("服务", 4, report.chunks)]
        hits = service.search("服务", "mortgage how many years", top_k=2, mode="dense")
        assert Path(hits[0].metadata["source"]).name == "mortgage.txt"
        assert (
            service.search("服务", "年费", top_k=1, mode="bm25", bm25_weight=1.0)[0].metadata["title"]
            == "fees"
        )
    finally:
        service.forget_kb("服务")


def test_dropping_a_knowledge_base_in_use(
    zhiwen_home: Path, folder: Path, fake_embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    from zhiwen.memory import registry

    monkeypatch.setattr(registry, "get_embedder", lambda settings=None: fake_embedder)
    kb = registry.open_kb("in-use", create=True)
    ingest_paths(kb, [folder])
    writer = KnowledgeBase.open(zhiwen_home / "kbs", "in-use", fake_embedder)
    try:
        with writer.writing():  # an ingest in progress, elsewhere
            dropper = threading.Thread(target=registry.drop_kb, args=("in-use",))
            dropper.start()
            dropper.join(1.0)
            assert dropper.is_alive(), "the drop did not wait for the running ingest"
            with pytest.raises(KnowledgeBaseNotFound, match="being deleted"):
                registry.open_kb("in-use")  # no new user while it goes
        dropper.join(30)
        assert not dropper.is_alive()
    finally:
        writer.close()
    assert not kb_dir(zhiwen_home / "kbs", "in-use").exists()
    with pytest.raises(KnowledgeBaseNotFound, match="no knowledge base named"):
        registry.open_kb("in-use")


def test_an_upload_is_one_document_whichever_replicas_folder_received_it(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    """Replicas keep uploads under homes of their own: the same file through two of them is one document."""
    one, two = tmp_path / "one" / "uploads", tmp_path / "two" / "uploads"
    for folder in (one, two):
        write_files(folder, {"fees.txt": "The gold card's annual fee is 300 yuan."})
    assert ingest_paths(kb, [one / "fees.txt"], id_root=one).added == 1
    again = ingest_paths(kb, [two / "fees.txt"], id_root=two)
    assert (again.added, again.unchanged) == (0, 1)
    (two / "fees.txt").write_text("The gold card's annual fee is 400 yuan.", encoding="utf-8")
    changed = ingest_paths(kb, [two / "fees.txt"], id_root=two)
    assert (changed.added, changed.replaced) == (0, 1)
    assert [Path(d.source) for d in kb.documents()] == [two / "fees.txt"]
    assert_consistent(kb)


def test_an_upload_stored_under_its_path_id_is_replaced_not_doubled(
    kb: KnowledgeBase, tmp_path: Path
) -> None:
    """Uploads ingested before ids were taken below the uploads folder keep one record when sent again."""
    uploads = tmp_path / "uploads"
    write_files(uploads, {"fees.txt": "The gold card's annual fee is 300 yuan."})
    assert ingest_paths(kb, [uploads / "fees.txt"]).added == 1  # the old scheme: the absolute path's hash
    old_id = kb.documents()[0].doc_id
    report = ingest_paths(kb, [uploads / "fees.txt"], id_root=uploads)
    assert (report.added, report.replaced) == (0, 1)
    assert [d.doc_id for d in kb.documents()] != [old_id] and len(kb.documents()) == 1
    assert_consistent(kb)


def test_a_drop_that_fails_before_closing_still_closes_the_handle_it_forgets(
    zhiwen_home: Path, folder: Path, fake_embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The registry forgets the handle after any error but busy; a deletion that failed before it closed the
    handle left it open (its Chroma client and catalog connection) with nothing to close it."""
    from zhiwen.memory import registry

    monkeypatch.setattr(registry, "get_embedder", lambda settings=None: fake_embedder)
    kb = registry.open_kb("leaky", create=True)
    ingest_paths(kb, [folder])
    closes: list[str] = []
    real_close = kb.close
    monkeypatch.setattr(kb, "close", lambda: (closes.append("closed"), real_close())[-1])

    def failing_delete(*args: object, **kwargs: object) -> bool:
        raise OSError("the disk refused")

    monkeypatch.setattr(registry, "delete_kb", failing_delete)
    with pytest.raises(OSError, match="disk refused"):
        registry.drop_kb("leaky")
    assert closes == ["closed"], "the forgotten handle was not closed"
    monkeypatch.undo()
    monkeypatch.setattr(registry, "get_embedder", lambda settings=None: fake_embedder)
    assert registry.open_kb("leaky") is not kb, "a new handle, not the closed one"
    registry.drop_kb("leaky")


def test_documents_whose_files_are_gone_from_a_folder_are_reported(kb: KnowledgeBase, tmp_path: Path) -> None:
    """A file deleted, or replaced by a folder of its name, stayed searchable after the folder's next ingest
    without a word; an ingest still deletes nothing (the operator may have moved the folder on purpose)."""
    docs = tmp_path / "docs"
    write_files(docs, {"a.md": "Gold card fee is 300 yuan.", "b.md": "Wires take three days.",
                       "keep.md": "Branches open at nine."})  # fmt: skip
    hidden = docs / ".notes.md"
    hidden.write_text("Hidden notes ingested by name.", encoding="utf-8")
    elsewhere = tmp_path / "other.md"
    elsewhere.write_text("A file outside the folder.", encoding="utf-8")
    assert ingest_paths(kb, [docs, hidden, elsewhere]).added == 5
    (docs / "b.md").unlink()
    (docs / "a.md").unlink()
    write_files(docs / "a.md", {"inner.md": "Now a folder holding another document."})
    elsewhere.unlink()
    report = ingest_paths(kb, [docs])
    assert report.added == 1 and report.unchanged == 1
    assert report.gone == [str(docs / "a.md"), str(docs / "b.md")]
    assert report.summary().endswith(", 2 no longer on disk")
    assert len(kb.documents()) == 6, "nothing was deleted"
    assert ingest_paths(kb, [docs / "keep.md"]).gone == [], "only folders named are looked through"
