"""Weighted reciprocal rank fusion: one pure function, the only place legs are combined."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from zhiwen.tools.bm25 import ScoredId

__all__ = ["reciprocal_rank_fusion"]


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
