"""Event ids already taken: Feishu delivers an event again when it thinks the callback failed.

In ``ZHIWEN_HOME/feishu.sqlite``, or the shared database (``zhiwen_feishu_events``) so that a retry that
reaches another replica is recognised too. An id is taken when the event arrives, before it runs: a turn
that dies with its process is not answered by a retry (at most once, never twice).
"""

from __future__ import annotations

import time
from pathlib import Path

from zhiwen.memory.small_store import Sql, open_sql

__all__ = ["EventLog"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS feishu_events (event_id TEXT PRIMARY KEY, seen REAL NOT NULL);"
    "CREATE INDEX IF NOT EXISTS feishu_events_by_time ON feishu_events (seen)"
)
KEEP_SECONDS = 2 * 86400.0
"""Feishu retries for a few hours at most; ids older than this are forgotten."""


class EventLog:
    """Blocking: from an event loop, call it in a worker thread."""

    def __init__(self, path: Path, database_url: str | None = None) -> None:
        self._sql: Sql = open_sql(path, database_url, _SCHEMA, ("feishu_events",))
        self._pruned = 0.0

    def first_time(self, event_id: str) -> bool:
        """Take ``event_id``: True the first time, False for every later delivery (on any replica)."""
        now = time.time()
        taken = self._sql.rows(
            "INSERT INTO feishu_events VALUES (?, ?) ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
            (event_id, now),
        )
        if now - self._pruned > 600:
            self._pruned = now
            self._sql.rows("DELETE FROM feishu_events WHERE seen < ?", (now - KEEP_SECONDS,))
        return bool(taken)

    def close(self) -> None:
        self._sql.close()
