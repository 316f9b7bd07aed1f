#!/usr/bin/env python
"""Leave-one-set-out study of fusion: which way of combining BM25 and dense generalises to a set nobody tuned on.

    .venv/bin/python benchmarks/fusion_loso.py                      # the five shared sets
    .venv/bin/python benchmarks/fusion_loso.py --sets scifact rgb-zh --max-queries 100

Step 1 (cached): each set's corpus is ingested through the real pipeline into a ``KnowledgeBase`` (product
tokenisation, multilingual-e5-small through the shared embedding cache) and each judged query's two legs are
fetched exactly as ``KnowledgeBase.search`` fetches them (``CANDIDATES`` chunks per leg, with their scores).
The legs are stored under ``ZHIWEN_HOME/cache/fusion-legs/``; later runs only fuse.

Step 2: every fusion candidate (method x parameters) is scored with nDCG@10 on documents (chunk ranking mapped
to documents, first occurrence kept, as ``benchmarks/retrieval.py`` does). For each set in turn, the candidate
with the best mean nDCG@10 over the *other* sets is chosen and its figure on the held-out set reported, beside
both legs and today's default. Results: ``benchmarks/results/fusion-loso-<date>.json`` and a printed table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import statistics
import sys
import tempfile
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from _metrics import ndcg_at_k  # benchmarks/ is sys.path[0] when run as a script
from retrieval import load_beir, to_docs
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from zhiwen.evals.suite import datasets_root
from zhiwen.memory.ingest import ingest_documents
from zhiwen.memory.kb import DEFAULT_RRF_K, DEFAULT_WEIGHTS, KnowledgeBase
from zhiwen.memory.loaders import load_path
from zhiwen.memory.registry import get_embedder
from zhiwen.settings import get_settings
from zhiwen.tools.bm25 import ScoredId
from zhiwen.tools.fusion import FUSION_METHODS, FusionSpec, fuse_legs

# Smallest corpora first: the legs are cached per set, so an interrupted run keeps what it finished.
SETS = ("xquad-en", "xquad-zh", "cmrc2018-dev", "rgb-zh", "scifact")
CANDIDATES = 50  # KnowledgeBase.search's default fetch per leg
DOC_DEPTH = 10
console = Console(width=None if sys.stdout.isatty() else 160)
Legs = dict[str, list[ScoredId]]


# --- step 1: the legs, cached -------------------------------------------------------------------------
def _fingerprint(folder: Path, embedder_name: str) -> str:
    parts = [embedder_name, str(CANDIDATES)]
    for name in ("corpus.jsonl", "queries.jsonl", "qrels/test.tsv"):
        stat = (folder / name).stat()
        parts.append(f"{name}:{stat.st_size}")
    return hashlib.sha256("|".join(parts).encode()).hexdigest()[:12]


def load_queries(folder: Path) -> tuple[dict[str, str], dict[str, dict[str, int]]]:
    """The judged queries and their qrels (``benchmarks/retrieval.py``'s loader)."""
    ds = load_beir(folder.parent, folder.name)
    return ds.queries, ds.qrels


def compute_legs(name: str, folder: Path, cache: Path) -> dict[str, Any]:
    """Both legs of every judged query, with the chunk -> document map; read from ``cache`` when there."""
    embedder = get_embedder()
    path = cache / f"{name}-{_fingerprint(folder, embedder.name)}.json"
    if path.exists():
        return dict(json.loads(path.read_text(encoding="utf-8")))
    queries, _ = load_queries(folder)
    docs = load_path(folder / "corpus.jsonl")
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase.open(Path(tmp), name, embedder, create=True)
        bar = tqdm(desc=f"{name}: ingest", unit="chunk", dynamic_ncols=True)

        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.n = done
            bar.refresh()

        ingest_documents(kb, docs, progress=progress, batch_chunks=256)
        bar.close()
        rows = kb.catalog.chunks(sorted(kb.catalog.all_chunk_ids()))
        chunk_doc = {cid: row.doc_id for cid, row in rows.items()}
        out: dict[str, Any] = {"chunk_doc": chunk_doc, "queries": {}}
        for qid, text in tqdm(queries.items(), desc=f"{name}: legs", dynamic_ncols=True):
            bm25 = kb.bm25().search(kb.tokens(text), CANDIDATES)
            dense = kb.vectors.search(kb.embedder.embed_query(text), CANDIDATES)
            out["queries"][qid] = {
                "bm25": [[h.id, h.score] for h in bm25],
                "dense": [[h.id, h.score] for h in dense],
            }
        kb.close()
    cache.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, ensure_ascii=False), encoding="utf-8")
    return out


