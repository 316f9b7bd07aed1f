"""The on-disk passage vector cache."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from fakes import HashEmbedder

from zhiwen.tools.embedding_cache import CachedEmbedder


class Renamed(HashEmbedder):
    name = "test/another-model"


def test_hits_misses_and_equal_vectors(tmp_path: Path, fake_embedder: HashEmbedder) -> None:
    cache = CachedEmbedder(fake_embedder, tmp_path / "cache" / "emb.sqlite")
    assert cache.name == fake_embedder.name
    texts = ["银行开户需要身份证。", "The annual fee is 300 yuan.", "境外汇款"]
    first = cache.embed_passages(texts)
    assert (cache.hits, cache.misses) == (0, 3)
    assert first.dtype == np.float32 and first.shape == (3, 384)
    np.testing.assert_array_equal(first, fake_embedder.embed_passages(texts))

    calls = fake_embedder.calls
    again = cache.embed_passages(list(reversed(texts)))
    assert (cache.hits, cache.misses) == (3, 3)
    assert fake_embedder.calls == calls, "all cached: the model is not called"
    np.testing.assert_array_equal(again, first[::-1])

    mixed = cache.embed_passages(["new passage", texts[1]])
    assert (cache.hits, cache.misses) == (4, 4)
    np.testing.assert_array_equal(mixed[1], first[1])
    np.testing.assert_array_equal(mixed[0], fake_embedder.embed_passages(["new passage"])[0])


def test_queries_are_not_cached(tmp_path: Path, fake_embedder: HashEmbedder) -> None:
    cache = CachedEmbedder(fake_embedder, tmp_path / "emb.sqlite")
    np.testing.assert_array_equal(cache.embed_query("年费"), fake_embedder.embed_query("年费"))
    assert (cache.hits, cache.misses) == (0, 0)


def test_survives_reopen(tmp_path: Path, fake_embedder: HashEmbedder) -> None:
    path = tmp_path / "emb.sqlite"
    texts = [f"passage number {i}" for i in range(700)]  # more than one 500-key lookup batch
    vectors = CachedEmbedder(fake_embedder, path).embed_passages(texts)
    reopened = CachedEmbedder(HashEmbedder(), path)
    again = reopened.embed_passages(texts)
    assert (reopened.hits, reopened.misses) == (700, 0)
    assert reopened.inner.calls == 0  # type: ignore[attr-defined]
    np.testing.assert_array_equal(again, vectors)


def test_keyed_by_model_name(tmp_path: Path, fake_embedder: HashEmbedder) -> None:
    path = tmp_path / "emb.sqlite"
    CachedEmbedder(fake_embedder, path).embed_passages(["shared text"])
    other = CachedEmbedder(Renamed(), path)
    other.embed_passages(["shared text"])
    assert (other.hits, other.misses) == (0, 1), "another model's vectors are never reused"


def test_duplicates_and_empty(tmp_path: Path, fake_embedder: HashEmbedder) -> None:
    cache = CachedEmbedder(fake_embedder, tmp_path / "emb.sqlite")
    out = cache.embed_passages(["same", "same"])
    np.testing.assert_array_equal(out[0], out[1])
    assert len(cache.embed_passages([])) == 0
