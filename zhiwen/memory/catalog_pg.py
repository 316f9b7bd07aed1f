"""Knowledge-base catalogs in the shared PostgreSQL (``ZHIWEN_DATABASE_URL``), so replicas need no shared disk.

Every knowledge base of an installation lives in the same tables, keyed by its folder name (``kb_dir``):
``zhiwen_kbs`` lists them, ``zhiwen_kb_meta`` holds the generation and settings, and documents, chunks
(with their BM25 tokens), chunker versions and flags mirror the SQLite catalog's tables. The write lock
that SQLite kept as a file lock is a PostgreSQL advisory lock held on a connection of its own, so it holds
across replicas and is released by the server when its holder dies (SIGKILL included).

One connection pool per database URL per process; ``psycopg_pool`` checks a connection before lending it,
so a database restart costs the calls made while it is down, not the process.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from zhiwen.errors import KnowledgeBaseBusy
from zhiwen.memory.catalog import CatalogWriter, ChunkRow, DocumentRow, chunk_rows
from zhiwen.memory.chunking import CHUNKER_VERSION
from zhiwen.memory.documents import Chunk, Document
from zhiwen.memory.pg_pool import connect_failure, open_pool

__all__ = ["PostgresCatalog", "PostgresCatalogs"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS zhiwen_kbs (kb TEXT PRIMARY KEY, name TEXT NOT NULL, created DOUBLE PRECISION NOT NULL);
CREATE TABLE IF NOT EXISTS zhiwen_kb_meta (
  kb TEXT NOT NULL REFERENCES zhiwen_kbs(kb) ON DELETE CASCADE, key TEXT NOT NULL, value TEXT NOT NULL,
  PRIMARY KEY (kb, key));
CREATE TABLE IF NOT EXISTS zhiwen_kb_documents (
  kb TEXT NOT NULL REFERENCES zhiwen_kbs(kb) ON DELETE CASCADE, doc_id TEXT NOT NULL, source TEXT NOT NULL,
  title TEXT NOT NULL, sha256 TEXT NOT NULL, n_chunks INTEGER NOT NULL, n_chars INTEGER NOT NULL,
  ingested_at DOUBLE PRECISION NOT NULL, PRIMARY KEY (kb, doc_id));
CREATE TABLE IF NOT EXISTS zhiwen_kb_chunks (
  kb TEXT NOT NULL, chunk_id TEXT NOT NULL, doc_id TEXT NOT NULL, ordinal INTEGER NOT NULL, text TEXT NOT NULL,
  tokens TEXT NOT NULL, metadata TEXT NOT NULL, seq BIGSERIAL, PRIMARY KEY (kb, chunk_id),
  FOREIGN KEY (kb, doc_id) REFERENCES zhiwen_kb_documents(kb, doc_id) ON DELETE CASCADE);
CREATE INDEX IF NOT EXISTS zhiwen_kb_chunks_doc ON zhiwen_kb_chunks (kb, doc_id);
CREATE TABLE IF NOT EXISTS zhiwen_kb_chunking (
  kb TEXT NOT NULL, doc_id TEXT NOT NULL, version INTEGER NOT NULL, PRIMARY KEY (kb, doc_id),
  FOREIGN KEY (kb, doc_id) REFERENCES zhiwen_kb_documents(kb, doc_id) ON DELETE CASCADE);
CREATE TABLE IF NOT EXISTS zhiwen_kb_flags (
  kb TEXT NOT NULL, doc_id TEXT NOT NULL, reasons TEXT NOT NULL, PRIMARY KEY (kb, doc_id),
  FOREIGN KEY (kb, doc_id) REFERENCES zhiwen_kb_documents(kb, doc_id) ON DELETE CASCADE)
"""
_BUMP = (
    "INSERT INTO zhiwen_kb_meta (kb, key, value) VALUES (%s, 'generation', '1') ON CONFLICT (kb, key) "
    "DO UPDATE SET value = (CAST(zhiwen_kb_meta.value AS BIGINT) + 1)::TEXT"
)
_pools: dict[str, Any] = {}
_pools_lock = threading.Lock()


