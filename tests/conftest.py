"""Fixtures shared by the whole suite."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import HashEmbedder

from zhiwen.settings import get_settings
from zhiwen.tools.embeddings import E5Embedder

# Most tests script the model's replies and ask the same question more than once: a cached answer would
# skip the model. The answer cache's own tests turn it on (tests/**/test_answer_cache*.py). Servers the tests
# start inherit this.
os.environ["ZHIWEN_ANSWER_CACHE"] = "off"


@pytest.fixture
def zhiwen_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A fresh ``ZHIWEN_HOME`` for one test; settings are re-read from the environment."""
    home = tmp_path / "zhiwen-home"
    home.mkdir()
    monkeypatch.setenv("ZHIWEN_HOME", str(home))
    get_settings.cache_clear()
    yield home
    get_settings.cache_clear()


@pytest.fixture(scope="session")
def e5() -> E5Embedder:
    """The real multilingual-e5-small embedder, loaded once per session."""
    return E5Embedder()


@pytest.fixture
def fake_embedder() -> HashEmbedder:
    """A fast deterministic embedder whose vectors are close for texts sharing tokens."""
    return HashEmbedder()


@pytest.fixture
def no_blocking_calls() -> Iterator[None]:
    """Fail any blocking call made on a running event loop, as ``langgraph dev`` does (it runs graphs
    under ``blockbuster``), but stricter: file reads and writes, ``os.stat`` and lock waits count too.

    Blocking calls in worker threads (``asyncio.to_thread``) are allowed; that is where they belong.
    """
    from blockbuster import BlockBuster

    detector = BlockBuster(excluded_modules=[])
    for module, func in (("logging/__init__.py", "emit"), ("logging/__init__.py", "flush")):
        # pytest captures log records on the loop thread: the test's own plumbing, not the turn's.
        for name in ("io.TextIOWrapper.write", "io.BufferedWriter.write"):
            detector.functions[name].can_block_in(module, func)
    detector.activate()
    try:
        yield
    finally:
        detector.deactivate()
