"""Ingestion: read files, chunk, tokenize, embed, then commit whole documents to both indexes.

Documents are committed in small groups, each group in one catalog transaction, after their vectors
are in Chroma: killing an ingest at any moment leaves every document either fully visible or absent.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from zhiwen.errors import UnsupportedFile
from zhiwen.memory.chunking import CHUNKER_VERSION, chunk_document
from zhiwen.memory.documents import Chunk, Document, content_hash
from zhiwen.memory.kb import KnowledgeBase
from zhiwen.memory.loaders import iter_paths, load_path
from zhiwen.memory.source_names import source_name
from zhiwen.tools.injection import instruction_flags

__all__ = ["IngestReport", "ingest_documents", "ingest_paths"]

Progress = Callable[[int, int], None]


@dataclass
class IngestReport:
    """What an ingest did; ``skipped`` holds one human-readable reason per file left out."""

    added: int = 0
    replaced: int = 0
    unchanged: int = 0
    rechunked: int = 0  # unchanged documents cut anew by a newer chunker (counted in ``replaced`` too)
    chunks: int = 0
    skipped: list[str] = field(default_factory=list)
    flagged: list[str] = field(default_factory=list)  # "source: reason; reason" of text read as instructions
    gone: list[str] = field(default_factory=list)
    """Stored documents from a folder ingested again whose file is no longer there (deleted, renamed, or made
    a folder): still searchable until ``zhiwen kb delete`` removes them, which an ingest never does itself."""

    def summary(self) -> str:
        rechunked = f" ({self.rechunked} re-chunked by a newer chunker)" if self.rechunked else ""
        return (
            f"{self.added} added, {self.replaced} replaced{rechunked}, {self.unchanged} unchanged, "
            f"{self.chunks} chunks indexed, {len(self.skipped)} skipped"
            + (f", {len(self.flagged)} flagged" if self.flagged else "")
            + (f", {len(self.gone)} no longer on disk" if self.gone else "")
        )


def load_all(paths: Iterable[Path], report: IngestReport) -> list[Document]:
    """Every readable document under ``paths``; unreadable files, and folders holding no file, are recorded
    in ``report.skipped`` (an empty folder made an empty knowledge base without a word)."""
    docs: list[Document] = []
    for typed in paths:
        found = False
        for path in iter_paths([typed]):
            found = True
            try:
                docs.extend(load_path(path))
            except UnsupportedFile as exc:
                report.skipped.append(str(exc))
        if not found:  # a named path always yields itself: this is a folder
            name = source_name(os.path.abspath(typed))
            report.skipped.append(f"{name}: an empty folder (no files to ingest; hidden ones are left out)")
    return docs


def ingest_paths(
    kb: KnowledgeBase,
    paths: Iterable[Path],
    progress: Progress | None = None,
    batch_chunks: int = 32,
    wait: bool = True,
    id_root: Path | None = None,
) -> IngestReport:
    """``id_root``: the server's uploads folder; a document from a file under it is identified by its path
    below it (see ``_rooted``)."""
    report = IngestReport()
    paths = list(paths)
    docs = load_all(paths, report)
    if id_root is not None:
        docs = [_rooted(d, id_root) for d in docs]
    ingest_documents(kb, docs, report, progress, batch_chunks, wait)
    report.gone = _gone_from_folders(kb, paths)
    return report


def _gone_from_folders(kb: KnowledgeBase, paths: list[Path]) -> list[str]:
    """Sources stored from under the folders in ``paths`` whose file is no longer there.

    A file on disk is matched by the name ``iter_paths`` gives it (so a name that is not UTF-8, stored
    escaped, is found), else by the stored path (a hidden file ingested by name is still there)."""
    folders = [Path(os.path.abspath(p)) for p in paths if os.path.isdir(p)]
    if not folders:
        return []
    present = {source_name(p) for p in iter_paths(folders)}
    prefixes = tuple(source_name(folder).rstrip("/") + "/" for folder in folders)
    gone = []
    for row in kb.documents():
        path = row.source.partition("#")[0]
        if path.startswith(prefixes) and path not in present and not os.path.isfile(path):
            gone.append(row.source)
    return sorted(gone)


def _rooted(doc: Document, root: Path) -> Document:
    """``doc`` identified by its path below ``root`` instead of its absolute path.

    Replicas keep uploads on disks of their own, under a ``ZHIWEN_HOME`` that need not be the same path on
    each: the same file uploaded through any of them is then one document (replaced or left unchanged), not
    one per replica. Ids a format gives its records (JSONL ``id``) are kept."""
    if doc.doc_id:
        return doc
    path, sep, rest = doc.source.partition("#")
    try:
        below = Path(path).relative_to(os.path.abspath(root))
    except ValueError:
        return doc
    return replace(doc, doc_id=content_hash(f"upload:{below.as_posix()}{sep}{rest}")[:24])


def ingest_documents(
    kb: KnowledgeBase,
    docs: list[Document],
    report: IngestReport | None = None,
    progress: Progress | None = None,
    batch_chunks: int = 32,
    wait: bool = True,
) -> IngestReport:
    """Add new documents, replace changed ones (same source, new content), skip unchanged ones.

    ``progress(done, total)`` is called in chunk units as groups commit. Holds the knowledge base's write
    lock throughout: a second ingest into it (another process, or the server) waits for this one, or
    with ``wait=False`` raises ``KnowledgeBaseBusy``.
    """
    report = report or IngestReport()
    with kb.writing(wait):
        kb.sweep_orphan_vectors()
        todo = _plan(kb, docs, report)
        total = sum(len(w.chunks) for w in todo)
        done = 0
        if progress:
            progress(0, total)
        group: list[_Work] = []
        for item in todo:
            group.append(item)
            if sum(len(w.chunks) for w in group) >= batch_chunks:
                done += _commit_group(kb, group, report)
                group = []
                if progress:
                    progress(done, total)
        if group:
            done += _commit_group(kb, group, report)
            if progress:
                progress(done, total)
        if todo:
            kb.backend.committed()
    return report


@dataclass
class _Work:
    doc: Document
    chunks: list[Chunk]
    old_chunks: list[str]  # the ids of the chunks the document had
    replaces: str = ""  # the id of an older record of it stored under another spelling of its path
    rechunk: bool = False  # same content, cut anew by a newer chunker


def _plan(kb: KnowledgeBase, docs: list[Document], report: IngestReport) -> list[_Work]:
    """The documents to write (new or changed), chunked; unchanged, duplicate and empty ones are counted."""
    todo: list[_Work] = []
    seen: set[str] = set()
    # Stored under a relative path by an older version: the same file, now known by its absolute path.
    legacy = {os.path.abspath(row.source): row for row in kb.catalog.relative_documents()}
    same_cut: list[str] = []  # older chunker, same chunks: only the version is recorded
    for doc in docs:
        if doc.id in seen:
            report.skipped.append(f"{doc.source}: duplicate document id {doc.id!r} in this batch")
            continue
        seen.add(doc.id)
        old = kb.catalog.document(doc.id)
        if old is not None and old.sha256 == doc.sha256:
            if kb.catalog.chunker_version(doc.id) >= CHUNKER_VERSION:
                report.unchanged += 1
                continue
            chunks = chunk_document(doc)
            old_chunks = kb.catalog.chunk_ids_of(doc.id)
            if {c.id for c in chunks} == set(old_chunks):
                same_cut.append(doc.id)
                report.unchanged += 1
            else:
                todo.append(_Work(doc, chunks, old_chunks, rechunk=True))
            continue
        moved = legacy.get(doc.source) if old is None else None
        if old is None and moved is None:  # the same source stored under an id of another scheme
            moved = next((d for d in kb.catalog.find_documents(doc.source) if d.source == doc.source), None)
        old_id = old.doc_id if old is not None else moved.doc_id if moved is not None else ""
        chunks = chunk_document(doc)
        if not chunks:
            report.skipped.append(f"{doc.source}: empty (no text to index)")
            continue
        old_chunks = kb.catalog.chunk_ids_of(old_id) if old_id else []
        todo.append(_Work(doc, chunks, old_chunks, moved.doc_id if moved is not None else ""))
    if same_cut:
        kb.catalog.mark_chunked(same_cut)
    return todo


def _commit_group(kb: KnowledgeBase, group: list[_Work], report: IngestReport) -> int:
    chunks = [c for w in group for c in w.chunks]
    vectors = kb.embedder.embed_passages([c.text for c in chunks])
    tokens = {c.id: kb.tokens(c.text) for c in chunks}
    ids = [c.id for c in chunks]
    kb.backend.add(ids, [c.doc_id for c in chunks], [tokens[i] for i in ids], np.asarray(vectors))
    stale: list[str] = []
    with kb.catalog.transaction() as db:
        for w in group:
            if w.replaces:
                db.remove_document(w.replaces)
            db.put_document(w.doc, w.chunks, [tokens[c.id] for c in w.chunks])
            reasons = list(dict.fromkeys(r for c in w.chunks for r in instruction_flags(c.text)))
            if reasons:
                db.put_flags(w.doc.id, reasons)
                report.flagged.append(f"{w.doc.source}: {'; '.join(reasons)}")
            if w.old_chunks:
                report.replaced += 1
                report.rechunked += w.rechunk
                new_ids = {c.id for c in w.chunks}
                stale.extend(cid for cid in w.old_chunks if cid not in new_ids)
            else:
                report.added += 1
    if stale:
        kb.backend.delete(stale)
    report.chunks += len(chunks)
    return len(chunks)
