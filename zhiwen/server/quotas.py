"""How many knowledge bases and threads each key has made, so that no key can fill the server.

A row per thing a key made (``kind`` ``kb`` or ``thread``), in ``ZHIWEN_HOME/quotas.sqlite`` (or the shared
database's ``zhiwen_owned`` with ``ZHIWEN_DATABASE_URL``, so replicas count together); a claim beyond
the key's limit is refused. Threads made before this ledger existed are counted once they are next used.
Being the record of whose threads are whose, it also lists a key's threads and keeps their titles
(``thread_titles``: a rename, or the knowledge base a thread was made for).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Literal

from zhiwen.memory.small_store import Sql, open_sql
from zhiwen.server.errors import APIError

__all__ = ["Kind", "Ledger"]

Kind = Literal["kb", "thread"]


class Ledger:
    """Blocking (SQLite, or the shared database): call it off the event loop."""

    def __init__(self, path: Path, limits: dict[Kind, int], database_url: str | None = None) -> None:
        self._sql: Sql = open_sql(
            path,
            database_url,
            "CREATE TABLE IF NOT EXISTS owned (kind TEXT NOT NULL, owner TEXT NOT NULL, name TEXT NOT NULL, "
            "made REAL NOT NULL, PRIMARY KEY (kind, owner, name));"
            "CREATE TABLE IF NOT EXISTS thread_titles (name TEXT PRIMARY KEY, title TEXT NOT NULL, "
            "kb TEXT NOT NULL)",
            ("owned", "thread_titles"),
        )
        self.limits = limits

    def close(self) -> None:
        self._sql.close()

    def claim(self, kind: Kind, owner: str, name: str) -> None:
        """Count ``name`` as ``owner``'s (again: nothing changes); ``APIError`` 429 past the limit. Claims by
        one owner are serialised (across replicas too), so two at once cannot both take the last place."""
        with self._sql.transaction(f"quota:{kind}:{owner}") as db:
            if db.rows("SELECT 1 FROM owned WHERE kind = ? AND owner = ? AND name = ?", (kind, owner, name)):
                return
            ((count,),) = db.rows("SELECT COUNT(*) FROM owned WHERE kind = ? AND owner = ?", (kind, owner))
            limit = self.limits[kind]
            if count >= limit:
                what = "knowledge bases" if kind == "kb" else "threads"
                setting = "ZHIWEN_MAX_KBS_PER_KEY" if kind == "kb" else "ZHIWEN_MAX_THREADS_PER_KEY"
                raise APIError(
                    429,
                    f"this key has made {count} {what}, its limit ({setting}); delete some first",
                    None,
                    "quota_exceeded",
                )
            db.rows("INSERT INTO owned VALUES (?, ?, ?, ?)", (kind, owner, name, time.time()))

    def release(self, kind: Kind, name: str, owner: str | None = None) -> None:
        """Forget ``name`` (a deleted thread: its owner's; a dropped knowledge base: whoever made it)."""
        if owner is None:
            self._sql.rows("DELETE FROM owned WHERE kind = ? AND name = ?", (kind, name))
        else:
            self._sql.rows("DELETE FROM owned WHERE kind = ? AND owner = ? AND name = ?", (kind, owner, name))
        if kind == "thread":
            self._sql.rows("DELETE FROM thread_titles WHERE name = ?", (name,))

    def threads(self, owner: str, prefix: str, limit: int) -> list[tuple[str, float, str, str]]:
        """``owner``'s threads whose stored name starts with ``prefix``, newest first, at most ``limit``:
        (stored name, made, title, knowledge base); title and knowledge base are "" when never set."""
        rows = self._sql.rows(
            "SELECT o.name, o.made, COALESCE(t.title, ''), COALESCE(t.kb, '') FROM owned o "
            "LEFT JOIN thread_titles t ON t.name = o.name WHERE o.kind = 'thread' AND o.owner = ? "
            "AND substr(o.name, 1, ?) = ? ORDER BY o.made DESC, o.name LIMIT ?",
            (owner, len(prefix), prefix, limit),
        )
        return [(str(n), float(m), str(t), str(k)) for n, m, t, k in rows]

    def thread(self, owner: str, name: str) -> tuple[str, float, str, str] | None:
        """One of ``owner``'s threads as ``threads`` lists it, or None."""
        rows = self._sql.rows(
            "SELECT o.name, o.made, COALESCE(t.title, ''), COALESCE(t.kb, '') FROM owned o "
            "LEFT JOIN thread_titles t ON t.name = o.name WHERE o.kind = 'thread' AND o.owner = ? "
            "AND o.name = ?",
            (owner, name),
        )
        return next(((str(n), float(m), str(t), str(k)) for n, m, t, k in rows), None)

    def retitle(self, name: str, title: str | None = None, kb: str | None = None) -> None:
        """Set a thread's title and/or knowledge base (``None``: keep what is stored)."""
        with self._sql.transaction(f"title:{name}") as db:
            found = db.rows("SELECT title, kb FROM thread_titles WHERE name = ?", (name,))
            old_title, old_kb = found[0] if found else ("", "")
            new = (old_title if title is None else title, old_kb if kb is None else kb)
            if found:
                db.rows("UPDATE thread_titles SET title = ?, kb = ? WHERE name = ?", (*new, name))
            else:
                db.rows("INSERT INTO thread_titles VALUES (?, ?, ?)", (name, *new))
