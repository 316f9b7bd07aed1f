"""Fixtures shared by the whole suite."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fakes import HashEmbedder

from zhiwen.settings import get_settings
from zhiwen.tools.embeddings import E5Embedder


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
