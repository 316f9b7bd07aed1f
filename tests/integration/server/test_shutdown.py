"""A server closes every store it opened: at shutdown even when closing one part fails (the shared database
gone), and when it refuses to start. A store left open is closed by the garbage collector instead, which for
a PostgreSQL pool means joining its threads on whatever thread the collection runs."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest

from zhiwen.memory.feedback import FeedbackStore
from zhiwen.memory.keys import KeyStore
from zhiwen.server import app as app_module
from zhiwen.server.app import create_app, refuse_unguarded
from zhiwen.server.quotas import Ledger

if TYPE_CHECKING:
    from conftest import Env, Kit

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]


def _record_closes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    closed: list[str] = []
    for cls, name in ((KeyStore, "keys"), (Ledger, "quotas"), (FeedbackStore, "feedback")):
        real = cls.close

        def close(self: Any, real: Any = real, name: str = name) -> None:
            closed.append(name)
            real(self)

        monkeypatch.setattr(cls, "close", close)
    return closed


def test_a_failing_close_at_shutdown_still_closes_every_store(
    env: Env, kit: type[Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = _record_closes(monkeypatch)
    real_open = app_module.open_coordinator

    def coordinator_that_cannot_close(*args: Any) -> Any:
        coordination = real_open(*args)

        async def close() -> None:
            closed.append("coordination")
            raise RuntimeError("the shared database went away")

        coordination.close = close
        return coordination

    monkeypatch.setattr(app_module, "open_coordinator", coordinator_that_cannot_close)
    with kit.serve(create_app(kit.open_settings(gc_freeze=False), start_model=False)) as url:
        assert httpx.get(f"{url}/live", timeout=30).status_code == 200
        assert closed == [], "nothing is closed while the server runs"
    assert sorted(closed) == ["coordination", "feedback", "keys", "quotas"]
    assert closed.index("coordination") < closed.index("keys"), "the key store, opened first, closes last"


def test_a_server_that_refuses_to_start_closes_its_key_store(
    env: Env, kit: type[Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    closed = _record_closes(monkeypatch)
    unguarded = kit.open_settings(gc_freeze=False).model_copy(update={"allow_open": False, "api_keys": ""})
    with pytest.raises(SystemExit, match="ZHIWEN_API_KEYS"):
        create_app(unguarded, start_model=False)
    assert closed == ["keys"]
    with pytest.raises(Exception, match="ZHIWEN_API_KEYS"):
        refuse_unguarded(unguarded)  # as `zhiwen serve` calls it, before uvicorn starts
    assert closed == ["keys", "keys"]
