"""Closing a small store while another thread reads it: the reader gets an error, the process lives."""

from __future__ import annotations

import sqlite3
import threading
from pathlib import Path

from zhiwen.memory.small_store import Sql, open_sql

SLOW = (
    "WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 200000) SELECT COUNT(*) FROM n"
)


def _read_until_closed(store: Sql, started: threading.Event, seen: list[Exception]) -> None:
    try:
        while True:
            started.set()
            assert store.rows(SLOW) == [(200000,)]
    except sqlite3.ProgrammingError as exc:  # "Cannot operate on a closed database"
        seen.append(exc)


def test_a_store_closed_during_a_read_fails_the_late_reads_without_crashing(tmp_path: Path) -> None:
    for attempt in range(5):
        store = open_sql(tmp_path / f"s{attempt}.sqlite", None, "CREATE TABLE t (x INTEGER)", ("t",))
        started, seen = threading.Event(), list[Exception]()
        reader = threading.Thread(target=_read_until_closed, args=(store, started, seen))
        reader.start()
        started.wait(5)
        store.close()  # before the fix: a segfault when this landed mid-statement
        reader.join(30)
        assert not reader.is_alive() and len(seen) == 1
