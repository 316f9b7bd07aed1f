"""The knowledge base's source of truth: documents and chunks, in SQLite (``Catalog``) or PostgreSQL.

A document is visible exactly when its row is committed here; the retrieval backend's vectors and BM25
index are derived from it. ``generation`` increases with every committed change so derived indexes can
tell whether they are stale. ``CatalogStore`` is what both engines offer (``zhiwen.memory.catalog_pg`` is
the shared one, for replicas).
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from zhiwen.memory.chunking import CHUNKER_VERSION
from zhiwen.memory.documents import Chunk, Document

__all__ = ["Catalog", "CatalogStore", "CatalogWriter", "ChunkRow", "DocumentRow", "chunk_rows"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS documents (
  doc_id TEXT PRIMARY KEY, source TEXT NOT NULL, title TEXT NOT NULL, sha256 TEXT NOT NULL,
  n_chunks INTEGER NOT NULL, n_chars INTEGER NOT NULL, ingested_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS chunks (
  chunk_id TEXT PRIMARY KEY, doc_id TEXT NOT NULL REFERENCES documents(doc_id) ON DELETE CASCADE,
  ordinal INTEGER NOT NULL, text TEXT NOT NULL, tokens TEXT NOT NULL, metadata TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS chunks_doc ON chunks(doc_id);
CREATE TABLE IF NOT EXISTS chunking (
  doc_id TEXT PRIMARY KEY REFERENCES documents(doc_id) ON DELETE CASCADE, version INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS flags (
  doc_id TEXT PRIMARY KEY REFERENCES documents(doc_id) ON DELETE CASCADE, reasons TEXT NOT NULL);
"""
# ``chunking`` is a table of its own, not a column of ``documents``, so that an older zhiwen still reads
# the catalog (its ``SELECT *`` rows keep their shape); a document without a row was chunked by version 1.
# ``flags`` likewise: why ingestion found a document's text reading as instructions (none: no row).


@dataclass(frozen=True)
class DocumentRow:
    doc_id: str
    source: str
    title: str
    sha256: str
    n_chunks: int
    n_chars: int
    ingested_at: float


@dataclass(frozen=True)
class ChunkRow:
    chunk_id: str
    doc_id: str
    text: str
    metadata: dict[str, Any]


class CatalogWriter(Protocol):
    """The writes of one transaction; they commit together, with one generation bump."""

    def put_document(self, doc: Document, chunks: Sequence[Chunk], tokens: Sequence[list[str]]) -> None:
        """Insert (or replace) one document and its chunks."""

    def put_flags(self, doc_id: str, reasons: Sequence[str]) -> None:
        """Record (after ``put_document``) why a document was flagged; nothing when there is no reason."""

    def remove_document(self, doc_id: str) -> None:
        """Delete a document with its chunks, chunker version and flags."""


