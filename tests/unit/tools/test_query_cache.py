"""The in-process embedder keeps recent query vectors, and can be told not to (benchmarks time the model)."""

from __future__ import annotations

import numpy as np

from zhiwen.tools.embeddings import E5Embedder


class _CountingModel:
    def __init__(self) -> None:
        self.calls = 0

    def query(self, text: str) -> np.ndarray:
        self.calls += 1
        return np.full(384, len(text), dtype=np.float32)


def _embedder(cache: int) -> tuple[E5Embedder, _CountingModel]:
    e = E5Embedder(query_cache=cache)
    model = _CountingModel()
    e._model = model  # skip loading the real engine: only the cache is under test
    return e, model


def test_repeated_queries_come_from_the_cache() -> None:
    e, model = _embedder(2)
    first = e.embed_query("安心贷利率")
    again = e.embed_query("安心贷利率")
    assert model.calls == 1
    assert np.array_equal(first, again) and not again.flags.writeable


def test_the_cache_is_bounded() -> None:
    e, model = _embedder(2)
    for q in ("a", "bb", "ccc", "a"):
        e.embed_query(q)
    assert model.calls == 4  # "a" was evicted by the third query


def test_cache_off() -> None:
    e, model = _embedder(0)
    e.embed_query("x")
    e.embed_query("x")
    assert model.calls == 2
