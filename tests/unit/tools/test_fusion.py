"""Weighted reciprocal rank fusion."""

from __future__ import annotations

import pytest

from zhiwen.tools.bm25 import ScoredId
from zhiwen.tools.fusion import reciprocal_rank_fusion


def leg(*ids: str) -> list[ScoredId]:
    return [ScoredId(i, 100.0 - r, r) for r, i in enumerate(ids, start=1)]


def test_exact_weighted_values() -> None:
    legs = {"bm25": leg("a", "b", "c"), "dense": leg("b", "d")}
    fused = dict(reciprocal_rank_fusion(legs, {"bm25": 2.0, "dense": 0.5}, k=10))
    assert fused == pytest.approx(
        {"a": 2 / 11, "b": 2 / 12 + 0.5 / 11, "c": 2 / 13, "d": 0.5 / 12}, rel=1e-12
    )


def test_sorted_best_first_and_ties_keep_first_leg_order() -> None:
    legs = {"bm25": leg("a", "b"), "dense": leg("b", "a", "c")}
    fused = reciprocal_rank_fusion(legs, {"bm25": 1.0, "dense": 1.0}, k=60)
    # a and b tie at 1/61 + 1/62; a came first in the first leg.
    assert [d for d, _ in fused] == ["a", "b", "c"]
    assert fused[0][1] == pytest.approx(1 / 61 + 1 / 62)
    assert fused[2][1] == pytest.approx(1 / 63)
    scores = [s for _, s in fused]
    assert scores == sorted(scores, reverse=True)


def test_default_weight_is_one_and_default_k_is_60() -> None:
    fused = reciprocal_rank_fusion({"bm25": leg("x")}, {})
    assert fused == [("x", pytest.approx(1 / 61))]


def test_zero_weight_leg_contributes_nothing() -> None:
    legs = {"bm25": leg("a", "b"), "dense": leg("c", "b", "a")}
    fused = reciprocal_rank_fusion(legs, {"bm25": 1.0, "dense": 0.0})
    assert fused == reciprocal_rank_fusion({"bm25": legs["bm25"]}, {"bm25": 1.0})
    assert "c" not in dict(fused), "a document only the zero-weight leg found is not returned"


def test_document_in_only_one_leg() -> None:
    legs = {"bm25": leg("only-bm25", "both"), "dense": leg("both", "only-dense")}
    fused = dict(reciprocal_rank_fusion(legs, {"bm25": 1.0, "dense": 1.0}, k=1))
    assert fused["only-bm25"] == pytest.approx(1 / 2)
    assert fused["only-dense"] == pytest.approx(1 / 3)
    assert fused["both"] == pytest.approx(1 / 3 + 1 / 2)
    assert max(fused, key=fused.__getitem__) == "both"


def test_rank_not_score_matters() -> None:
    a = {"bm25": [ScoredId("x", 9.0, 1), ScoredId("y", 0.1, 2)]}
    b = {"bm25": [ScoredId("x", 0.2, 1), ScoredId("y", 0.1, 2)]}
    assert reciprocal_rank_fusion(a, {}) == reciprocal_rank_fusion(b, {})


def test_no_legs() -> None:
    assert reciprocal_rank_fusion({}, {}) == []
    assert reciprocal_rank_fusion({"bm25": [], "dense": []}, {}) == []