def as_legs(raw: Mapping[str, list[list[Any]]]) -> Legs:
    return {
        leg: [ScoredId(str(i), float(s), rank) for rank, (i, s) in enumerate(hits, start=1)]
        for leg, hits in raw.items()
    }


# --- step 2: score the candidates ---------------------------------------------------------------------
def candidates() -> list[FusionSpec]:
    """The grid: today's weighted RRF, score-normalised convex combinations, and confidence-weighted forms."""
    specs: list[FusionSpec] = []
    for wb, wd in ((1, 1), (1, 2), (2, 1), (1, 3), (3, 1)):
        for k in (10, 30, 60):
            specs.append(FusionSpec("rrf", bm25_weight=wb, dense_weight=wd, rrf_k=k))
    alphas = (0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8)
    for method in ("minmax", "zscore"):
        for alpha in alphas:
            specs.append(FusionSpec(method, bm25_weight=alpha, dense_weight=1 - alpha))
    for method in ("rrf_confidence",):
        for k in (10, 30, 60):
            for power in (0.5, 1.0, 2.0, 4.0):
                specs.append(FusionSpec(method, rrf_k=k, power=power))
    for method in ("minmax_confidence", "zscore_confidence"):
        for power in (0.5, 1.0, 2.0, 4.0):
            specs.append(FusionSpec(method, power=power))
    assert {s.method for s in specs} <= set(FUSION_METHODS)
    return specs


def doc_ranking(chunk_ids: Sequence[str], chunk_doc: Mapping[str, str]) -> list[str]:
    """The top ``DOC_DEPTH`` documents of a chunk ranking (``benchmarks/retrieval.py``'s mapping)."""
    return to_docs(chunk_ids, dict(chunk_doc), DOC_DEPTH)


def score_set(
    legs: dict[str, Legs],
    chunk_doc: Mapping[str, str],
    qrels: Mapping[str, dict[str, int]],
    rank: Callable[[Legs], list[str]],
) -> float:
    """Mean nDCG@10 of a ranking function over the set's queries."""
    return statistics.fmean(
        ndcg_at_k(doc_ranking(rank(q_legs), chunk_doc), qrels[q], 10) for q, q_legs in legs.items()
    )


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--sets", nargs="+", default=list(SETS), help="dataset folders under ZHIWEN_DATASETS")
    ap.add_argument("--max-queries", type=int, default=0, help="first N judged queries per set (0: all)")
    ap.add_argument("--out", type=Path, default=Path(__file__).parent / "results")
    args = ap.parse_args(argv)
    root = datasets_root()
    missing = [s for s in args.sets if not (root / s / "corpus.jsonl").exists()]
    if missing:
        print(
            f"fusion_loso: no dataset {', '.join(missing)} under {root} (set ZHIWEN_DATASETS)",
            file=sys.stderr,
        )
        return 2
    cache = get_settings().cache_dir / "fusion-legs"
    per_set: dict[str, dict[str, float]] = {}
    specs = candidates()
    sizes: dict[str, int] = {}
    for name in args.sets:
        raw = compute_legs(name, root / name, cache)
        _, qrels = load_queries(root / name)
        qids = list(raw["queries"])[: args.max_queries or None]
        sizes[name] = len(qids)
        legs = {q: as_legs(raw["queries"][q]) for q in qids}
        cd = raw["chunk_doc"]
        scores = {
            "bm25": score_set(legs, cd, qrels, lambda lg: [h.id for h in lg["bm25"]]),
            "dense": score_set(legs, cd, qrels, lambda lg: [h.id for h in lg["dense"]]),
        }
        for spec in tqdm(specs, desc=f"{name}: fusions", leave=False, dynamic_ncols=True):
            scores[spec.label] = score_set(
                legs, cd, qrels, lambda lg, s=spec: [i for i, _ in fuse_legs(lg, s)]
            )
        per_set[name] = scores
    default = FusionSpec("rrf", DEFAULT_WEIGHTS["bm25"], DEFAULT_WEIGHTS["dense"], DEFAULT_RRF_K).label
    results = loso(per_set, [s.label for s in specs], default)
    results["sizes"] = sizes
    print_results(results, default)
    args.out.mkdir(parents=True, exist_ok=True)
    out = args.out / f"fusion-loso-{dt.date.today().isoformat()}.json"
    out.write_text(
        json.dumps({"per_set": per_set, **results}, indent=1, ensure_ascii=False), encoding="utf-8"
    )
    console.print(f"results: {out}")
    return 0


