"""A shared small store whose database cannot be reached closes its pool before the error goes up."""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

import pytest

psycopg_pool = pytest.importorskip("psycopg_pool")

from zhiwen.memory.small_store import open_sql  # noqa: E402


class _UnreachablePool:
    """Opens (in the background, as psycopg_pool does) but never hands out a connection."""

    made: ClassVar[list[_UnreachablePool]] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self.closed = False
        _UnreachablePool.made.append(self)

    @staticmethod
    def check_connection(conn: Any) -> None:  # the real pool's check, named in the constructor call
        return None

    def connection(self) -> Any:
        raise psycopg_pool.PoolTimeout("couldn't get a connection after 30.00 sec")

    def close(self) -> None:
        self.closed = True


def test_a_failed_open_closes_its_pool(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(psycopg_pool, "ConnectionPool", _UnreachablePool)
    with pytest.raises(psycopg_pool.PoolTimeout):
        open_sql(
            tmp_path / "unused.sqlite", "postgresql://db.invalid/zhiwen", "CREATE TABLE t (x INTEGER)", ("t",)
        )
    assert len(_UnreachablePool.made) == 1 and _UnreachablePool.made[0].closed
