"""Opening a shared store's pool: an unreachable database is one ``StoreUnavailable`` line, a database that
refuses the tables is one ``ZhiwenError`` line, and a failed open closes its pool before the error goes up."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, ClassVar

import pytest

psycopg = pytest.importorskip("psycopg")
psycopg_pool = pytest.importorskip("psycopg_pool")

from zhiwen.errors import StoreUnavailable, ZhiwenError  # noqa: E402
from zhiwen.memory.small_store import open_sql  # noqa: E402


class _Conn:
    def __init__(self, fail: BaseException | None) -> None:
        self.fail = fail
        self.statements: list[str] = []

    def __enter__(self) -> _Conn:
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def transaction(self) -> _Conn:
        return self

    def execute(self, statement: str, *args: Any) -> None:
        self.statements.append(statement)
        if self.fail is not None and statement.startswith("CREATE"):
            raise self.fail


class _Pool:
    """A pool that opens or times out, and whose connection fails the schema's statements as told."""

    made: ClassVar[list[_Pool]] = []
    open_fails = False
    schema_fails: BaseException | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.closed = False
        self.conn = _Conn(_Pool.schema_fails)
        _Pool.made.append(self)

    @staticmethod
    def check_connection(conn: Any) -> None:  # the real pool's check, named in the constructor call
        return None

    def open(self, wait: bool, timeout: float) -> None:
        if _Pool.open_fails:
            raise psycopg_pool.PoolTimeout(f"pool initialization incomplete after {timeout} sec")

    def connection(self) -> _Conn:
        return self.conn

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def reachable(monkeypatch: pytest.MonkeyPatch) -> type[_Pool]:
    """The first plain connection succeeds; the pool is ``_Pool``."""

    class _Plain:
        def close(self) -> None:
            return None

    monkeypatch.setattr(psycopg, "connect", lambda *a, **k: _Plain())
    monkeypatch.setattr(psycopg_pool, "ConnectionPool", _Pool)
    monkeypatch.setattr(_Pool, "made", [])
    return _Pool


def _open(tmp_path: Path, url: str = "postgresql://db.invalid/zhiwen") -> Any:
    return open_sql(tmp_path / "unused.sqlite", url, "CREATE TABLE t (x INTEGER)", ("t",))


def test_an_unreachable_database_is_one_line_without_the_password(tmp_path: Path) -> None:
    # A real connection attempt to a closed port: refused at once, no pool made.
    with pytest.raises(StoreUnavailable) as caught:
        _open(tmp_path, "postgresql://zhiwen:s3cret@127.0.0.1:9/none?connect_timeout=2")
    message = str(caught.value)
    assert message.startswith("cannot reach the database at postgresql://zhiwen:")
    assert "127.0.0.1:9" in message and "s3cret" not in message and "\n" not in message


def test_a_pool_that_cannot_open_is_closed_and_reported(reachable: type[_Pool], tmp_path: Path) -> None:
    reachable.open_fails = True
    try:
        with pytest.raises(StoreUnavailable, match="pool initialization incomplete"):
            _open(tmp_path)
    finally:
        reachable.open_fails = False
    assert len(reachable.made) == 1 and reachable.made[0].closed


def test_tables_the_database_refuses_are_not_called_unreachable(
    reachable: type[_Pool], tmp_path: Path
) -> None:
    reachable.schema_fails = psycopg.errors.InsufficientPrivilege("permission denied for schema public")
    try:
        with pytest.raises(ZhiwenError, match=r"cannot make zhiwen's tables .*permission denied") as caught:
            _open(tmp_path)
    finally:
        reachable.schema_fails = None
    assert not isinstance(caught.value, StoreUnavailable)
    assert len(reachable.made) == 1 and reachable.made[0].closed


def test_the_schema_runs_under_the_schema_lock_with_the_prefixed_names(
    reachable: type[_Pool], tmp_path: Path
) -> None:
    sql = _open(tmp_path)
    statements = reachable.made[0].conn.statements
    assert "pg_advisory_xact_lock" in statements[0]
    assert statements[1:] == ["CREATE TABLE zhiwen_t (x INTEGER)"]
    sql.close()
    assert reachable.made[0].closed


def test_the_catalog_opens_its_pool_the_same_way(reachable: type[_Pool]) -> None:
    from zhiwen.memory import catalog_pg

    catalog_pg.close_pools()
    try:
        pool = catalog_pg._pool("postgresql://db.invalid/zhiwen")
        assert pool is reachable.made[0] and catalog_pg._pool("postgresql://db.invalid/zhiwen") is pool
        assert any("CREATE TABLE IF NOT EXISTS zhiwen_kbs" in s for s in pool.conn.statements)
    finally:
        catalog_pg.close_pools()
    assert reachable.made[0].closed


def test_the_checkpointer_checks_its_url_before_making_a_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("langgraph.checkpoint.postgres.aio")
    from zhiwen.memory.checkpointer import open_checkpointer

    made: list[object] = []
    monkeypatch.setattr(psycopg_pool, "AsyncConnectionPool", lambda *a, **k: made.append(a))
    monkeypatch.setenv(
        "ZHIWEN_CHECKPOINT_URL", "postgresql://zhiwen:s3cret@127.0.0.1:9/none?connect_timeout=2"
    )

    async def open_it() -> None:
        async with open_checkpointer():
            raise AssertionError("opened a checkpointer on a closed port")

    with pytest.raises(StoreUnavailable, match=r"^cannot reach the database at postgresql://zhiwen:\*\*\*@"):
        asyncio.run(open_it())
    assert made == []  # no pool was made, so none waits out its 30 s


def test_a_connect_timeout_in_the_url_is_kept(monkeypatch: pytest.MonkeyPatch) -> None:
    from zhiwen.memory.pg_pool import check_reachable

    seen: list[dict[str, Any]] = []

    class _Plain:
        def close(self) -> None:
            return None

    monkeypatch.setattr(psycopg, "connect", lambda url, **kw: seen.append(kw) or _Plain())
    check_reachable("postgresql://db.invalid/zhiwen?connect_timeout=45")  # a database slow to wake
    check_reachable("postgresql://db.invalid/zhiwen")
    assert seen == [{}, {"connect_timeout": 10}]
