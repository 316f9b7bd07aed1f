"""A persisted BM25 index over pre-tokenized chunks, backed by bm25s (sparse matrices, memory-mapped).

Scores are standard BM25 (Lucene variant: idf = ln(1 + (N - df + 0.5) / (df + 0.5)), k1=1.2, b=0.75).
bm25s is static, so the knowledge base rebuilds it from stored tokens after each ingest batch.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["BM25Index", "ScoredId"]

logging.getLogger("bm25s").setLevel(logging.WARNING)


@dataclass(frozen=True)
class ScoredId:
    """A chunk id with its score and 1-based rank in one retrieval leg."""

    id: str
    score: float
    rank: int


class BM25Index:
    """Maps chunk ids to BM25 scores; ``generation`` ties a saved index to the store state it was built from."""

    def __init__(self, ids: list[str], model: object | None, generation: int = 0) -> None:
        self.ids = ids
        self._model = model
        self.generation = generation
        self._vocab: dict[str, int] = dict(getattr(model, "vocab_dict", {}) or {}) if model else {}
        # bm25s adds an "empty token" to the vocabulary that has no row in its score matrix; querying it
        # raises, so it counts as unknown.
        self._vocab.pop("", None)

    @classmethod
    def build(
        cls, ids: list[str], tokens: list[list[str]], generation: int = 0, k1: float = 1.2, b: float = 0.75
    ) -> BM25Index:
        if not any(tokens):
            # No terms at all (no chunks, or only punctuation / stop words): bm25s cannot index that.
            return cls(list(ids), None, generation)
        import bm25s

        model = bm25s.BM25(method="lucene", k1=k1, b=b)
        model.index(tokens, show_progress=False)
        return cls(list(ids), model, generation)

    def save(self, folder: Path) -> None:
        """Write the index atomically enough: the meta file (with the generation) is written last."""
        folder.mkdir(parents=True, exist_ok=True)
        if self._model is not None:
            self._model.save(str(folder / "bm25"))  # type: ignore[attr-defined]
        np.save(folder / "ids.npy", np.asarray(self.ids, dtype=object), allow_pickle=True)
        tmp = folder / "meta.json.tmp"
        meta = {"generation": self.generation, "count": len(self.ids), "model": self._model is not None}
        tmp.write_text(json.dumps(meta))
        tmp.replace(folder / "meta.json")

    @classmethod
    def load(cls, folder: Path) -> BM25Index | None:
        """The saved index, or None when there is none or it is incomplete."""
        meta_path = folder / "meta.json"
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            ids = [str(i) for i in np.load(folder / "ids.npy", allow_pickle=True)]
            if len(ids) != meta["count"]:
                return None
            model = None
            if meta.get("model", bool(ids)):
                import bm25s

                model = bm25s.BM25.load(str(folder / "bm25"), mmap=True)
        except (OSError, ValueError, KeyError):
            return None  # damaged, or replaced by another process while reading: rebuild
        return cls(ids, model, int(meta["generation"]))

    def __len__(self) -> int:
        return len(self.ids)

    def search(self, query_tokens: list[str], k: int) -> list[ScoredId]:
        """Top ``k`` chunks with a positive score; unknown query terms are ignored."""
        if self._model is None:
            return []
        token_ids = [self._vocab[t] for t in query_tokens if t in self._vocab]
        if not token_ids:
            return []
        scores = np.asarray(self._model.get_scores(token_ids))  # type: ignore[attr-defined]
        k = min(k, len(scores))
        top = np.argpartition(-scores, k - 1)[:k]
        top = top[np.argsort(-scores[top], kind="stable")]
        return [
            ScoredId(self.ids[i], float(scores[i]), rank)
            for rank, i in enumerate((int(i) for i in top if scores[i] > 0), start=1)
        ]
