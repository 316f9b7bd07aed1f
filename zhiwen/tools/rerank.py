"""Rerank retrieved passages with a cross-encoder served behind an HTTP endpoint, in the shapes servers speak.

* ``rerank``: ``POST {base}/rerank`` ``{"model", "query", "documents", "top_n"}`` answered with
  ``{"results": [{"index", "relevance_score"}]}``: vLLM (``/v1/rerank``), Jina and Cohere.
* ``tei``: ``POST {base}/rerank`` ``{"query", "texts"}`` answered with ``[{"index", "score"}]``: Hugging Face
  text-embeddings-inference.
* ``score``: ``POST {base}/score`` ``{"model", "text_1", "text_2"}`` answered with ``{"data": [{"index",
  "score"}]}``: vLLM's scoring API.

A reranker is an improvement, never a dependency: any failure (timeout, refused connection, HTTP error, an
answer of the wrong shape) raises ``RerankFailed`` and the caller keeps the fused order.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from zhiwen.errors import ZhiwenError

__all__ = ["RerankFailed", "Reranker"]


class RerankFailed(ZhiwenError):
    """The reranker did not answer usefully; ``kind`` is a bounded label for metrics."""

    def __init__(self, message: str, kind: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Reranker:
    base_url: str
    model: str | None = None
    api: str = "rerank"
    api_key: str = "EMPTY"
    timeout: float = 2.0

    def _request(self, query: str, texts: Sequence[str]) -> tuple[str, dict[str, Any]]:
        base = self.base_url.rstrip("/")
        if self.api == "tei":
            return f"{base}/rerank", {"query": query, "texts": list(texts), "raw_scores": False}
        if self.api == "score":
            return f"{base}/score", {"model": self.model, "text_1": query, "text_2": list(texts)}
        return f"{base}/rerank", {"model": self.model, "query": query, "documents": list(texts),
                                  "top_n": len(texts)}  # fmt: skip

    @staticmethod
    def _scores(body: Any, count: int) -> list[float]:
        rows = body if isinstance(body, list) else (body.get("results") or body.get("data") or [])
        scores = [float("-inf")] * count
        seen = 0
        for row in rows:
            index = row.get("index") if isinstance(row, dict) else None
            score = row.get("relevance_score", row.get("score")) if isinstance(row, dict) else None
            if not isinstance(index, int) or not 0 <= index < count or not isinstance(score, int | float):
                raise ValueError(f"a result without a valid index and score: {str(row)[:80]}")
            scores[index] = float(score)
            seen += 1
        if seen != count:
            raise ValueError(f"{seen} scores for {count} passages")
        return scores

    def scores(self, query: str, texts: Sequence[str]) -> list[float]:
        """One relevance score per text, in the texts' order (higher is more relevant)."""
        if not texts:
            return []
        url, payload = self._request(query, texts)
        headers = {"Authorization": f"Bearer {self.api_key}"}
        try:
            reply = httpx.post(url, json=payload, headers=headers, timeout=self.timeout)
        except httpx.TimeoutException as exc:
            raise RerankFailed(f"the reranker did not answer within {self.timeout} s", "timeout") from exc
        except httpx.HTTPError as exc:
            raise RerankFailed(f"the reranker is unreachable: {type(exc).__name__}", "connection") from exc
        if reply.status_code != 200:
            raise RerankFailed(f"the reranker answered HTTP {reply.status_code}", "http_error")
        try:
            return self._scores(reply.json(), len(texts))
        except ValueError as exc:  # JSONDecodeError is a ValueError
            raise RerankFailed(
                f"the reranker's answer is not one this client reads: {exc}", "bad_reply"
            ) from exc