def _pool(url: str) -> Any:
    """The process's pool for ``url``, made (with the tables) on first use."""
    with _pools_lock:
        pool = _pools.get(url)
        if pool is None:
            pool = _pools[url] = open_pool(url, _SCHEMA, max_size=4)
        return pool


def close_pools() -> None:
    """Close this process's catalog pools (tests; a process about to exit)."""
    with _pools_lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


class _PostgresWriter:
    def __init__(self, conn: Any, kb: str) -> None:
        self._conn = conn
        self._kb = kb

    def put_document(self, doc: Document, chunks: Sequence[Chunk], tokens: Sequence[list[str]]) -> None:
        kb = self._kb
        self.remove_document(doc.id)
        self._conn.execute(
            "INSERT INTO zhiwen_kb_documents VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
            (kb, doc.id, doc.source, doc.title, doc.sha256, len(chunks), len(doc.text), time.time()),
        )
        self._conn.execute(
            "INSERT INTO zhiwen_kb_chunking VALUES (%s, %s, %s)", (kb, doc.id, CHUNKER_VERSION)
        )
        with self._conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO zhiwen_kb_chunks (kb, chunk_id, doc_id, ordinal, text, tokens, metadata) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT (kb, chunk_id) DO UPDATE SET "
                "doc_id = EXCLUDED.doc_id, ordinal = EXCLUDED.ordinal, text = EXCLUDED.text, "
                "tokens = EXCLUDED.tokens, metadata = EXCLUDED.metadata",
                [(kb, *row) for row in chunk_rows(doc, chunks, tokens)],
            )

    def put_flags(self, doc_id: str, reasons: Sequence[str]) -> None:
        if reasons:
            self._conn.execute(
                "INSERT INTO zhiwen_kb_flags VALUES (%s, %s, %s) ON CONFLICT (kb, doc_id) "
                "DO UPDATE SET reasons = EXCLUDED.reasons",
                (self._kb, doc_id, json.dumps(list(reasons))),
            )

    def remove_document(self, doc_id: str) -> None:
        self._conn.execute(
            "DELETE FROM zhiwen_kb_documents WHERE kb = %s AND doc_id = %s", (self._kb, doc_id)
        )


