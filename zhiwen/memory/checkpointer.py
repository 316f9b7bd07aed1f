"""Conversation memory: a SQLite checkpointer by default (threads survive restarts), Postgres for scale.

Set ``ZHIWEN_CHECKPOINT_URL=postgresql://...`` (or ``ZHIWEN_DATABASE_URL``, the shared database) (with ``langgraph-checkpoint-postgres`` installed) to
share threads between server replicas; otherwise threads live in ``$ZHIWEN_HOME/threads.sqlite``.
"""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver

from zhiwen.errors import ZhiwenError
from zhiwen.memory.pg_pool import check_reachable
from zhiwen.settings import get_settings, redact_url

__all__ = ["checkpoint_url", "open_checkpointer"]


def checkpoint_url() -> str:
    """The PostgreSQL URL threads are kept in (``ZHIWEN_CHECKPOINT_URL``, else ``ZHIWEN_DATABASE_URL``), or ""
    for the SQLite file in ``ZHIWEN_HOME``."""
    url = os.environ.get("ZHIWEN_CHECKPOINT_URL", "") or (get_settings().database_url or "")
    if url and not url.startswith(("postgres://", "postgresql://")):
        # Any other value used to fall back to SQLite without a word: threads a replica never shares.
        raise ZhiwenError(
            f"ZHIWEN_CHECKPOINT_URL must be a postgresql:// URL, or unset for SQLite in ZHIWEN_HOME (got {redact_url(url)!r})"
        )
    return url


@asynccontextmanager
async def open_checkpointer(path: Path | None = None) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """An async checkpointer, open for the duration of the context."""
    url = checkpoint_url()
    # Imports and file-system calls run in a worker thread: a first import reads files (psycopg's loads its
    # C library), and a server opens its checkpointer on the event loop every request shares.
    if url:
        try:
            postgres = await asyncio.to_thread(importlib.import_module, "langgraph.checkpoint.postgres.aio")
        except ImportError as exc:
            raise ZhiwenError(
                "ZHIWEN_CHECKPOINT_URL is Postgres: pip install langgraph-checkpoint-postgres"
            ) from exc
        # A pool, not the one connection of ``from_conn_string``: that one died with a database restart and
        # every later turn failed; the pool checks a connection before lending it and replaces a broken one.
        await asyncio.to_thread(check_reachable, url)  # one line in a second, not the pool's 30 s wait
        rows = await asyncio.to_thread(importlib.import_module, "psycopg.rows")
        pools = await asyncio.to_thread(importlib.import_module, "psycopg_pool")
        pool = pools.AsyncConnectionPool(
            url,
            min_size=1,
            max_size=10,
            kwargs={"autocommit": True, "prepare_threshold": 0, "row_factory": rows.dict_row},
            check=pools.AsyncConnectionPool.check_connection,
            open=False,
        )
        await pool.open(wait=False)
        try:
            saver = postgres.AsyncPostgresSaver(conn=pool)
            # Replicas starting together ran the saver's migrations twice: the second failed on a duplicate
            # migration row and that replica never started. One replica at a time migrates.
            async with pool.connection() as lock:
                # Polled, never waited for inside one statement: the migrations CREATE INDEX CONCURRENTLY,
                # which waits for every statement holding a snapshot, a blocked pg_advisory_lock included;
                # three replicas starting together deadlocked that way.
                key = "SELECT pg_try_advisory_lock(hashtextextended('zhiwen-checkpoint-setup', 0)) AS taken"
                while not ((await (await lock.execute(key)).fetchone()) or {}).get("taken"):
                    await asyncio.sleep(0.2)
                try:
                    await saver.setup()
                finally:
                    await lock.execute(
                        "SELECT pg_advisory_unlock(hashtextextended('zhiwen-checkpoint-setup', 0))"
                    )
            yield saver
        finally:
            await pool.close()
        return
    sqlite = await asyncio.to_thread(importlib.import_module, "langgraph.checkpoint.sqlite.aio")
    db = path or get_settings().home / "threads.sqlite"
    await asyncio.to_thread(db.parent.mkdir, parents=True, exist_ok=True)
    async with sqlite.AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        yield saver
