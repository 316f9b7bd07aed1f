"""Opening a connection pool on the shared PostgreSQL (``ZHIWEN_DATABASE_URL``), with its tables made.

The small stores (keys, jobs, quotas, feedback, the answer cache) and the knowledge-base catalogs open their
pools here (and the checkpointer checks its URL with ``check_reachable``), so every store fails the same way when the database cannot be reached: one ``StoreUnavailable``
line naming the (redacted) URL within seconds, not a pool's 30-second wait ending in ``PoolTimeout``.
"""

from __future__ import annotations

from typing import Any

from zhiwen.errors import StoreUnavailable, ZhiwenError, first_line
from zhiwen.settings import redact_url

__all__ = ["check_reachable", "connect_failure", "open_pool"]

_CONNECT_TIMEOUT_S = 10
_OPEN_TIMEOUT_S = 15


def open_pool(url: str, schema: str, *, max_size: int) -> Any:
    """An open ``psycopg_pool.ConnectionPool`` on ``url`` (autocommit; each connection checked before it is
    lent, so a database restart costs the calls made while it is down, not the process), after running
    ``schema`` (PostgreSQL DDL, ``;``-separated) under an advisory lock: replicas starting together race on
    ``CREATE TABLE IF NOT EXISTS`` otherwise (a unique violation in ``pg_type``).

    Raises ``ZhiwenError`` when the PostgreSQL extra is not installed and ``StoreUnavailable`` when the
    database cannot be reached; the pool is closed before either goes up.
    """
    try:
        import psycopg
        from psycopg_pool import ConnectionPool, PoolTimeout
    except ImportError as exc:
        raise ZhiwenError("ZHIWEN_DATABASE_URL is PostgreSQL: pip install 'zhiwen[postgres]'") from exc
    check_reachable(url)
    pool = ConnectionPool(
        url, min_size=1, max_size=max_size, kwargs={"autocommit": True},
        check=ConnectionPool.check_connection, open=False,
    )  # fmt: skip
    try:
        pool.open(wait=True, timeout=_OPEN_TIMEOUT_S)
        with pool.connection() as conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('zhiwen-schema', 0))")
            for statement in filter(str.strip, schema.split(";")):
                conn.execute(statement)
    except BaseException as exc:
        # Close now, not in the pool's __del__ (which joins its worker threads wherever garbage collection
        # runs, an event loop included), so a failed open leaves no threads behind.
        pool.close()
        if isinstance(exc, (psycopg.OperationalError, PoolTimeout)):
            raise connect_failure(url, exc) from exc
        if isinstance(exc, psycopg.Error):  # reached, but the tables cannot be made (a role without CREATE)
            raise ZhiwenError(
                f"cannot make zhiwen's tables in the database at {redact_url(url)}: {first_line(exc)}"
            ) from exc
        raise
    return pool


def check_reachable(url: str) -> None:
    """One plain connection to ``url``, closed at once; ``StoreUnavailable`` if it fails. A pool would retry for
    its whole timeout (30 s by default) and then say only that it timed out."""
    try:
        import psycopg
        from psycopg.conninfo import conninfo_to_dict
    except ImportError as exc:
        raise ZhiwenError("a postgresql:// URL is set: pip install 'zhiwen[postgres]'") from exc
    try:
        # A connect_timeout in the URL wins (a database slow to wake); else ours, not libpq's endless wait.
        if "connect_timeout" in conninfo_to_dict(url):
            psycopg.connect(url).close()
        else:
            psycopg.connect(url, connect_timeout=_CONNECT_TIMEOUT_S).close()
    except psycopg.Error as exc:
        raise connect_failure(url, exc) from exc


def connect_failure(url: str, exc: BaseException) -> StoreUnavailable:
    """The one-line error for a database at ``url`` that could not be reached (the password left out)."""
    return StoreUnavailable(f"cannot reach the database at {redact_url(url)}: {first_line(exc)}")
