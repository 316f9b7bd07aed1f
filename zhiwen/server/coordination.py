"""What replicas must agree on: per-key rate and concurrency limits, and one running turn per thread.

``LocalCoordinator`` keeps both in the process (one server). ``PostgresCoordinator`` keeps them in the shared
database (``ZHIWEN_DATABASE_URL``) so that N replicas enforce one limit, not N, and a second message on a
thread whose turn runs on another replica gets the same 409:

* rate: a token bucket per key, a row updated under ``SELECT ... FOR UPDATE`` against the database's clock
  (replicas' clocks may differ);
* concurrency: a row per request in flight with an expiry that the replica renews while the request runs,
  so a replica killed mid-request frees its slots within ``LEASE_SECONDS``;
* one turn per thread: a session-level advisory lock held on a pooled connection for the turn; a replica
  that dies drops its connection and PostgreSQL releases the lock at once.

Written here rather than taken from a library: the rate limiters on PyPI are per-process or Redis-based,
and the deployment this serves has PostgreSQL already.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from typing import Any, Protocol

from zhiwen.errors import ZhiwenError
from zhiwen.settings import redact_url

__all__ = [
    "LEASE_SECONDS",
    "Coordinator",
    "LocalCoordinator",
    "PostgresCoordinator",
    "ThreadLease",
    "open_coordinator",
]

LEASE_SECONDS = 30.0
"""How long a request-in-flight row lives without renewal (renewed every third of it)."""


class ThreadLease(Protocol):
    """Held while a thread's turn runs; ``release`` lets the next message in (idempotent)."""

    async def release(self) -> None: ...


class Coordinator(Protocol):
    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def take(self, key: str) -> tuple[float, str]:
        """``(0, slot)`` if the request may go ahead (counted until ``release(slot)``), else
        ``(seconds to wait, "")``."""
        ...

    async def release(self, slot: str) -> None: ...

    async def lock_thread(self, thread: str) -> ThreadLease | None:
        """A lease on ``thread``, or None when a turn on it runs (on any replica)."""
        ...

    async def healthy(self) -> tuple[bool, str]:
        """Whether the shared store answers (for ``/ready``)."""
        ...


def _refill(tokens: float, elapsed: float, rate_per_minute: int) -> float:
    return min(float(rate_per_minute), tokens + max(elapsed, 0.0) * rate_per_minute / 60.0)


def _wait_for_token(tokens: float, rate_per_minute: int) -> float:
    return (1.0 - tokens) * 60.0 / rate_per_minute


@dataclass
class _Bucket:
    tokens: float
    updated: float
    in_flight: int = 0


@dataclass
class _LocalLease:
    owner: LocalCoordinator
    thread: str

    async def release(self) -> None:
        self.owner.threads.discard(self.thread)


@dataclass
class LocalCoordinator:
    """Limits and thread locks within this process (no awaits inside: nothing slips between check and count)."""

    rate_per_minute: int
    max_concurrent: int
    buckets: dict[str, _Bucket] = field(default_factory=dict)
    threads: set[str] = field(default_factory=set)
    where: str = "this process"

    async def open(self) -> None:
        return None

    async def close(self) -> None:
        return None

    async def take(self, key: str) -> tuple[float, str]:
        now = time.monotonic()
        b = self.buckets.setdefault(key, _Bucket(float(self.rate_per_minute), now))
        b.tokens, b.updated = _refill(b.tokens, now - b.updated, self.rate_per_minute), now
        if b.in_flight >= self.max_concurrent:
            return 1.0, ""
        if b.tokens < 1.0:
            return _wait_for_token(b.tokens, self.rate_per_minute), ""
        b.tokens -= 1.0
        b.in_flight += 1
        return 0.0, key

    async def release(self, slot: str) -> None:
        self.buckets[slot].in_flight -= 1

    async def lock_thread(self, thread: str) -> ThreadLease | None:
        if thread in self.threads:
            return None
        self.threads.add(thread)
        return _LocalLease(self, thread)

    async def healthy(self) -> tuple[bool, str]:
        return True, self.where


_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS zhiwen_rate (key TEXT PRIMARY KEY, tokens DOUBLE PRECISION NOT NULL, "
    "updated DOUBLE PRECISION NOT NULL)",
    "CREATE TABLE IF NOT EXISTS zhiwen_in_flight (slot TEXT PRIMARY KEY, key TEXT NOT NULL, "
    "expires DOUBLE PRECISION NOT NULL)",
    "CREATE INDEX IF NOT EXISTS zhiwen_in_flight_key ON zhiwen_in_flight (key)",
)
_NOW = "extract(epoch from clock_timestamp())::double precision"


@dataclass
class _PostgresLease:
    owner: PostgresCoordinator
    conn: Any
    lock_id: int
    released: bool = False

    async def release(self) -> None:
        if self.released:
            return
        self.released = True
        with contextlib.suppress(Exception):  # a broken connection has lost its locks already
            await self.conn.execute("SELECT pg_advisory_unlock(%s)", (self.lock_id,))
        await self.owner.locks.putconn(self.conn)