def loso(per_set: dict[str, dict[str, float]], labels: list[str], default: str) -> dict[str, Any]:
    """For each set: the candidate best on the others (mean nDCG@10), scored on the held-out set."""
    names = list(per_set)
    folds: dict[str, Any] = {}
    for held in names:
        train = [n for n in names if n != held] or [held]
        chosen = max(labels, key=lambda lb: statistics.fmean(per_set[n][lb] for n in train))
        best_leg = max(("bm25", "dense"), key=lambda leg: per_set[held][leg])
        folds[held] = {
            "chosen": chosen,
            "held_out": per_set[held][chosen],
            "default": per_set[held][default],
            "bm25": per_set[held]["bm25"],
            "dense": per_set[held]["dense"],
            "best_leg": best_leg,
            "margin_vs_best_leg": per_set[held][chosen] - per_set[held][best_leg],
        }
    overall = max(labels, key=lambda lb: statistics.fmean(per_set[n][lb] for n in names))
    return {
        "folds": folds,
        "mean_held_out": statistics.fmean(f["held_out"] for f in folds.values()),
        "mean_default": statistics.fmean(f["default"] for f in folds.values()),
        "best_on_all": overall,
        "best_on_all_per_set": {n: per_set[n][overall] for n in names},
        "best_on_all_worst_margin": min(
            per_set[n][overall] - max(per_set[n]["bm25"], per_set[n]["dense"]) for n in names
        ),
    }


def print_results(results: dict[str, Any], default: str) -> None:
    table = Table(title="Leave-one-set-out fusion, nDCG@10 on the held-out set")
    for col in (
        "held-out set",
        "queries",
        "BM25",
        "dense",
        f"default {default}",
        "chosen on the other sets",
        "held-out",
        "minus best leg",
        "target >= -0.005",
    ):
        table.add_column(col)
    for name, f in results["folds"].items():
        table.add_row(
            name,
            str(results["sizes"][name]),
            f"{f['bm25']:.3f}",
            f"{f['dense']:.3f}",
            f"{f['default']:.3f}",
            f["chosen"],
            f"{f['held_out']:.3f}",
            f"{f['margin_vs_best_leg']:+.3f}",
            "met" if f["margin_vs_best_leg"] >= -0.005 else "MISSED",
        )
    console.print(table)
    console.print(
        f"mean held-out {results['mean_held_out']:.4f} vs today's default {results['mean_default']:.4f} "
        f"({results['mean_held_out'] - results['mean_default']:+.4f}); best on all {len(results['folds'])} sets: {results['best_on_all']} "
        f"(worst margin to the best leg {results['best_on_all_worst_margin']:+.3f})"
    )


if __name__ == "__main__":
    raise SystemExit(main())