class CatalogStore(Protocol):
    """A knowledge base's catalog on either engine; every method is thread-safe and blocking."""

    def close(self) -> None: ...

    def transaction(self) -> contextlib.AbstractContextManager[CatalogWriter]:
        """One atomic change; bumps the generation on commit."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...

    def setdefault_meta(self, key: str, value: str) -> str:
        """The stored value of ``key``, storing ``value`` first when there is none (first writer wins)."""

    @property
    def generation(self) -> int: ...

    def document(self, doc_id: str) -> DocumentRow | None: ...

    def documents(self) -> list[DocumentRow]:
        """Every document, by source."""

    def find_documents(self, ref: str) -> list[DocumentRow]:
        """Documents whose id or source equals ``ref``, or whose source is under the folder ``ref``."""

    def relative_documents(self) -> list[DocumentRow]:
        """Documents stored under a relative path (ingested before paths were made absolute)."""

    def chunker_version(self, doc_id: str) -> int: ...

    def mark_chunked(self, doc_ids: Sequence[str], version: int = CHUNKER_VERSION) -> None: ...

    def chunk_ids_of(self, doc_id: str) -> list[str]: ...

    def counts(self) -> tuple[int, int]:
        """(documents, chunks)."""

    def all_chunk_ids(self) -> set[str]: ...

    def all_tokens(self) -> tuple[list[str], list[list[str]]]:
        """Every chunk id with its BM25 tokens, in a stable order (for rebuilding the BM25 index)."""

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
        """The committed chunks among ``chunk_ids`` (absent ids are not visible)."""

    def flags(self) -> dict[str, list[str]]:
        """Flag reasons by document id, for the documents that have any."""


class Catalog:
    """Thread-safe access to kb.sqlite (one connection, serialised)."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=60, isolation_level=None)
        self._lock = threading.RLock()
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @contextmanager
    def transaction(self) -> Iterator[CatalogWriter]:
        """One atomic change; bumps the generation on commit."""
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield _SqliteWriter(self._db)
                self._db.execute(
                    "INSERT INTO meta(key, value) VALUES('generation', '1') ON CONFLICT(key) "
                    "DO UPDATE SET value = CAST(value AS INTEGER) + 1"
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def get_meta(self, key: str) -> str | None:
        with self._lock:
            row = self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, key: str, value: str) -> None:
        with self._lock:
            self._db.execute("INSERT OR REPLACE INTO meta(key, value) VALUES(?, ?)", (key, value))

    def setdefault_meta(self, key: str, value: str) -> str:
        """The stored value of ``key``, storing ``value`` first when there is none (first writer wins)."""
        with self._lock:
            self._db.execute("INSERT OR IGNORE INTO meta(key, value) VALUES(?, ?)", (key, value))
            return str(self._db.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()[0])

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    def document(self, doc_id: str) -> DocumentRow | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM documents WHERE doc_id = ?", (doc_id,)).fetchone()
        return None if row is None else DocumentRow(*row)

    def documents(self) -> list[DocumentRow]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM documents ORDER BY source").fetchall()
        return [DocumentRow(*r) for r in rows]

    def find_documents(self, ref: str) -> list[DocumentRow]:
        """Documents whose id or source equals ``ref``, or whose source is under the folder ``ref``."""
        folder = ref.rstrip("/") + "/"
        with self._lock:
            # An exact prefix comparison: LIKE ignores ASCII case, so /data/Policy also matched /data/policy.
            rows = self._db.execute(
                "SELECT * FROM documents WHERE doc_id = ? OR source = ? OR substr(source, 1, ?) = ?",
                (ref, ref, len(folder), folder),
            ).fetchall()
        return [DocumentRow(*r) for r in rows]

    def relative_documents(self) -> list[DocumentRow]:
        """Documents stored under a relative path (ingested before paths were made absolute)."""
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM documents WHERE substr(source, 1, 1) != '/' AND instr(source, '://') = 0"
            ).fetchall()
        return [DocumentRow(*r) for r in rows]

    def chunker_version(self, doc_id: str) -> int:
        """The version of the chunker that cut the stored document (1: stored before versions were kept)."""
        with self._lock:
            row = self._db.execute("SELECT version FROM chunking WHERE doc_id = ?", (doc_id,)).fetchone()
        return 1 if row is None else int(row[0])

    def mark_chunked(self, doc_ids: Sequence[str], version: int = CHUNKER_VERSION) -> None:
        """Record that the current chunker cuts these stored documents into the chunks they have.

        No generation bump: nothing a search reads changes.
        """
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                self._db.executemany(
                    "INSERT OR REPLACE INTO chunking VALUES (?, ?)", [(d, version) for d in doc_ids]
                )
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise

    def chunk_ids_of(self, doc_id: str) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT chunk_id FROM chunks WHERE doc_id = ?", (doc_id,))]

    def counts(self) -> tuple[int, int]:
        with self._lock:
            docs = self._db.execute("SELECT COUNT(*) FROM documents").fetchone()[0]
            chunks = self._db.execute("SELECT COUNT(*) FROM chunks").fetchone()[0]
        return int(docs), int(chunks)

    def all_chunk_ids(self) -> set[str]:
        with self._lock:
            return {r[0] for r in self._db.execute("SELECT chunk_id FROM chunks")}

    def all_tokens(self) -> tuple[list[str], list[list[str]]]:
        """Every chunk id with its BM25 tokens, in a stable order (for rebuilding the BM25 index)."""
        with self._lock:
            rows = self._db.execute("SELECT chunk_id, tokens FROM chunks ORDER BY rowid").fetchall()
        return [r[0] for r in rows], [json.loads(r[1]) for r in rows]

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
        """The committed chunks among ``chunk_ids`` (absent ids are not visible)."""
        out: dict[str, ChunkRow] = {}
        with self._lock:
            for i in range(0, len(chunk_ids), 500):
                part = list(chunk_ids[i : i + 500])
                q = f"SELECT chunk_id, doc_id, text, metadata FROM chunks WHERE chunk_id IN ({','.join('?' * len(part))})"
                for cid, did, text, meta in self._db.execute(q, part):
                    out[cid] = ChunkRow(cid, did, text, json.loads(meta))
        return out

    def flags(self) -> dict[str, list[str]]:
        """Flag reasons by document id, for the documents that have any."""
        with self._lock:
            rows = self._db.execute("SELECT doc_id, reasons FROM flags").fetchall()
        return {doc_id: json.loads(reasons) for doc_id, reasons in rows}

    # The static forms of the writer's methods, for callers written before the writer existed.
    @staticmethod
    def put_document(
        db: CatalogWriter, doc: Document, chunks: Sequence[Chunk], tokens: Sequence[list[str]]
    ) -> None:
        db.put_document(doc, chunks, tokens)

    @staticmethod
    def put_flags(db: CatalogWriter, doc_id: str, reasons: Sequence[str]) -> None:
        db.put_flags(doc_id, reasons)

    @staticmethod
    def remove_document(db: CatalogWriter, doc_id: str) -> None:
        db.remove_document(doc_id)


