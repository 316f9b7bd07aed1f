"""trec_eval-style nDCG@k, Recall@k and MRR@k against hand-computed values."""

from __future__ import annotations

import math

import pytest

from zhiwen.evals.retrieval_metrics import (
    evaluate,
    mean_metric,
    mrr_at_k,
    ndcg_at_k,
    rank_by_score,
    read_qrels_tsv,
    recall_at_k,
)

JUDGED = {"a": 1, "b": 2, "c": 0}
RANKING = ["x", "b", "a", "c"]


def test_ndcg_linear_gain_by_hand() -> None:
    # DCG@3 = 0/log2(2) + 2/log2(3) + 1/log2(4); IDCG@3 = 2/log2(2) + 1/log2(3) (c has relevance 0).
    dcg = 2 / math.log2(3) + 1 / 2
    idcg = 2 + 1 / math.log2(3)
    assert ndcg_at_k(RANKING, JUDGED, 3) == pytest.approx(dcg / idcg, abs=1e-12)
    assert ndcg_at_k(RANKING, JUDGED, 3) == pytest.approx(0.669672, abs=1e-6)
    assert ndcg_at_k(RANKING, JUDGED, 1) == 0.0
    assert ndcg_at_k(["b", "a"], JUDGED, 10) == pytest.approx(1.0)


def test_ndcg_wikipedia_example() -> None:
    # en.wikipedia.org/wiki/Discounted_cumulative_gain: DCG6 = 6.861, IDCG6 = 8.740, nDCG6 = 0.785
    # (documents D7 and D8, relevance 3 and 2, are judged but not retrieved).
    judged = {f"D{i}": r for i, r in enumerate([3, 2, 3, 0, 1, 2, 3, 2], start=1)}
    ranking = [f"D{i}" for i in range(1, 7)]
    assert ndcg_at_k(ranking, judged, 6) == pytest.approx(6.861 / 8.740, abs=1e-3)
    assert ndcg_at_k(ranking, judged, 6) == pytest.approx(0.785, abs=1e-3)


def test_recall_and_mrr_by_hand() -> None:
    assert recall_at_k(RANKING, JUDGED, 1) == 0.0
    assert recall_at_k(RANKING, JUDGED, 2) == 0.5
    assert recall_at_k(RANKING, JUDGED, 3) == 1.0
    assert mrr_at_k(RANKING, JUDGED, 1) == 0.0
    assert mrr_at_k(RANKING, JUDGED, 2) == 0.5
    assert mrr_at_k(["x", "y", "a"], JUDGED, 10) == pytest.approx(1 / 3)


def test_duplicates_count_once_at_first_position() -> None:
    assert ndcg_at_k(["b", "b", "a"], JUDGED, 2) == pytest.approx(1.0)
    assert recall_at_k(["x", "x", "a"], JUDGED, 2) == 0.5
    assert mrr_at_k(["x", "x", "a"], JUDGED, 2) == 0.5


def test_nothing_relevant_scores_zero() -> None:
    assert ndcg_at_k(["a"], {"a": 0}, 10) == 0.0
    assert recall_at_k(["a"], {}, 10) == 0.0
    assert mrr_at_k([], JUDGED, 10) == 0.0


def test_bad_k_is_rejected() -> None:
    with pytest.raises(ValueError):
        ndcg_at_k(RANKING, JUDGED, 0)
    with pytest.raises(ValueError):
        mean_metric("map", {}, {}, 10)


def test_means_over_judged_queries_missing_runs_score_zero() -> None:
    qrels = {"q1": JUDGED, "q2": {"d": 1}, "q3": {"e": 0}}  # q3 has nothing relevant: not averaged
    run = {"q1": RANKING, "q9": ["d"]}  # q2 missing (scores 0); q9 is not judged (ignored)
    ndcg_q1 = (2 / math.log2(3) + 1 / 2) / (2 + 1 / math.log2(3))
    assert mean_metric("ndcg", run, qrels, 10) == pytest.approx(ndcg_q1 / 2)
    assert evaluate(run, qrels) == pytest.approx({"nDCG@10": ndcg_q1 / 2, "Recall@100": 0.5, "MRR@10": 0.25})
    assert evaluate(run, qrels, ndcg_k=(1, 3), recall_k=(2,), mrr_k=()).keys() == {
        "nDCG@1",
        "nDCG@3",
        "Recall@2",
    }
    assert mean_metric("recall", run, {}, 10) == 0.0


def test_rank_by_score_breaks_ties_like_trec_eval() -> None:
    assert rank_by_score({"a": 1.0, "b": 1.0, "c": 2.0}) == ["c", "b", "a"]


def test_read_qrels_tsv_skips_header_and_blank_lines() -> None:
    lines = ["query-id\tcorpus-id\tscore\n", "1\td1\t1\n", "\n", "1\td2\t0\n", "2\td1\t2\n"]
    assert read_qrels_tsv(lines) == {"1": {"d1": 1, "d2": 0}, "2": {"d1": 2}}