class PostgresCoordinator:
    """Limits and thread locks in the shared database, through connection pools that survive its restarts."""

    def __init__(self, url: str, rate_per_minute: int, max_concurrent: int, max_turns: int = 64) -> None:
        try:
            from psycopg_pool import AsyncConnectionPool
        except ImportError as exc:
            raise ZhiwenError("ZHIWEN_DATABASE_URL is PostgreSQL: pip install 'zhiwen[postgres]'") from exc
        self.rate_per_minute, self.max_concurrent = rate_per_minute, max_concurrent
        self.where = redact_url(url)
        common: dict[str, Any] = {
            "kwargs": {"autocommit": True},
            "check": AsyncConnectionPool.check_connection,  # a connection the restart broke is replaced
            "open": False,
            "timeout": 5.0,
        }
        self.pool = AsyncConnectionPool(url, min_size=1, max_size=4, **common)
        # One connection per running turn (a session-level advisory lock lives on its connection).
        self.locks = AsyncConnectionPool(url, min_size=0, max_size=max_turns, **common)
        self._mine: set[str] = set()
        self._renewer: asyncio.Task[None] | None = None

    async def open(self) -> None:
        await self.pool.open(wait=False)
        await self.locks.open(wait=False)
        with contextlib.suppress(Exception):  # a database down at start-up: /ready says so, calls retry
            await self._setup()
        self._renewer = asyncio.create_task(self._renew_forever())

    async def _setup(self) -> None:
        async with self.pool.connection() as conn, conn.transaction():
            # Replicas starting together race on CREATE TABLE IF NOT EXISTS (a unique violation in pg_type).
            await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('zhiwen-schema', 0))")
            for statement in _SCHEMA:
                await conn.execute(statement)

    async def close(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
        await self.locks.close()
        await self.pool.close()

    async def _renew_forever(self) -> None:
        while True:
            await asyncio.sleep(LEASE_SECONDS / 3)
            if self._mine:
                with contextlib.suppress(Exception):  # retried at the next beat; rows outlive one miss
                    async with self.pool.connection() as conn:
                        await conn.execute(
                            f"UPDATE zhiwen_in_flight SET expires = {_NOW} + %s WHERE slot = ANY(%s)",
                            (LEASE_SECONDS, list(self._mine)),
                        )

    async def take(self, key: str) -> tuple[float, str]:
        slot = uuid.uuid4().hex
        try:
            async with self.pool.connection() as conn, conn.transaction():
                await conn.execute(
                    f"INSERT INTO zhiwen_rate (key, tokens, updated) VALUES (%s, %s, {_NOW}) "
                    "ON CONFLICT (key) DO NOTHING",
                    (key, float(self.rate_per_minute)),
                )
                cur = await conn.execute(
                    f"SELECT tokens, {_NOW} - updated, {_NOW} FROM zhiwen_rate WHERE key = %s FOR UPDATE",
                    (key,),
                )
                row = await cur.fetchone()
                assert row is not None
                tokens, now = _refill(row[0], row[1], self.rate_per_minute), row[2]
                await conn.execute("DELETE FROM zhiwen_in_flight WHERE key = %s AND expires < %s", (key, now))
                cur = await conn.execute("SELECT count(*) FROM zhiwen_in_flight WHERE key = %s", (key,))
                counted = await cur.fetchone()
                wait = 0.0
                if counted is not None and counted[0] >= self.max_concurrent:
                    wait = 1.0
                elif tokens < 1.0:
                    wait = _wait_for_token(tokens, self.rate_per_minute)
                else:
                    tokens -= 1.0
                    await conn.execute(
                        "INSERT INTO zhiwen_in_flight (slot, key, expires) VALUES (%s, %s, %s)",
                        (slot, key, now + LEASE_SECONDS),
                    )
                await conn.execute("UPDATE zhiwen_rate SET tokens = %s, updated = %s WHERE key = %s",
                                   (tokens, now, key))  # fmt: skip
        except Exception as exc:
            raise CoordinationUnavailable(self.where, exc) from exc
        if wait:
            return wait, ""
        self._mine.add(slot)
        return 0.0, slot

    async def release(self, slot: str) -> None:
        self._mine.discard(slot)
        with contextlib.suppress(Exception):  # unreachable: the row expires by itself
            async with self.pool.connection() as conn:
                await conn.execute("DELETE FROM zhiwen_in_flight WHERE slot = %s", (slot,))

    async def lock_thread(self, thread: str) -> ThreadLease | None:
        try:
            conn = await self.locks.getconn()
        except Exception as exc:
            raise CoordinationUnavailable(self.where, exc) from exc
        try:
            cur = await conn.execute("SELECT hashtextextended(%s, 0), pg_try_advisory_lock(hashtextextended(%s, 0))",
                                     (thread, thread))  # fmt: skip
            row = await cur.fetchone()
        except Exception as exc:
            await self.locks.putconn(conn)
            raise CoordinationUnavailable(self.where, exc) from exc
        if row is None or not row[1]:
            await self.locks.putconn(conn)
            return None
        return _PostgresLease(self, conn, int(row[0]))

    async def healthy(self) -> tuple[bool, str]:
        try:
            async with self.pool.connection(timeout=2.0) as conn:
                await conn.execute("SELECT 1")
            await self._setup()
        except Exception as exc:
            return False, f"shared database unreachable: {type(exc).__name__}"
        return True, "shared database answers"


class CoordinationUnavailable(ZhiwenError):
    """The shared database that holds the limits and thread locks does not answer (503, retry later)."""

    def __init__(self, where: str, cause: BaseException) -> None:
        # Said to clients: no host or URL (the server's log has ``where``).
        super().__init__(f"the shared database is unreachable ({type(cause).__name__}); retry later")
        self.where = where


def open_coordinator(database_url: str | None, rate_per_minute: int, max_concurrent: int) -> Coordinator:
    """The shared-database coordinator when ``database_url`` is set, else the in-process one."""
    if database_url:
        return PostgresCoordinator(database_url, rate_per_minute, max_concurrent)
    return LocalCoordinator(rate_per_minute, max_concurrent)
