"""trec_eval-style retrieval metrics over qrels: nDCG@k, Recall@k, MRR@k (pure functions, no I/O).

Conventions (those of trec_eval / pytrec_eval as used by BEIR):

* ``qrels[query_id][doc_id] = relevance``; a document is relevant when its relevance is > 0.
* ``run[query_id]`` is the ranked list of document ids, best first. A document id repeated in a run
  counts at its first position only. Use :func:`rank_by_score` to turn scores into a ranking with
  trec_eval's tie-breaking (score descending, then document id descending).
* nDCG uses linear gain (``gain = relevance``) and ``log2(rank + 1)`` discounts; the ideal ranking is
  built from the query's judged relevances, cut at ``k``.
* Means are taken over the queries in ``qrels`` that have at least one relevant document; such a query
  missing from the run scores 0 (trec_eval ``-c``). Queries in the run but not in the qrels are ignored.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence

__all__ = [
    "Qrels",
    "Run",
    "dedupe",
    "evaluate",
    "mean_metric",
    "mrr_at_k",
    "ndcg_at_k",
    "rank_by_score",
    "read_qrels_tsv",
    "recall_at_k",
]

Qrels = Mapping[str, Mapping[str, int]]
Run = Mapping[str, Sequence[str]]


def dedupe(ranking: Iterable[str]) -> list[str]:
    """The ranking with each document at its first (best) place only, order kept."""
    seen: set[str] = set()
    out: list[str] = []
    for doc in ranking:
        if doc not in seen:
            seen.add(doc)
            out.append(doc)
    return out


def _check_k(k: int) -> None:
    if k < 1:
        raise ValueError(f"k must be at least 1, not {k}")


def rank_by_score(scores: Mapping[str, float]) -> list[str]:
    """Document ids by descending score; ties broken by descending document id, as trec_eval does."""
    return [doc for doc, _ in sorted(scores.items(), key=lambda item: (item[1], item[0]), reverse=True)]


def ndcg_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """nDCG@k of one ranked list against one query's judgements (0.0 when nothing is relevant)."""
    _check_k(k)
    ideal_gains = sorted((rel for rel in judged.values() if rel > 0), reverse=True)[:k]
    if not ideal_gains:
        return 0.0
    idcg = sum(gain / math.log2(i + 2) for i, gain in enumerate(ideal_gains))
    dcg = 0.0
    for i, doc in enumerate(dedupe(ranking)[:k]):
        rel = judged.get(doc, 0)
        if rel > 0:
            dcg += rel / math.log2(i + 2)
    return dcg / idcg


def recall_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Share of the query's relevant documents found in the top ``k`` (0.0 when nothing is relevant)."""
    _check_k(k)
    relevant = {doc for doc, rel in judged.items() if rel > 0}
    if not relevant:
        return 0.0
    return len(relevant.intersection(dedupe(ranking)[:k])) / len(relevant)


def mrr_at_k(ranking: Sequence[str], judged: Mapping[str, int], k: int) -> float:
    """Reciprocal rank of the first relevant document within the top ``k``, else 0.0."""
    _check_k(k)
    for i, doc in enumerate(dedupe(ranking)[:k]):
        if judged.get(doc, 0) > 0:
            return 1.0 / (i + 1)
    return 0.0


def _judged_queries(qrels: Qrels) -> list[str]:
    return [qid for qid, judged in qrels.items() if any(rel > 0 for rel in judged.values())]


def mean_metric(metric: str, run: Run, qrels: Qrels, k: int) -> float:
    """Mean of ``metric`` ("ndcg", "recall" or "mrr") at ``k`` over the judged queries of ``qrels``."""
    funcs = {"ndcg": ndcg_at_k, "recall": recall_at_k, "mrr": mrr_at_k}
    if metric not in funcs:
        raise ValueError(f"metric must be one of {sorted(funcs)}, not {metric!r}")
    queries = _judged_queries(qrels)
    if not queries:
        return 0.0
    func = funcs[metric]
    return sum(func(run.get(qid, ()), qrels[qid], k) for qid in queries) / len(queries)


def evaluate(
    run: Run,
    qrels: Qrels,
    ndcg_k: Sequence[int] = (10,),
    recall_k: Sequence[int] = (100,),
    mrr_k: Sequence[int] = (10,),
) -> dict[str, float]:
    """The requested means, keyed like BEIR: ``{"nDCG@10": ..., "Recall@100": ..., "MRR@10": ...}``."""
    out: dict[str, float] = {}
    for k in ndcg_k:
        out[f"nDCG@{k}"] = mean_metric("ndcg", run, qrels, k)
    for k in recall_k:
        out[f"Recall@{k}"] = mean_metric("recall", run, qrels, k)
    for k in mrr_k:
        out[f"MRR@{k}"] = mean_metric("mrr", run, qrels, k)
    return out


def read_qrels_tsv(lines: Iterable[str]) -> dict[str, dict[str, int]]:
    """Parse BEIR ``qrels/*.tsv`` lines (``query-id <TAB> corpus-id <TAB> score``, header optional)."""
    qrels: dict[str, dict[str, int]] = {}
    for lineno, line in enumerate(lines, start=1):
        parts = line.rstrip("\r\n").split("\t")
        if len(parts) < 3 or not line.strip():
            continue
        if lineno == 1 and not parts[2].strip().lstrip("-").isdigit():
            continue  # header line
        qrels.setdefault(parts[0], {})[parts[1]] = int(parts[2])
    return qrels
