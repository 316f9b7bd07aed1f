"""trec_eval-style retrieval metrics for the benchmark scripts (re-exported from ``zhiwen.evals``).

Importable by path (``benchmarks/`` on ``sys.path``, as when a script here runs) or via importlib.
"""

from __future__ import annotations

from zhiwen.evals.retrieval_metrics import (
    Qrels,
    Run,
    evaluate,
    mean_metric,
    mrr_at_k,
    ndcg_at_k,
    rank_by_score,
    read_qrels_tsv,
    recall_at_k,
)

__all__ = [
    "Qrels",
    "Run",
    "evaluate",
    "mean_metric",
    "mrr_at_k",
    "ndcg_at_k",
    "rank_by_score",
    "read_qrels_tsv",
    "recall_at_k",
]
