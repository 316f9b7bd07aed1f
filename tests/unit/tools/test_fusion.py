"""Fusion of the retrieval legs: weighted RRF, score-normalised and confidence-weighted forms."""

from __future__ import annotations

import pytest

from zhiwen.tools.bm25 import ScoredId
from zhiwen.tools.fusion import FUSION_METHODS, FusionSpec, fuse_legs, leg_confidence, reciprocal_rank_fusion


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


# --- score-aware and confidence-weighted fusion (FusionSpec) ------------------------------------------
def _leg(*pairs: tuple[str, float]) -> list[ScoredId]:
    return [ScoredId(i, s, rank) for rank, (i, s) in enumerate(pairs, start=1)]


def test_spec_rrf_matches_reciprocal_rank_fusion() -> None:
    legs = {"bm25": _leg(("a", 9.0), ("b", 3.0)), "dense": _leg(("b", 0.9), ("c", 0.8))}
    spec = FusionSpec("rrf", bm25_weight=2, dense_weight=1, rrf_k=10)
    assert fuse_legs(legs, spec) == reciprocal_rank_fusion(legs, {"bm25": 2, "dense": 1}, 10)


def test_minmax_convex_combination_exact() -> None:
    legs = {"bm25": _leg(("a", 10.0), ("b", 6.0), ("c", 2.0)), "dense": _leg(("c", 0.9), ("a", 0.5))}
    fused = dict(fuse_legs(legs, FusionSpec("minmax", bm25_weight=0.25, dense_weight=0.75)))
    # bm25: a 1, b 0.5, c 0; dense: c 1, a 0, b missing -> 0
    assert fused == pytest.approx({"a": 0.25, "b": 0.125, "c": 0.75})


def test_zscore_missing_document_gets_the_legs_lowest_score() -> None:
    legs = {"bm25": _leg(("a", 3.0), ("b", 1.0)), "dense": _leg(("a", 0.8), ("c", 0.2))}
    fused = dict(fuse_legs(legs, FusionSpec("zscore", bm25_weight=0.5, dense_weight=0.5)))
    # each leg: z = +1 / -1; b is missing from dense (-1), c from bm25 (-1)
    assert fused == pytest.approx({"a": 1.0, "b": -1.0, "c": -1.0})


def test_confidence_is_zero_for_a_flat_or_short_leg() -> None:
    assert leg_confidence(_leg(("a", 1.0), ("b", 1.0), ("c", 1.0))) == 0.0
    assert leg_confidence(_leg(("a", 5.0))) == 0.0
    assert leg_confidence(_leg(("a", 3.0), ("b", 1.0))) == pytest.approx(1.0)


def test_confident_leg_outweighs_a_flat_one() -> None:
    """BM25 cannot tell its candidates apart; dense has a clear winner: dense's order decides."""
    legs = {
        "bm25": _leg(("x", 1.0), ("y", 1.0), ("z", 1.0)),
        "dense": _leg(("z", 0.95), ("y", 0.3), ("x", 0.29), ("w", 0.28)),
    }
    for method in ("rrf_confidence", "minmax_confidence", "zscore_confidence"):
        ranked = [i for i, _ in fuse_legs(legs, FusionSpec(method, power=1.0))]
        assert ranked[:3] == ["z", "y", "x"], method
    # plain RRF with equal weights lets the flat leg's arbitrary order put x above y
    plain = [i for i, _ in fuse_legs(legs, FusionSpec("rrf"))]
    assert plain.index("x") < plain.index("y")


def test_two_flat_legs_share_weight_equally() -> None:
    legs = {"bm25": _leg(("a", 1.0), ("b", 1.0)), "dense": _leg(("b", 0.5), ("a", 0.5))}
    fused = dict(fuse_legs(legs, FusionSpec("rrf_confidence", rrf_k=10)))
    assert fused["a"] == pytest.approx(fused["b"])


def test_zero_weight_leg_is_left_out_of_every_method() -> None:
    legs = {"bm25": _leg(("a", 2.0), ("b", 1.0)), "dense": _leg(("only-dense", 0.9))}
    for method in FUSION_METHODS:
        spec = FusionSpec(method, bm25_weight=1.0, dense_weight=0.0)
        assert "only-dense" not in dict(fuse_legs(legs, spec)), method


def test_unknown_method_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="unknown fusion method 'borda'"):
        fuse_legs({}, FusionSpec("borda"))


def test_labels_name_the_parameters() -> None:
    assert FusionSpec("rrf", 1, 2, 30).label == "rrf w=1:2 k=30"
    assert FusionSpec("minmax", 0.3, 0.7).label == "minmax a=0.3"
    assert FusionSpec("rrf_confidence", rrf_k=10, power=2).label == "rrf_confidence k=10 p=2"


def test_a_leg_blind_to_a_document_does_not_count_against_it() -> None:
    """BM25 cannot find a chunk in another language than the question: that document is scored by the legs
    that can see it (scaled to all the weights), not by BM25's lowest score."""
    legs = {
        "bm25": _leg(("a", 10.0), ("b", 6.0), ("c", 2.0)),
        "dense": _leg(("d", 0.9), ("a", 0.8), ("c", 0.5)),
    }
    spec = FusionSpec("minmax", bm25_weight=0.5, dense_weight=0.5)
    before = dict(fuse_legs(legs, spec))
    blind = dict(fuse_legs(legs, spec, {"bm25": {"d"}}))
    # dense: d 1, a 0.75, c 0; d was 0.5 * 0 + 0.5 * 1 = 0.5 and is now 1 * 1 (the dense leg alone, scaled)
    assert before["d"] == pytest.approx(0.5) and blind["d"] == pytest.approx(1.0)
    assert {k: v for k, v in blind.items() if k != "d"} == pytest.approx(
        {k: v for k, v in before.items() if k != "d"}
    )
    # a document the leg did return is scored by it, blind or not; RRF takes the same view
    assert dict(fuse_legs(legs, spec, {"bm25": {"a"}}))["a"] == pytest.approx(before["a"])
    rrf = dict(fuse_legs(legs, FusionSpec("rrf", rrf_k=10), {"bm25": {"d"}}))
    assert rrf["d"] == pytest.approx(2 * 1 / 11)