class _SqliteWriter:
    """The writes of one SQLite ``transaction()``."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def put_document(self, doc: Document, chunks: Sequence[Chunk], tokens: Sequence[list[str]]) -> None:
        self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc.id,))
        self._db.execute(
            "INSERT INTO documents VALUES (?, ?, ?, ?, ?, ?, ?)",
            (doc.id, doc.source, doc.title, doc.sha256, len(chunks), len(doc.text), time.time()),
        )
        self._db.execute("INSERT OR REPLACE INTO chunking VALUES (?, ?)", (doc.id, CHUNKER_VERSION))
        self._db.executemany(
            "INSERT OR REPLACE INTO chunks VALUES (?, ?, ?, ?, ?, ?)", chunk_rows(doc, chunks, tokens)
        )

    def put_flags(self, doc_id: str, reasons: Sequence[str]) -> None:
        if reasons:
            self._db.execute(
                "INSERT OR REPLACE INTO flags VALUES (?, ?)", (doc_id, json.dumps(list(reasons)))
            )

    def remove_document(self, doc_id: str) -> None:
        self._db.execute("DELETE FROM documents WHERE doc_id = ?", (doc_id,))


def chunk_rows(
    doc: Document, chunks: Sequence[Chunk], tokens: Sequence[list[str]]
) -> list[tuple[str, str, int, str, str, str]]:
    """The ``chunks`` table's rows of a document: id, document, ordinal, text, tokens and metadata (JSON)."""
    return [
        (
            c.id,
            doc.id,
            c.ordinal,
            c.text,
            json.dumps(t, ensure_ascii=False),
            json.dumps(c.metadata, ensure_ascii=False),
        )
        for c, t in zip(chunks, tokens)
    ]