class PostgresCatalog:
    """One knowledge base's catalog in the shared database (``kb``: its folder name)."""

    def __init__(self, url: str, kb: str) -> None:
        self._pool = _pool(url)
        self.kb = kb

    def close(self) -> None:
        """Nothing to release: the pool is the process's, shared by every catalog on the database."""

    def _rows(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            cursor = conn.execute(query, (self.kb, *args))
            return list(cursor.fetchall()) if cursor.description else []

    @contextlib.contextmanager
    def transaction(self) -> Iterator[CatalogWriter]:
        with self._pool.connection() as conn, conn.transaction():
            yield _PostgresWriter(conn, self.kb)
            conn.execute(_BUMP, (self.kb,))

    def get_meta(self, key: str) -> str | None:
        rows = self._rows("SELECT value FROM zhiwen_kb_meta WHERE kb = %s AND key = %s", (key,))
        return str(rows[0][0]) if rows else None

    def set_meta(self, key: str, value: str) -> None:
        self._rows(
            "INSERT INTO zhiwen_kb_meta VALUES (%s, %s, %s) ON CONFLICT (kb, key) DO UPDATE SET value = EXCLUDED.value",
            (key, value),
        )

    def setdefault_meta(self, key: str, value: str) -> str:
        self._rows(
            "INSERT INTO zhiwen_kb_meta VALUES (%s, %s, %s) ON CONFLICT (kb, key) DO NOTHING", (key, value)
        )
        return self.get_meta(key) or value

    @property
    def generation(self) -> int:
        return int(self.get_meta("generation") or 0)

    _DOC = "SELECT doc_id, source, title, sha256, n_chunks, n_chars, ingested_at FROM zhiwen_kb_documents WHERE kb = %s"

    def document(self, doc_id: str) -> DocumentRow | None:
        rows = self._rows(self._DOC + " AND doc_id = %s", (doc_id,))
        return DocumentRow(*rows[0]) if rows else None

    def documents(self) -> list[DocumentRow]:
        return [DocumentRow(*r) for r in self._rows(self._DOC + " ORDER BY source")]

    def find_documents(self, ref: str) -> list[DocumentRow]:
        folder = ref.rstrip("/") + "/"
        rows = self._rows(
            self._DOC + " AND (doc_id = %s OR source = %s OR left(source, %s) = %s)",
            (ref, ref, len(folder), folder),
        )
        return [DocumentRow(*r) for r in rows]

    def relative_documents(self) -> list[DocumentRow]:
        rows = self._rows(self._DOC + " AND left(source, 1) <> '/' AND strpos(source, '://') = 0")
        return [DocumentRow(*r) for r in rows]

    def chunker_version(self, doc_id: str) -> int:
        rows = self._rows("SELECT version FROM zhiwen_kb_chunking WHERE kb = %s AND doc_id = %s", (doc_id,))
        return int(rows[0][0]) if rows else 1

    def mark_chunked(self, doc_ids: Sequence[str], version: int = CHUNKER_VERSION) -> None:
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO zhiwen_kb_chunking VALUES (%s, %s, %s) ON CONFLICT (kb, doc_id) "
                "DO UPDATE SET version = EXCLUDED.version",
                [(self.kb, d, version) for d in doc_ids],
            )

    def chunk_ids_of(self, doc_id: str) -> list[str]:
        return [
            r[0]
            for r in self._rows(
                "SELECT chunk_id FROM zhiwen_kb_chunks WHERE kb = %s AND doc_id = %s", (doc_id,)
            )
        ]

    def counts(self) -> tuple[int, int]:
        rows = self._rows(
            "SELECT (SELECT COUNT(*) FROM zhiwen_kb_documents WHERE kb = %s), "
            "(SELECT COUNT(*) FROM zhiwen_kb_chunks WHERE kb = %s)",
            (self.kb,),
        )
        return int(rows[0][0]), int(rows[0][1])

    def all_chunk_ids(self) -> set[str]:
        return {r[0] for r in self._rows("SELECT chunk_id FROM zhiwen_kb_chunks WHERE kb = %s")}

    def all_tokens(self) -> tuple[list[str], list[list[str]]]:
        rows = self._rows("SELECT chunk_id, tokens FROM zhiwen_kb_chunks WHERE kb = %s ORDER BY seq")
        return [r[0] for r in rows], [json.loads(r[1]) for r in rows]

    def chunks(self, chunk_ids: Sequence[str]) -> dict[str, ChunkRow]:
        if not chunk_ids:
            return {}
        rows = self._rows(
            "SELECT chunk_id, doc_id, text, metadata FROM zhiwen_kb_chunks WHERE kb = %s AND chunk_id = ANY(%s)",
            (list(chunk_ids),),
        )
        return {cid: ChunkRow(cid, did, text, json.loads(meta)) for cid, did, text, meta in rows}

    def flags(self) -> dict[str, list[str]]:
        return {
            d: json.loads(r)
            for d, r in self._rows("SELECT doc_id, reasons FROM zhiwen_kb_flags WHERE kb = %s")
        }


