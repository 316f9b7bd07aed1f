"""The base of zhiwen's small SQLite stores (keys, ingest jobs, quotas): one connection, one lock, a schema."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

__all__ = ["SmallStore"]


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
        self._db.close()
