"""Fusion of the retrieval legs: pure functions, the only place legs are combined.

Today's product default is weighted reciprocal rank fusion. The other methods exist for the leave-one-set-out
study (``benchmarks/fusion_loso.py``), which chooses among them by their figures on sets not tuned on:

- ``minmax`` / ``zscore``: a convex combination of each leg's scores, normalised within its own list (a
  document a leg did not return counts as that leg's lowest score).
- ``*_confidence``: the same, or RRF, with each leg's weight multiplied by its confidence on this query (how
  far its best score stands above the rest of its list, in standard deviations, to the power ``power``): a
  leg that cannot tell its candidates apart gives way to one that can.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass

from zhiwen.tools.bm25 import ScoredId

__all__ = ["FUSION_METHODS", "FusionSpec", "fuse_legs", "leg_confidence", "reciprocal_rank_fusion"]

FUSION_METHODS = ("rrf", "minmax", "zscore", "rrf_confidence", "minmax_confidence", "zscore_confidence")


def reciprocal_rank_fusion(
    legs: Mapping[str, Sequence[ScoredId]], weights: Mapping[str, float], k: int = 60
) -> list[tuple[str, float]]:
    """Fuse ranked lists: score(d) = sum over legs of weight / (k + rank). Ties keep first-leg order.

    A leg with weight 0 contributes nothing; the result is sorted by fused score, best first.
    """
    fused: dict[str, float] = {}
    for name, hits in legs.items():
        weight = weights.get(name, 1.0)
        if weight == 0:
            continue  # not even a 0.0 entry: a document only this leg found must not be returned
        for hit in hits:
            fused[hit.id] = fused.get(hit.id, 0.0) + weight / (k + hit.rank)
    return sorted(fused.items(), key=lambda item: -item[1])


@dataclass(frozen=True)
class FusionSpec:
    """One way to fuse: a method from ``FUSION_METHODS`` and its parameters."""

    method: str = "rrf"
    bm25_weight: float = 1.0
    dense_weight: float = 1.0
    rrf_k: int = 10
    power: float = 1.0

    @property
    def label(self) -> str:
        if self.method == "rrf":
            return f"rrf w={self.bm25_weight:g}:{self.dense_weight:g} k={self.rrf_k}"
        if self.method in ("minmax", "zscore"):
            return f"{self.method} a={self.bm25_weight:g}"
        if self.method == "rrf_confidence":
            return f"rrf_confidence k={self.rrf_k} p={self.power:g}"
        return f"{self.method} p={self.power:g}"

    def weights(self) -> dict[str, float]:
        return {"bm25": self.bm25_weight, "dense": self.dense_weight}


def leg_confidence(hits: Sequence[ScoredId]) -> float:
    """How many standard deviations the leg's best score stands above the mean of its list (0 when flat)."""
    if len(hits) < 2:
        return 0.0
    scores = [h.score for h in hits]
    spread = statistics.pstdev(scores)
    if spread <= 0 or not math.isfinite(spread):
        return 0.0
    return max(0.0, (max(scores) - statistics.fmean(scores)) / spread)


def _normalised(hits: Sequence[ScoredId], how: str) -> tuple[dict[str, float], float]:
    """Each hit's normalised score, and the value a document missing from the leg gets."""
    if not hits:
        return {}, 0.0
    scores = [h.score for h in hits]
    if how == "minmax":
        low, high = min(scores), max(scores)
        span = high - low
        return {h.id: (h.score - low) / span if span > 0 else 1.0 for h in hits}, 0.0
    mean, spread = statistics.fmean(scores), statistics.pstdev(scores)
    z = {h.id: (h.score - mean) / spread if spread > 0 else 0.0 for h in hits}
    return z, min(z.values())


def fuse_legs(
    legs: Mapping[str, Sequence[ScoredId]],
    spec: FusionSpec,
    blind: Mapping[str, AbstractSet[str]] | None = None,
) -> list[tuple[str, float]]:
    """The fused ranking of ``legs`` under ``spec``, best first (fused score beside each id).

    ``blind``: per leg, the ids it could not have returned whatever their worth (BM25 and a chunk in another
    language than the query: no shared word). Such a leg's silence is no evidence against the id, so the id
    is scored by the legs that can see it, scaled to all the weights, instead of counting the blind leg's
    lowest score. Measured in ``benchmarks/cross_lingual.py``: an English question about a Chinese-only
    document lost that document to English chunks BM25 ranked first."""
    if spec.method not in FUSION_METHODS:
        raise ValueError(f"unknown fusion method {spec.method!r}; one of {', '.join(FUSION_METHODS)}")
    weights = spec.weights()
    live = {name: hits for name, hits in legs.items() if weights.get(name, 1.0) != 0}
    if spec.method.endswith("_confidence"):
        conf = {name: leg_confidence(hits) ** spec.power for name, hits in live.items()}
        total = sum(conf.values())
        share = {n: (c / total if total > 0 else 1.0 / len(conf)) for n, c in conf.items()}
        weights = {n: weights.get(n, 1.0) * share[n] for n in live}
    if spec.method in ("rrf", "rrf_confidence") and not blind:
        return reciprocal_rank_fusion(live, weights, spec.rrf_k)
    parts: dict[str, tuple[dict[str, float], float]]
    if spec.method in ("rrf", "rrf_confidence"):
        parts = {
            name: ({h.id: 1.0 / (spec.rrf_k + h.rank) for h in hits}, 0.0) for name, hits in live.items()
        }
    else:
        how = spec.method.removesuffix("_confidence")
        parts = {name: _normalised(hits, how) for name, hits in live.items()}
    every = sum(weights.get(n, 1.0) for n in live)
    fused: dict[str, float] = {}
    ids = [h.id for hits in live.values() for h in hits]
    for doc in dict.fromkeys(ids):  # first-seen order keeps ties stable, as RRF does
        seeing = [n for n in parts if not (blind and doc in blind.get(n, ()) and doc not in parts[n][0])]
        seen = sum(weights.get(n, 1.0) for n in seeing)
        score = sum(weights.get(n, 1.0) * parts[n][0].get(doc, parts[n][1]) for n in seeing)
        fused[doc] = score * every / seen if seen > 0 and len(seeing) < len(parts) else score
    return sorted(fused.items(), key=lambda item: -item[1])