class PostgresCatalogs:
    """The installation's knowledge bases in the shared database: which exist, made, dropped, write-locked."""

    def __init__(self, url: str) -> None:
        self.url = url
        self._pool = _pool(url)

    def _rows(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            cursor = conn.execute(query, args)
            return list(cursor.fetchall()) if cursor.description else []

    def exists(self, kb: str) -> bool:
        return bool(self._rows("SELECT 1 FROM zhiwen_kbs WHERE kb = %s", (kb,)))

    def names(self) -> list[tuple[str, str]]:
        """(folder name, knowledge base name) of each, by folder name."""
        return [(k, n) for k, n in self._rows("SELECT kb, name FROM zhiwen_kbs ORDER BY kb")]

    def catalog(self, kb: str) -> PostgresCatalog:
        """The catalog of ``kb`` as it stands, registering nothing (a base gone since is read as empty)."""
        return PostgresCatalog(self.url, kb)

    def create(self, kb: str, name: str) -> PostgresCatalog:
        """The catalog of ``kb``, registered first if new (replicas making it at once make it once)."""
        made = self._rows(
            "INSERT INTO zhiwen_kbs VALUES (%s, %s, %s) ON CONFLICT (kb) DO NOTHING RETURNING kb",
            (kb, name, time.time()),
        )
        catalog = PostgresCatalog(self.url, kb)
        if made:
            # A new base's generations start at the time in microseconds, not 0: a replica's BM25 index left
            # in its folder by a dropped base of the same name can then never pass for this one's.
            catalog.set_meta("generation", str(time.time_ns() // 1000))
        return catalog

    def drop(self, kb: str) -> None:
        """Delete the knowledge base's rows (documents, chunks and settings go with it)."""
        with self._pool.connection() as conn, conn.transaction():
            for table in ("zhiwen_kb_chunks", "zhiwen_kb_flags", "zhiwen_kb_chunking", "zhiwen_kb_documents"):
                conn.execute(f"DELETE FROM {table} WHERE kb = %s", (kb,))
            conn.execute("DELETE FROM zhiwen_kbs WHERE kb = %s", (kb,))

    @contextlib.contextmanager
    def write_lock(self, kb: str, name: str, wait: bool) -> Iterator[None]:
        """The knowledge base's write lock across every replica (a session advisory lock).

        Held on a connection of its own, outside the pool, for as long as the write lasts: a replica that
        dies holding it loses its connection, and the server releases the lock.
        """
        import psycopg

        key = f"zhiwen-kb-write:{kb}"
        try:
            conn = psycopg.connect(self.url, autocommit=True, connect_timeout=15)
        except psycopg.Error as exc:
            raise connect_failure(self.url, exc) from exc
        with conn:
            if wait:
                conn.execute("SELECT pg_advisory_lock(hashtextextended(%s, 0))", (key,))
            else:
                row = conn.execute("SELECT pg_try_advisory_lock(hashtextextended(%s, 0))", (key,)).fetchone()
                if not row or not row[0]:
                    raise KnowledgeBaseBusy(
                        f"knowledge base {name!r} is being written (an ingest is running); try again when it ends"
                    )
            try:
                yield
            finally:
                with contextlib.suppress(psycopg.Error):  # a lost connection released it already
                    conn.execute("SELECT pg_advisory_unlock(hashtextextended(%s, 0))", (key,))

    def adopt(self, kb: str, sqlite_path: Path) -> None:
        """Copy a knowledge base's SQLite catalog (made before ``ZHIWEN_DATABASE_URL`` was set) into the
        database, once: call it under ``write_lock``. The file is then renamed ``kb.sqlite.moved`` (kept as a
        backup, never read again), so the rows in the database are the only catalog from then on."""
        if self.exists(kb) or not sqlite_path.exists():
            return
        src = sqlite3.connect(f"file:{sqlite_path}?mode=ro", uri=True)
        try:
            meta = dict(src.execute("SELECT key, value FROM meta").fetchall())
            docs = src.execute("SELECT * FROM documents").fetchall()
            chunks = src.execute(
                "SELECT chunk_id, doc_id, ordinal, text, tokens, metadata FROM chunks ORDER BY rowid"
            ).fetchall()
            chunking = src.execute("SELECT doc_id, version FROM chunking").fetchall()
            flags = src.execute("SELECT doc_id, reasons FROM flags").fetchall()
        finally:
            src.close()
        with self._pool.connection() as conn, conn.transaction(), conn.cursor() as cur:
            cur.execute(
                "INSERT INTO zhiwen_kbs VALUES (%s, %s, %s)", (kb, meta.get("name") or kb, time.time())
            )
            cur.executemany(
                "INSERT INTO zhiwen_kb_meta VALUES (%s, %s, %s)", [(kb, k, v) for k, v in meta.items()]
            )
            cur.executemany(
                "INSERT INTO zhiwen_kb_documents VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                [(kb, *d) for d in docs],
            )
            cur.executemany(
                "INSERT INTO zhiwen_kb_chunks (kb, chunk_id, doc_id, ordinal, text, tokens, metadata) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                [(kb, *c) for c in chunks],
            )
            cur.executemany(
                "INSERT INTO zhiwen_kb_chunking VALUES (%s, %s, %s)", [(kb, *c) for c in chunking]
            )
            cur.executemany("INSERT INTO zhiwen_kb_flags VALUES (%s, %s, %s)", [(kb, *f) for f in flags])
        sqlite_path.rename(sqlite_path.with_name("kb.sqlite.moved"))
