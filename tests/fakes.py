"""Test doubles shared by the test suite."""

from __future__ import annotations

import hashlib

import numpy as np

from zhiwen.tools.embeddings import Vectors
from zhiwen.tools.tokenize import tokenize

__all__ = ["HashEmbedder"]


class HashEmbedder:
    """A deterministic stand-in for e5: a normalised bag of hashed tokens (zh bigrams, stemmed words).

    Texts that share tokens get close vectors, so "similar" texts are near each other; it costs
    microseconds, so tests that do not need real semantics can ingest hundreds of chunks.
    """

    name = "test/hash-384"
    dim = 384

    def __init__(self) -> None:
        self.calls = 0

    def _vector(self, text: str) -> Vectors:
        vec = np.zeros(self.dim, dtype=np.float32)
        for token in tokenize(text, "bigram") or [text]:
            digest = hashlib.blake2b(token.encode("utf-8"), digest_size=8).digest()
            index = int.from_bytes(digest[:4], "little") % self.dim
            vec[index] += 1.0 if digest[4] & 1 else -1.0
        norm = float(np.linalg.norm(vec))
        if norm == 0.0:  # tokens cancelled out: any fixed unit vector keeps the contract
            vec[0], norm = 1.0, 1.0
        return (vec / norm).astype(np.float32)

    def embed_passages(self, texts: list[str]) -> Vectors:
        self.calls += 1
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        return np.stack([self._vector(t) for t in texts])

    def embed_query(self, text: str) -> Vectors:
        return self._vector(text)
