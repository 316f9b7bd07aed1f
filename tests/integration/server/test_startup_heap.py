"""Start-up settles the heap: the default knowledge base is opened and the garbage collector frozen."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from typing import TYPE_CHECKING

import httpx
import pytest

from zhiwen.memory.registry import _kbs, close_all
from zhiwen.server.app import create_app

if TYPE_CHECKING:
    from conftest import Env, Kit

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    close_all()
    yield
    gc.unfreeze()  # do not leave the rest of the test session frozen


def _open_kb_names() -> set[str]:
    return {name for _root, name in _kbs}


def test_start_up_opens_the_default_kb_and_freezes_the_heap(env: Env, kit: type[Kit], unfrozen: None) -> None:
    settings = kit.open_settings(default_kb=kit.KB)
    with kit.serve(create_app(settings, start_model=False)) as url:
        assert kit.KB in _open_kb_names()  # opened before the first request
        assert gc.get_freeze_count() > 100_000  # LangChain, pydantic, Chroma... no longer scanned
        assert httpx.get(f"{url}/live", timeout=10).status_code == 200


def test_a_missing_default_kb_does_not_stop_start_up(env: Env, kit: type[Kit], unfrozen: None) -> None:
    with kit.serve(create_app(kit.open_settings(default_kb="no-such-kb"), start_model=False)) as url:
        assert httpx.get(f"{url}/live", timeout=10).status_code == 200
        assert "no-such-kb" not in _open_kb_names()


def test_gc_freeze_can_be_switched_off(env: Env, kit: type[Kit], unfrozen: None) -> None:
    with kit.serve(create_app(kit.open_settings(default_kb=kit.KB, gc_freeze=False), start_model=False)):
        assert gc.get_freeze_count() == 0
        assert kit.KB not in _open_kb_names()
