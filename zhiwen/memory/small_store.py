"""The base of zhiwen's small stores (keys, ingest jobs, quotas): a SQLite file, or the shared PostgreSQL.

``SmallStore`` is the SQLite file: one connection, one lock, a schema. ``open_sql`` gives the same tables
through one small interface (``rows`` for one statement, ``transaction`` for several that must not interleave
with another replica's) on either engine, so a store written once runs in ``ZHIWEN_HOME`` or, with
``ZHIWEN_DATABASE_URL``, in the database every replica shares. SQL is written for SQLite (``?`` placeholders);
on PostgreSQL the placeholders become ``%s`` and each table name gets the prefix ``zhiwen_``.
"""

from __future__ import annotations

import re
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol

from zhiwen.memory.pg_pool import open_pool

__all__ = ["Rows", "SmallStore", "Sql", "open_sql"]


class SmallStore:
    """A SQLite file made (with its folder) on first use. Thread-safe when every access holds ``_lock``;
    callers on an event loop call it from a worker thread."""

    def __init__(self, path: Path, schema: str) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.executescript(schema)

    def close(self) -> None:
        # Under the lock: closing a connection while another thread runs a statement on it crashes the
        # process (a segfault in SQLite, seen when the server stopped mid key-refresh); after it, a late
        # reader gets sqlite3.ProgrammingError instead.
        with self._lock:
            self._db.close()


class Rows(Protocol):
    def rows(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        """The rows ``query`` returns (none for a statement that returns none)."""
        ...


class Sql(Rows, Protocol):
    """Blocking calls: from an event loop, call them in a worker thread."""

    def transaction(self, lock: str) -> Any:
        """A context manager yielding ``Rows`` whose statements commit together; transactions with the same
        ``lock`` run one at a time (across replicas on PostgreSQL)."""
        ...

    def close(self) -> None: ...


class _Sqlite(SmallStore):
    def rows(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._lock, self._db:
            return self._db.execute(query, args).fetchall()

    @contextmanager
    def transaction(self, lock: str) -> Iterator[Rows]:
        with self._lock, self._db:
            yield _Cursor(lambda q, a: self._db.execute(q, a).fetchall())


class _Cursor:
    def __init__(self, run: Any) -> None:
        self._run = run

    def rows(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        found: list[tuple[Any, ...]] = self._run(query, args)
        return found


class _Postgres:
    """A connection pool, so a database restart is survived (the next call reconnects)."""

    def __init__(self, url: str, schema: str, tables: tuple[str, ...]) -> None:
        self._names = re.compile(r"\b(" + "|".join(map(re.escape, tables)) + r")\b") if tables else None
        self._pool = open_pool(url, self._sql(schema), max_size=2)

    def _sql(self, query: str) -> str:
        query = query.replace("?", "%s").replace("BLOB", "BYTEA").replace(" REAL ", " DOUBLE PRECISION ")
        return self._names.sub(r"zhiwen_\1", query) if self._names else query

    def _run(self, conn: Any, query: str, args: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        cursor = conn.execute(self._sql(query), args)
        found = cursor.fetchall() if cursor.description else []
        return [tuple(bytes(v) if isinstance(v, memoryview) else v for v in row) for row in found]

    def rows(self, query: str, args: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
        with self._pool.connection() as conn:
            return self._run(conn, query, args)

    @contextmanager
    def transaction(self, lock: str) -> Iterator[Rows]:
        with self._pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", (lock,))
            yield _Cursor(lambda q, a: self._run(conn, q, a))

    def close(self) -> None:
        self._pool.close()


def open_sql(path: Path, database_url: str | None, schema: str, tables: tuple[str, ...]) -> Sql:
    """``schema`` (SQLite DDL, ``;``-separated) in the SQLite file ``path``, or in the shared database when
    ``database_url`` is set, where each of ``tables`` is named ``zhiwen_<table>``."""
    if database_url:
        return _Postgres(database_url, schema, tables)
    return _Sqlite(path, schema)
