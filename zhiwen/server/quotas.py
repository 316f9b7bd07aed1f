"""How many knowledge bases and threads each key has made, so that no key can fill the server.

A row per thing a key made (``kind`` ``kb`` or ``thread``), in ``ZHIWEN_HOME/quotas.sqlite``; a claim beyond
the key's limit is refused. Threads made before this ledger existed are counted once they are next used.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Literal

from zhiwen.server.errors import APIError

__all__ = ["Kind", "Ledger"]

Kind = Literal["kb", "thread"]


class Ledger:
    """Thread-safe; call it off the event loop (it is SQLite)."""

    def __init__(self, path: Path, limits: dict[Kind, int]) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.limits = limits
        self._db = sqlite3.connect(str(path), check_same_thread=False, timeout=30)
        self._lock = threading.Lock()
        with self._lock, self._db:
            self._db.execute(
                "CREATE TABLE IF NOT EXISTS owned (kind TEXT NOT NULL, owner TEXT NOT NULL, name TEXT NOT NULL, "
                "made REAL NOT NULL, PRIMARY KEY (kind, owner, name))"
            )

    def claim(self, kind: Kind, owner: str, name: str) -> None:
        """Count ``name`` as ``owner``'s (again: nothing changes); ``APIError`` 429 past the limit."""
        with self._lock, self._db:
            if self._db.execute(
                "SELECT 1 FROM owned WHERE kind = ? AND owner = ? AND name = ?", (kind, owner, name)
            ).fetchone():
                return
            (count,) = self._db.execute(
                "SELECT COUNT(*) FROM owned WHERE kind = ? AND owner = ?", (kind, owner)
            ).fetchone()
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
            self._db.execute("INSERT INTO owned VALUES (?, ?, ?, ?)", (kind, owner, name, time.time()))

    def release(self, kind: Kind, name: str, owner: str | None = None) -> None:
        """Forget ``name`` (a deleted thread: its owner's; a dropped knowledge base: whoever made it)."""
        with self._lock, self._db:
            if owner is None:
                self._db.execute("DELETE FROM owned WHERE kind = ? AND name = ?", (kind, name))
            else:
                self._db.execute(
                    "DELETE FROM owned WHERE kind = ? AND owner = ? AND name = ?", (kind, owner, name)
                )

    def close(self) -> None:
        self._db.close()
