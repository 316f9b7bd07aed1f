"""Conversation memory: a SQLite checkpointer by default (threads survive restarts), Postgres for scale.

Set ``ZHIWEN_CHECKPOINT_URL=postgresql://...`` (with ``langgraph-checkpoint-postgres`` installed) to
share threads between server replicas; otherwise threads live in ``$ZHIWEN_HOME/threads.sqlite``.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from langgraph.checkpoint.base import BaseCheckpointSaver

from zhiwen.errors import ZhiwenError
from zhiwen.settings import get_settings

__all__ = ["open_checkpointer"]


@asynccontextmanager
async def open_checkpointer(path: Path | None = None) -> AsyncIterator[BaseCheckpointSaver[str]]:
    """An async checkpointer, open for the duration of the context."""
    url = os.environ.get("ZHIWEN_CHECKPOINT_URL", "")
    if url and not url.startswith(("postgres://", "postgresql://")):
        # Any other value used to fall back to SQLite without a word: threads a replica never shares.
        raise ZhiwenError(
            f"ZHIWEN_CHECKPOINT_URL must be a postgresql:// URL, or unset for SQLite in ZHIWEN_HOME (got {url!r})"
        )
    if url:
        try:
            from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
        except ImportError as exc:
            raise ZhiwenError(
                "ZHIWEN_CHECKPOINT_URL is Postgres: pip install langgraph-checkpoint-postgres"
            ) from exc
        async with AsyncPostgresSaver.from_conn_string(url) as saver:
            await saver.setup()
            yield saver
        return
    from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver

    db = path or get_settings().home / "threads.sqlite"
    db.parent.mkdir(parents=True, exist_ok=True)
    async with AsyncSqliteSaver.from_conn_string(str(db)) as saver:
        yield saver
