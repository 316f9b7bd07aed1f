#!/usr/bin/env python
"""知问 retrieval benchmark: quality on the shared BEIR sets, search latency at scale, ingest speed.

    .venv/bin/python benchmarks/retrieval.py --parts quality            # BM25 always; dense/hybrid when cached
    .venv/bin/python benchmarks/retrieval.py --parts latency ingest --scales 10000 100000

Quality ingests each corpus through the real pipeline (``load_path`` -> ``ingest_documents`` into a
``KnowledgeBase`` in a temporary folder) and scores document-level rankings (chunk hits mapped to their
document, first occurrence kept) with trec_eval-style nDCG@10, Recall@100 and MRR@10. Passage vectors
come only from the shared embedding cache unless ``--embed`` is given. Latency times each search leg on
synthetic chunks with random unit vectors; ingest compares raw embedding with the whole pipeline.
Results go to ``benchmarks/results/retrieval-<date>.json`` (merged per date) and ``retrieval-latest.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import datetime as dt
import inspect
import json
import os
import platform
import random
import re
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from _metrics import evaluate, ndcg_at_k, read_qrels_tsv  # benchmarks/ is sys.path[0] when run as a script
from rich.console import Console
from rich.table import Table
from rich.text import Text
from tqdm import tqdm

from zhiwen.evals.suite import datasets_root
from zhiwen.memory.catalog import Catalog
from zhiwen.memory.chunking import chunk_document
from zhiwen.memory.documents import Chunk, Document, content_hash
from zhiwen.memory.ingest import ingest_documents
from zhiwen.memory.kb import KnowledgeBase
from zhiwen.memory.loaders import load_path
from zhiwen.settings import get_settings
from zhiwen.tools.bm25 import ScoredId
from zhiwen.tools.embedding_cache import CachedEmbedder
from zhiwen.tools.embeddings import E5Embedder, Vectors
from zhiwen.tools.fusion import FusionSpec, fuse_legs, reciprocal_rank_fusion
from zhiwen.tools.tokenize import CJK_MODES, CjkMode, tokenize

DIM = 384
CANDIDATES = 200  # chunks fetched per leg; deduplicated to DOC_DEPTH documents
DOC_DEPTH = 100
GRID_WEIGHTS: tuple[tuple[float, float], ...] = ((1, 1), (1, 2), (2, 1), (1, 3), (3, 1))
GRID_RRF_K: tuple[int, ...] = (10, 60)
BASELINES: dict[str, list[tuple[str, dict[str, float]]]] = {
    "scifact": [("BM25, BEIR paper (Table 2)", {"nDCG@10": 0.665})],
    "rgb-zh": [
        (
            "BM25 char uni+bigram (measured on this folder)",
            {"nDCG@10": 0.682, "Recall@100": 0.972, "MRR@10": 0.791},
        )
    ],
}
# Issue targets (nDCG@10).
QUALITY_TARGETS: dict[str, dict[str, float]] = {
    "scifact": {"bm25": 0.665, "hybrid": 0.70},
    "rgb-zh": {"hybrid": 0.75},
}
LATENCY_TARGETS_MS = {"scale": 100_000, "bm25_p95": 15.0, "hybrid_p95": 60.0}
INGEST_TARGET_OVERHEAD_PCT = 15.0
METRICS = ("nDCG@10", "Recall@100", "MRR@10")
_CJK = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")
_EN_WORD = re.compile(r"[A-Za-z][A-Za-z-]{1,}|\d+(?:\.\d+)?")

console = Console(width=None if sys.stdout.isatty() else 150)


# --- product defaults (what the recommendation is compared with) --------------------------------------
def product_defaults() -> dict[str, Any]:
    mode = inspect.signature(KnowledgeBase.__init__).parameters["cjk_mode"].default
    search = inspect.signature(KnowledgeBase.search).parameters
    out: dict[str, Any] = {"cjk_mode": mode, "bm25_weight": 1.0, "dense_weight": 1.0}
    out["rrf_k"] = search["rrf_k"].default
    out["fusion"] = search["fusion"].default
    out["embed_threads"] = get_settings().embed_threads
    with contextlib.suppress(Exception):  # the graph's run context carries the turn defaults
        from zhiwen.graph.context import Context

        fields = {f.name: f.default for f in dataclasses.fields(Context)}
        out.update({k: fields[k] for k in ("bm25_weight", "dense_weight", "rrf_k") if k in fields})
    return out


# --- embedders ----------------------------------------------------------------------------------------
class NullEmbedder:
    """For BM25-only knowledge bases: fixed random unit vectors, no model."""

    name = "bench/null-random"

    def __init__(self) -> None:
        self._rng = np.random.default_rng(0)

    def embed_passages(self, texts: list[str]) -> Vectors:
        return unit_vectors(self._rng, len(texts))

    def embed_query(self, text: str) -> Vectors:
        raise RuntimeError("the BM25-only knowledge base has no real vectors")


class QueryModel:
    """Presents ``embed_query`` as ``embed_passages`` so CachedEmbedder can cache query vectors."""

    def __init__(self, inner: E5Embedder) -> None:
        self.inner = inner
        self.name = f"{inner.name}|query"

    def embed_passages(self, texts: list[str]) -> Vectors:
        return np.stack([self.inner.embed_query(t) for t in texts]).astype(np.float32)

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)


class BenchEmbedder:
    """Passage vectors from the shared cache (the model only with --embed); query vectors cached too."""

    def __init__(self, passages: CachedEmbedder, queries: CachedEmbedder, allow_embed: bool) -> None:
        self.name = passages.name
        self._p = passages
        self._q = queries
        self._allow = allow_embed

    def embed_passages(self, texts: list[str]) -> Vectors:
        if not self._allow and len(self._p.lookup(texts)) < len(texts):
            raise RuntimeError("a passage vector is missing from the cache (use --embed)")
        return self._p.embed_passages(texts)

    def embed_query(self, text: str) -> Vectors:
        vec: Vectors = self._q.embed_passages([text])[0]
        return vec


class TimedEmbedder:
    """Counts the seconds spent inside ``embed_passages`` (for the ingest breakdown)."""

    def __init__(self, inner: E5Embedder) -> None:
        self.inner = inner
        self.name = inner.name
        self.seconds = 0.0

    def embed_passages(self, texts: list[str]) -> Vectors:
        t0 = time.perf_counter()
        try:
            return self.inner.embed_passages(texts)
        finally:
            self.seconds += time.perf_counter() - t0

    def embed_query(self, text: str) -> Vectors:
        return self.inner.embed_query(text)


class FixedQueryVectors:
    """Serves precomputed query vectors (times the hybrid search path without the query embedding)."""

    def __init__(self, name: str, vectors: dict[str, Vectors]) -> None:
        self.name = name
        self._v = vectors

    def embed_passages(self, texts: list[str]) -> Vectors:
        raise RuntimeError("not for ingestion")

    def embed_query(self, text: str) -> Vectors:
        return self._v[text]


def unit_vectors(rng: np.random.Generator, n: int) -> Vectors:
    v = rng.standard_normal((n, DIM)).astype(np.float32)
    out: Vectors = v / np.linalg.norm(v, axis=1, keepdims=True)
    return out


# --- data -----------------------------------------------------------------------------------------------
@dataclass
class BeirSet:
    name: str
    corpus: Path
    queries: dict[str, str]  # judged queries only, in file order
    qrels: dict[str, dict[str, int]]


def load_beir(root: Path, name: str) -> BeirSet:
    folder = root / name
    with (folder / "qrels" / "test.tsv").open(encoding="utf-8") as fh:
        qrels = read_qrels_tsv(fh)
    queries: dict[str, str] = {}
    for line in (folder / "queries.jsonl").read_text(encoding="utf-8").splitlines():
        if line.strip():
            rec = json.loads(line)
            if str(rec["_id"]) in qrels:
                queries[str(rec["_id"])] = str(rec["text"])
    return BeirSet(name, folder / "corpus.jsonl", queries, qrels)


def chunk_doc_map(kb: KnowledgeBase) -> dict[str, str]:
    rows = kb.catalog.chunks(sorted(kb.catalog.all_chunk_ids()))
    return {cid: row.doc_id for cid, row in rows.items()}


def to_docs(chunk_ids: Sequence[str], cmap: dict[str, str], depth: int = DOC_DEPTH) -> list[str]:
    """Document ranking from a chunk ranking: a document ranks at its best chunk (first occurrence)."""
    out: list[str] = []
    seen: set[str] = set()
    for cid in chunk_ids:
        doc = cmap.get(cid)
        if doc is not None and doc not in seen:
            seen.add(doc)
            out.append(doc)
            if len(out) == depth:
                break
    return out


def fuse(bm25: list[ScoredId], dense: list[ScoredId], wb: float, wd: float, k: int) -> list[str]:
    return [
        cid for cid, _ in reciprocal_rank_fusion({"bm25": bm25, "dense": dense}, {"bm25": wb, "dense": wd}, k)
    ]


@contextlib.contextmanager
def ingest_bar(desc: str) -> Iterator[Callable[[int, int], None]]:
    bar = tqdm(desc=desc, unit="chunk", leave=False, dynamic_ncols=True)

    def progress(done: int, total: int) -> None:
        bar.total = total
        bar.n = done
        bar.refresh()

    try:
        yield progress
    finally:
        bar.close()


def percentiles(samples_s: Sequence[float]) -> dict[str, float]:
    ms = np.asarray(samples_s) * 1000.0
    return {
        "p50_ms": float(np.percentile(ms, 50)),
        "p95_ms": float(np.percentile(ms, 95)),
        "mean_ms": float(ms.mean()),
        "n": len(ms),
    }


def paired_bootstrap(a: Sequence[float], b: Sequence[float], rounds: int = 2000) -> dict[str, float]:
    """Mean per-query difference a - b with a 95% paired-bootstrap interval (seeded)."""
    d = np.asarray(a) - np.asarray(b)
    rng = np.random.default_rng(0)
    means = d[rng.integers(0, len(d), size=(rounds, len(d)))].mean(axis=1)
    lo, hi = np.percentile(means, [2.5, 97.5])
    return {"diff": float(d.mean()), "ci_low": float(lo), "ci_high": float(hi)}


def fmt_diff(p: dict[str, float]) -> str:
    return f"{p['diff']:+.3f} (95% CI {p['ci_low']:+.3f} to {p['ci_high']:+.3f})"


def load_info() -> dict[str, Any]:
    return {
        "loadavg_1m": round(os.getloadavg()[0], 2),
        "time": dt.datetime.now().isoformat(timespec="seconds"),
    }


# --- 1. quality -------------------------------------------------------------------------------------------
def run_quality(ds: BeirSet, args: argparse.Namespace, tmp: Path, defaults: dict[str, Any]) -> dict[str, Any]:
    console.rule(f"quality: {ds.name}")
    docs = load_path(ds.corpus)
    texts = [c.text for d in docs for c in chunk_document(d)]
    qids = list(ds.queries)
    if args.max_queries:
        qids = qids[: args.max_queries]
    qrels = {q: ds.qrels[q] for q in qids}
    sample = "".join(d.title + d.text for d in docs[:500])
    cjk = len(_CJK.findall(sample)) > 0.05 * max(len(sample), 1)
    modes: list[CjkMode] = list(CJK_MODES) if cjk else [defaults["cjk_mode"]]
    res: dict[str, Any] = {
        "measured": load_info(),
        "documents": len(docs),
        "chunks": len(texts),
        "queries": len(qids),
        "cjk": cjk,
        "bm25": {},
        "dense": None,
        "hybrid": [],
    }
    bm25_legs: dict[str, dict[str, list[ScoredId]]] = {}
    per_query: dict[str, list[float]] = {}  # nDCG@10 per query of each system, for paired comparisons
    cmap: dict[str, str] = {}
    for mode in modes:
        kb = KnowledgeBase.open(tmp / f"{ds.name}-bm25", mode, NullEmbedder(), create=True, cjk_mode=mode)
        t0 = time.perf_counter()
        with ingest_bar(f"{ds.name} ingest (BM25, {mode})") as progress:
            ingest_documents(kb, docs, progress=progress, batch_chunks=512)
        ingest_s = time.perf_counter() - t0
        cmap = cmap or chunk_doc_map(kb)
        legs: dict[str, list[ScoredId]] = {}
        times: list[float] = []
        for qid in tqdm(qids, desc=f"{ds.name} BM25 {mode}", leave=False, dynamic_ncols=True):
            t0 = time.perf_counter()
            legs[qid] = kb.bm25().search(kb.tokens(ds.queries[qid]), CANDIDATES)
            times.append(time.perf_counter() - t0)
        bm25_legs[mode] = legs
        run = {qid: to_docs([h.id for h in legs[qid]], cmap) for qid in qids}
        per_query[f"bm25:{mode}"] = [ndcg_at_k(run[q], qrels[q], 10) for q in qids]
        res["bm25"][mode] = {
            **evaluate(run, qrels),
            "ingest_s": round(ingest_s, 1),
            "query_ms_mean": round(1000 * statistics.fmean(times), 2),
        }
        console.print(f"BM25 [{mode}]: " + fmt_metrics(res["bm25"][mode]), markup=False)
        kb.close()
    if len(modes) > 1:
        best_mode = max(modes, key=lambda m: res["bm25"][m]["nDCG@10"])
        res["bm25_best_minus_other_modes"] = {
            m: paired_bootstrap(per_query[f"bm25:{best_mode}"], per_query[f"bm25:{m}"])
            for m in modes
            if m != best_mode
        }

    cache = CachedEmbedder(E5Embedder(threads=1), args.cache)
    cached = len(cache.lookup(texts))
    res["cached_passages"] = cached
    console.print(f"embedding cache {args.cache}: {cached}/{len(texts)} passages cached")
    if cached < len(texts) and not args.embed:
        res["dense_skipped"] = (
            f"dense/hybrid skipped: {cached}/{len(texts)} passages cached; "
            "rerun when the cache is complete or with --embed"
        )
        console.print(f"[yellow]{res['dense_skipped']}[/yellow]")
        return res

    e5 = cache.inner
    assert isinstance(e5, E5Embedder)
    qcache = CachedEmbedder(QueryModel(e5), args.cache.parent / "bench-query-embeddings.sqlite")
    emb = BenchEmbedder(cache, qcache, allow_embed=args.embed)
    kb = KnowledgeBase.open(
        tmp / f"{ds.name}-dense", "dense", emb, create=True, cjk_mode=defaults["cjk_mode"]
    )
    t0 = time.perf_counter()
    with ingest_bar(f"{ds.name} ingest (dense)") as progress:
        ingest_documents(kb, docs, progress=progress, batch_chunks=256)
    res["dense_ingest_s"] = round(time.perf_counter() - t0, 1)
    qvecs = {
        qid: emb.embed_query(ds.queries[qid])
        for qid in tqdm(qids, desc=f"{ds.name} query vectors", leave=False, dynamic_ncols=True)
    }
    dense_legs = {
        qid: kb.vectors.search(qvecs[qid], CANDIDATES)
        for qid in tqdm(qids, desc=f"{ds.name} dense", leave=False, dynamic_ncols=True)
    }
    dense_run = {q: to_docs([h.id for h in dense_legs[q]], cmap) for q in qids}
    res["dense"] = evaluate(dense_run, qrels)
    per_query["dense"] = [ndcg_at_k(dense_run[q], qrels[q], 10) for q in qids]
    console.print("dense: " + fmt_metrics(res["dense"]), markup=False)
    for mode in modes:
        for wb, wd in GRID_WEIGHTS:
            for k in GRID_RRF_K:
                run = {q: to_docs(fuse(bm25_legs[mode][q], dense_legs[q], wb, wd, k), cmap) for q in qids}
                per_query[f"hybrid:{mode}:{wb:g}:{wd:g}:{k}"] = [
                    ndcg_at_k(run[q], qrels[q], 10) for q in qids
                ]
                res["hybrid"].append(
                    {
                        "cjk_mode": mode,
                        "bm25_weight": wb,
                        "dense_weight": wd,
                        "rrf_k": k,
                        **evaluate(run, qrels),
                    }
                )
    # The grid is fused offline from the two legs; check that KnowledgeBase.search with the product's
    # default fusion ranks exactly as the offline fusion with the same weights and k.
    mode0: CjkMode = defaults["cjk_mode"]
    if mode0 in bm25_legs:
        agree = 0
        checked = qids[:20]
        wb, wd, k0 = defaults["bm25_weight"], defaults["dense_weight"], defaults["rrf_k"]
        for q in checked:
            hits = kb.search(ds.queries[q], top_k=CANDIDATES, mode="hybrid", candidates=CANDIDATES)
            spec = FusionSpec(defaults["fusion"], wb, wd, k0)
            product = [
                cid for cid, _ in fuse_legs({"bm25": bm25_legs[mode0][q], "dense": dense_legs[q]}, spec)
            ]
            agree += [h.id for h in hits] == product[:CANDIDATES]
        res["kb_search_agreement"] = f"{agree}/{len(checked)}"
    kb.close()
    best = max(res["hybrid"], key=lambda r: r["nDCG@10"])
    best_key = f"hybrid:{best['cjk_mode']}:{best['bm25_weight']:g}:{best['dense_weight']:g}:{best['rrf_k']}"
    default_key = (
        f"hybrid:{defaults['cjk_mode'] if cjk else modes[0]}:{defaults['bm25_weight']:g}:"
        f"{defaults['dense_weight']:g}:{defaults['rrf_k']}"
    )
    if default_key in per_query:
        res["hybrid_best_vs_default"] = paired_bootstrap(per_query[best_key], per_query[default_key])
    best_leg = max(per_query, key=lambda key: statistics.fmean(per_query[key]) if key[0] != "h" else -1.0)
    res["hybrid_best_vs_best_leg"] = {
        "leg": best_leg,
        **paired_bootstrap(per_query[best_key], per_query[best_leg]),
    }
    console.print(
        f"best hybrid: {best['cjk_mode']} w=({best['bm25_weight']:g},{best['dense_weight']:g}) "
        f"k={best['rrf_k']}: " + fmt_metrics(best),
        markup=False,
    )
    return res


def fmt_metrics(m: dict[str, Any]) -> str:
    return "  ".join(f"{k} {m[k]:.3f}" for k in METRICS if k in m)


# --- 2. latency -------------------------------------------------------------------------------------------
class SyntheticText:
    """Chunks of 100-300 characters mixing English words (scifact) and Chinese fragments (rgb-zh)."""

    def __init__(self, root: Path, seed: int) -> None:
        self.rng = random.Random(seed)
        words: list[str] = []
        for d in load_path(root / "scifact" / "corpus.jsonl"):
            words.extend(_EN_WORD.findall(f"{d.title} {d.text}"))
        self.words = words
        self.zh = [d.text for d in load_path(root / "rgb-zh" / "corpus.jsonl") if _CJK.search(d.text)]

    def _zh_fragment(self) -> str:
        text = self.rng.choice(self.zh)
        n = self.rng.randint(6, 30)
        start = self.rng.randrange(max(1, len(text) - n))
        return text[start : start + n]

    def _en_words(self) -> str:
        return " ".join(self.rng.choice(self.words) for _ in range(self.rng.randint(3, 12)))

    def chunk(self) -> str:
        target = self.rng.randint(100, 300)
        zh_share = 0.85 if self.rng.random() < 0.5 else 0.1
        parts: list[str] = []
        size = 0
        while size < target:
            part = self._zh_fragment() if self.rng.random() < zh_share else self._en_words()
            parts.append(part)
            size += len(part) + 1
        return " ".join(parts)[:target]


def latency_queries(root: Path, n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    out: list[str] = []
    for name in ("scifact", "rgb-zh"):
        qs = list(load_beir(root, name).queries.values())
        out.extend(rng.sample(qs, min(len(qs), n // 2)))
    return out


def insert_synthetic(
    kb: KnowledgeBase, gen: SyntheticText, start: int, stop: int, rng: np.random.Generator
) -> None:
    batch = 2000
    with tqdm(total=stop - start, desc=f"synthetic chunks -> {stop}", leave=False, dynamic_ncols=True) as bar:
        for lo in range(start, stop, batch):
            hi = min(lo + batch, stop)
            docs: list[tuple[Document, Chunk, list[str]]] = []
            for i in range(lo, hi):
                text = gen.chunk()
                doc = Document(source=f"synthetic://{i}", text=text, doc_id=f"syn{i}", is_passage=True)
                cid = content_hash(f"{doc.id}:{doc.sha256}:0:{text}")[:32]
                meta = {"source": doc.source, "title": "", "start": 0, "end": len(text)}
                docs.append((doc, Chunk(cid, doc.id, text, 0, 0, len(text), meta), kb.tokens(text)))
            kb.vectors.upsert(
                [c.id for _, c, _ in docs], unit_vectors(rng, len(docs)), [d.id for d, _, _ in docs]
            )
            with kb.catalog.transaction() as db:
                for doc, chunk, toks in docs:
                    Catalog.put_document(db, doc, [chunk], [toks])
            bar.update(hi - lo)


def time_interleaved(
    label: str, items: Sequence[str], fns: dict[str, Callable[[str], object]], warmup: int = 5
) -> dict[str, list[float]]:
    """Per query, run every function once in turn, so load changes on a busy machine hit all alike."""
    for q in items[:warmup]:
        for fn in fns.values():
            fn(q)
    out: dict[str, list[float]] = {name: [] for name in fns}
    for q in tqdm(items, desc=label, leave=False, dynamic_ncols=True):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            fn(q)
            out[name].append(time.perf_counter() - t0)
    return out


def run_latency(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    console.rule("latency")
    queries = latency_queries(args.data_root, args.latency_queries, args.seed)
    e5 = E5Embedder(threads=get_settings().embed_threads, query_cache=0)  # time the model, not the cache
    res: dict[str, Any] = {
        "measured": load_info(),
        "queries": len(queries),
        "cores": os.cpu_count(),
        "scales": {},
    }
    qvecs = {
        q: e5.embed_query(q) for q in tqdm(queries, desc="query vectors", leave=False, dynamic_ncols=True)
    }
    fixed = FixedQueryVectors(e5.name, qvecs)
    gen = SyntheticText(args.data_root, args.seed)
    rng = np.random.default_rng(args.seed)
    kb = KnowledgeBase.open(tmp, "latency", e5, create=True)
    # Same knowledge base, but the query vector is handed over: the hybrid path minus the embedding.
    kb_vec = KnowledgeBase.open(tmp, "latency", fixed)
    have = 0
    for scale in sorted(args.scales):
        t0 = time.perf_counter()
        insert_synthetic(kb, gen, have, scale, rng)
        insert_s = time.perf_counter() - t0
        have = scale
        t0 = time.perf_counter()
        kb.rebuild_bm25()
        build_s = time.perf_counter() - t0
        timings = time_interleaved(
            f"{scale} chunks",
            queries,
            {
                "bm25": lambda q: kb.bm25().search(kb.tokens(q), 100),
                "dense": lambda q: kb.vectors.search(qvecs[q], 100),
                "query_embedding": e5.embed_query,
                "hybrid": lambda q: kb.search(q, top_k=10, mode="hybrid"),
                "hybrid_cached_query_vector": lambda q: kb_vec.search(q, top_k=10, mode="hybrid"),
            },
        )
        row: dict[str, Any] = {"chunks": kb.catalog.counts()[1], "insert_s": round(insert_s, 1)}
        row["bm25_build_s"] = round(build_s, 2)
        row.update({name: percentiles(t) for name, t in timings.items()})
        row["measured"] = load_info()
        res["scales"][str(scale)] = row
        console.print(
            f"{scale:>7} chunks: BM25 p50/p95 {row['bm25']['p50_ms']:.1f}/{row['bm25']['p95_ms']:.1f} ms, "
            f"dense {row['dense']['p50_ms']:.1f}/{row['dense']['p95_ms']:.1f} ms, "
            f"query embedding {row['query_embedding']['p50_ms']:.1f}/{row['query_embedding']['p95_ms']:.1f} ms, "
            f"hybrid {row['hybrid']['p50_ms']:.1f}/{row['hybrid']['p95_ms']:.1f} ms"
        )
    kb_vec.close()
    kb.close()
    return res


# --- 3. ingest throughput ---------------------------------------------------------------------------------
def run_ingest(args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    console.rule("ingest throughput")
    docs = load_path(args.data_root / "rgb-zh" / "corpus.jsonl")
    sample = random.Random(args.seed).sample(docs, args.ingest_passages)
    texts = [c.text for d in sample for c in chunk_document(d)]
    e5 = E5Embedder(threads=get_settings().embed_threads, query_cache=0)  # time the model, not the cache
    timed = TimedEmbedder(e5)
    e5.embed_passages(texts[:2])  # load the model
    tokenize("预热 jieba warm-up")
    warm = KnowledgeBase.open(tmp, "warmup", CachedEmbedder(timed, tmp / "warm-cache.sqlite"), create=True)
    ingest_documents(warm, sample[:2])
    warm.close()
    raw: list[float] = []
    pipe: list[float] = []
    embed_in_pipe: list[float] = []
    open_s: list[float] = []
    for r in tqdm(range(args.ingest_rounds), desc="ingest rounds", leave=False, dynamic_ncols=True):
        t0 = time.perf_counter()
        for i in range(0, len(texts), 16):
            e5.embed_passages(texts[i : i + 16])
        raw.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        kb = KnowledgeBase.open(
            tmp, f"ingest-{r}", CachedEmbedder(timed, tmp / f"cache-{r}.sqlite"), create=True
        )
        open_s.append(time.perf_counter() - t0)
        before = timed.seconds
        t0 = time.perf_counter()
        report = ingest_documents(kb, sample)
        pipe.append(time.perf_counter() - t0)
        embed_in_pipe.append(timed.seconds - before)
        assert report.added == len(sample), report.summary()
        kb.close()
    raw_s, pipe_s = statistics.median(raw), statistics.median(pipe)
    res = {
        "measured": load_info(),
        "passages": len(sample),
        "chunks": len(texts),
        "rounds": args.ingest_rounds,
        "raw_s": [round(x, 2) for x in raw],
        "pipeline_s": [round(x, 2) for x in pipe],
        "pipeline_embed_s": [round(x, 2) for x in embed_in_pipe],
        "kb_open_s": [round(x, 2) for x in open_s],
        "raw_passages_per_s": len(sample) / raw_s,
        "pipeline_passages_per_s": len(sample) / pipe_s,
        "overhead_pct": 100.0 * (pipe_s / raw_s - 1.0),
        "pipeline_non_embed_s": statistics.median(p - e for p, e in zip(pipe, embed_in_pipe)),
    }
    console.print(
        f"raw {res['raw_passages_per_s']:.2f} passages/s, pipeline {res['pipeline_passages_per_s']:.2f} "
        f"passages/s, overhead {res['overhead_pct']:+.1f}%"
    )
    return res


# --- reporting --------------------------------------------------------------------------------------------
TableData = tuple[str, list[str], list[list[str]]]


def f3(x: float | None) -> str:
    return "" if x is None else f"{x:.3f}"


def check(ok: bool) -> str:
    return "met" if ok else "MISSED"


def quality_tables(
    name: str, q: dict[str, Any], defaults: dict[str, Any]
) -> tuple[list[TableData], list[str]]:
    rows: list[list[str]] = []
    for label, m in BASELINES.get(name, []):
        rows.append([f"published: {label}", *[f3(m.get(k)) for k in METRICS]])
    for mode, m in q["bm25"].items():
        rows.append([f"BM25 cjk_mode={mode}" if q.get("cjk") else "BM25", *[f3(m[k]) for k in METRICS]])
    if q.get("dense"):
        rows.append(["dense e5-small", *[f3(q["dense"][k]) for k in METRICS]])
    notes: list[str] = []
    tables: list[TableData] = []
    if q.get("hybrid"):
        by_mode: dict[str, dict[str, Any]] = {}
        for r in q["hybrid"]:
            if r["cjk_mode"] not in by_mode or r["nDCG@10"] > by_mode[r["cjk_mode"]]["nDCG@10"]:
                by_mode[r["cjk_mode"]] = r
        for mode, r in by_mode.items():
            rows.append(
                [
                    f"hybrid best: {mode if q.get('cjk') else 'BM25'} + dense, "
                    f"w={r['bm25_weight']:g}/{r['dense_weight']:g} k={r['rrf_k']}",
                    *[f3(r[k]) for k in METRICS],
                ]
            )
        d = next(
            (
                r
                for r in q["hybrid"]
                if r["cjk_mode"] == defaults["cjk_mode"]
                and (r["bm25_weight"], r["dense_weight"], r["rrf_k"])
                == (defaults["bm25_weight"], defaults["dense_weight"], defaults["rrf_k"])
            ),
            None,
        )
        if d:
            rows.append(["hybrid with product defaults", *[f3(d[k]) for k in METRICS]])
        modes = list(q["bm25"])
        grid_rows = []
        for wb, wd in GRID_WEIGHTS:
            for k in GRID_RRF_K:
                cells = []
                for mode in modes:
                    r = next(
                        x
                        for x in q["hybrid"]
                        if x["cjk_mode"] == mode
                        and (x["bm25_weight"], x["dense_weight"], x["rrf_k"]) == (wb, wd, k)
                    )
                    cells.append(f"{r['nDCG@10']:.3f} / {r['Recall@100']:.3f} / {r['MRR@10']:.3f}")
                grid_rows.append([f"{wb:g}", f"{wd:g}", str(k), *cells])
        tables.append(
            (
                f"{name}: hybrid grid, nDCG@10 / Recall@100 / MRR@10",
                ["w bm25", "w dense", "rrf k", *[f"BM25 {m}" for m in modes]],
                grid_rows,
            )
        )
    elif q.get("dense_skipped"):
        notes.append(q["dense_skipped"])
    tables.insert(
        0,
        (
            f"{name}: {q['documents']} documents, {q['chunks']} chunks, {q['queries']} queries",
            ["system", *METRICS],
            rows,
        ),
    )
    # targets
    best_bm25_mode, best_bm25 = max(q["bm25"].items(), key=lambda kv: kv[1]["nDCG@10"])
    t = QUALITY_TARGETS.get(name, {})
    if "bm25" in t:
        v = best_bm25["nDCG@10"]
        notes.append(
            f"target BM25 nDCG@10 >= {t['bm25']}: {v:.3f} {check(v >= t['bm25'])} ({v - t['bm25']:+.3f})"
        )
    if "hybrid" in t:
        if q.get("hybrid"):
            v = max(r["nDCG@10"] for r in q["hybrid"])
            notes.append(
                f"target hybrid nDCG@10 >= {t['hybrid']}: best {v:.3f} {check(v >= t['hybrid'])} ({v - t['hybrid']:+.3f})"
            )
        else:
            notes.append(f"target hybrid nDCG@10 >= {t['hybrid']}: not measured (dense skipped)")
    if q.get("cjk"):
        notes.append(
            f"best BM25 tokenizer: {best_bm25_mode} (nDCG@10 {best_bm25['nDCG@10']:.3f}); "
            f"product default: {defaults['cjk_mode']}"
        )
        if "bm25_best_minus_other_modes" in q:
            notes.append(
                f"BM25 {best_bm25_mode} minus each other mode, nDCG@10 per query (paired bootstrap): "
                + "; ".join(f"{m} {fmt_diff(p)}" for m, p in q["bm25_best_minus_other_modes"].items())
            )
    if q.get("hybrid"):
        best = max(q["hybrid"], key=lambda r: r["nDCG@10"])
        legs = max(best_bm25["nDCG@10"], q["dense"]["nDCG@10"])
        if best["nDCG@10"] < legs:
            notes.append(f"WARNING: best hybrid ({best['nDCG@10']:.3f}) loses to its best leg ({legs:.3f})")
        if "hybrid_best_vs_default" in q:
            notes.append(
                "best hybrid minus hybrid with product defaults: " + fmt_diff(q["hybrid_best_vs_default"])
            )
        if "hybrid_best_vs_best_leg" in q:
            p = q["hybrid_best_vs_best_leg"]
            notes.append(f"best hybrid minus best single leg ({p['leg']}): " + fmt_diff(p))
        if "kb_search_agreement" in q:
            notes.append(
                f"KnowledgeBase.search agrees with the offline fusion on {q['kb_search_agreement']} queries"
            )
    return tables, notes


def recommendation(quality: dict[str, Any], defaults: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    cjk_sets = [q for q in quality.values() if q.get("cjk")]
    if cjk_sets:
        modes = list(cjk_sets[0]["bm25"])
        mean = {m: statistics.fmean(q["bm25"][m]["nDCG@10"] for q in cjk_sets) for m in modes}
        best = max(mean, key=lambda m: mean[m])
        lines.append(
            f"recommend cjk_mode={best} (BM25 nDCG@10 {mean[best]:.3f} on Chinese sets; current default "
            f"{defaults['cjk_mode']}: {mean.get(defaults['cjk_mode'], float('nan')):.3f})"
        )
    with_hybrid = [q for q in quality.values() if q.get("hybrid")]
    if with_hybrid:
        keyed: dict[tuple[Any, ...], list[float]] = {}
        for q in with_hybrid:
            for r in q["hybrid"]:
                mode = r["cjk_mode"] if q.get("cjk") else "*"
                keyed.setdefault((mode, r["bm25_weight"], r["dense_weight"], r["rrf_k"]), []).append(
                    r["nDCG@10"]
                )
        # A configuration applies to a set when its mode matches (English sets ignore the mode).
        scores: dict[tuple[Any, ...], float] = {}
        modes = {k[0] for k in keyed if k[0] != "*"} or {"*"}
        for mode in modes:
            for wb, wd in GRID_WEIGHTS:
                for k in GRID_RRF_K:
                    vals = keyed.get((mode, wb, wd, k), []) + (
                        keyed.get(("*", wb, wd, k), []) if mode != "*" else []
                    )
                    if len(vals) == len(with_hybrid):
                        scores[(mode, wb, wd, k)] = statistics.fmean(vals)
        if scores:
            (mode, wb, wd, k), v = max(scores.items(), key=lambda kv: kv[1])
            cur = scores.get(
                (
                    defaults["cjk_mode"] if modes != {"*"} else "*",
                    defaults["bm25_weight"],
                    defaults["dense_weight"],
                    defaults["rrf_k"],
                )
            )
            lines.append(
                f"recommend fusion bm25_weight={wb:g} dense_weight={wd:g} rrf_k={k}"
                + (f" with cjk_mode={mode}" if mode != "*" else "")
                + f" (mean hybrid nDCG@10 {v:.3f} over {', '.join(n for n, q in quality.items() if q.get('hybrid'))}"
                + (f"; current defaults {cur:.3f})" if cur is not None else ")")
            )
    return lines


def latency_table(lat: dict[str, Any]) -> tuple[TableData, list[str]]:
    def pp(d: dict[str, float]) -> str:
        return f"{d['p50_ms']:.1f} / {d['p95_ms']:.1f}"

    rows = []
    for scale, row in sorted(lat["scales"].items(), key=lambda kv: int(kv[0])):
        rows.append(
            [
                f"{int(scale):,}",
                pp(row["bm25"]),
                pp(row["dense"]),
                pp(row["query_embedding"]),
                pp(row["hybrid"]),
                pp(row["hybrid_cached_query_vector"]),
                f"{row['insert_s']:.0f} / {row['bm25_build_s']:.1f}",
            ]
        )
    notes = []
    big = lat["scales"].get(str(LATENCY_TARGETS_MS["scale"]))
    if big:
        b, h = big["bm25"]["p95_ms"], big["hybrid"]["p95_ms"]
        bt, ht = LATENCY_TARGETS_MS["bm25_p95"], LATENCY_TARGETS_MS["hybrid_p95"]
        notes.append(f"target BM25 p95 < {bt:g} ms at 100k: {b:.1f} ms {check(b < bt)} ({b - bt:+.1f} ms)")
        notes.append(f"target hybrid p95 < {ht:g} ms at 100k: {h:.1f} ms {check(h < ht)} ({h - ht:+.1f} ms)")
    notes.append(
        f"{lat['queries']} real queries (half scifact, half rgb-zh), {lat['cores']} cores, "
        f"load average {lat['measured']['loadavg_1m']} at start"
    )
    return (
        (
            "search latency, p50 / p95 ms (synthetic chunks, random unit vectors)",
            [
                "chunks",
                "BM25 leg",
                "dense leg",
                "query embedding",
                "hybrid search",
                "hybrid, vector given",
                "insert s / BM25 build s",
            ],
            rows,
        ),
        notes,
    )


def ingest_table(ing: dict[str, Any]) -> tuple[TableData, list[str]]:
    rows = [
        [
            "raw E5Embedder.embed_passages (batches of 16)",
            f"{ing['raw_passages_per_s']:.2f}",
            ", ".join(f"{x:.2f}" for x in ing["raw_s"]),
        ],
        [
            "ingest_documents (chunk, tokenize, embed, Chroma, catalog, BM25)",
            f"{ing['pipeline_passages_per_s']:.2f}",
            ", ".join(f"{x:.2f}" for x in ing["pipeline_s"]),
        ],
    ]
    o = ing["overhead_pct"]
    notes = [
        f"pipeline overhead {o:+.1f}% (target within {INGEST_TARGET_OVERHEAD_PCT:g}%): "
        f"{check(o <= INGEST_TARGET_OVERHEAD_PCT)}; median non-embedding time in the pipeline "
        f"{ing['pipeline_non_embed_s']:.2f} s; embedding inside the pipeline: "
        + ", ".join(f"{x:.2f}" for x in ing["pipeline_embed_s"])
        + " s",
        f"{ing['passages']} rgb-zh passages ({ing['chunks']} chunks), {ing['rounds']} interleaved rounds, medians; "
        f"load average {ing['measured']['loadavg_1m']}",
    ]
    return (
        (
            "ingest throughput",
            ["path", "passages/s (median)", "seconds per round"],
            rows,
        ),
        notes,
    )


def all_tables(results: dict[str, Any]) -> list[tuple[TableData | None, list[str]]]:
    defaults = results.get("defaults") or product_defaults()
    out: list[tuple[TableData | None, list[str]]] = []
    quality = results.get("quality", {})
    for name, q in quality.items():
        tables, notes = quality_tables(name, q, defaults)
        for i, t in enumerate(tables):
            out.append((t, notes if i == len(tables) - 1 else []))
    if quality:
        out.append((None, recommendation(quality, defaults)))
    if "latency" in results:
        out.append(latency_table(results["latency"]))
    if "ingest" in results:
        out.append(ingest_table(results["ingest"]))
    return out


def print_tables(results: dict[str, Any]) -> None:
    for table, notes in all_tables(results):
        if table is not None:
            title, headers, rows = table
            t = Table(title=title, title_justify="left")
            for i, h in enumerate(headers):
                t.add_column(h, justify="left" if i == 0 else "right")
            for r in rows:
                t.add_row(*(Text(c) for c in r))
            console.print(t)
        for n in notes:
            console.print(f"  {n}", markup=False)


PARTS = ("quality", "latency", "ingest")


def newest_parts(out: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Each part from the newest ``retrieval-<date>.json`` that has it, and the date it comes from.

    A run of one part (say latency) writes a JSON for its own day; the Markdown summary still shows the
    other parts from the day they were last measured.
    """
    merged: dict[str, Any] = {}
    dates: dict[str, str] = {}
    for path in sorted(out.glob("retrieval-*.json")):
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            continue
        for part in PARTS:
            if part in data:
                merged[part] = data[part]
                dates[part] = str(data.get("date", path.stem.removeprefix("retrieval-")))
        merged["machine"] = data.get("machine", merged.get("machine", {}))
    return merged, dates


def markdown(results: dict[str, Any], dates: dict[str, str] | None = None) -> str:
    dates = dates or {part: str(results.get("date")) for part in PARTS if part in results}
    measured = ", ".join(f"{part} on {day}" for part, day in dates.items())
    lines = [
        "# Retrieval benchmark (latest)",
        "",
        f"Generated by `benchmarks/retrieval.py` ({measured}; "
        f"{results.get('machine', {}).get('cores')} cores, Python {results.get('machine', {}).get('python')}). "
        "See `benchmarks/README.md` for what is measured.",
        "",
    ]
    for table, notes in all_tables(results):
        if table is not None:
            title, headers, rows = table
            lines += [f"### {title}", "", "| " + " | ".join(headers) + " |"]
            lines.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(headers))) + "|")
            lines += ["| " + " | ".join(r) + " |" for r in rows]
            lines.append("")
        lines += [f"- {n}" for n in notes]
        if notes:
            lines.append("")
    return "\n".join(lines)


# --- main -------------------------------------------------------------------------------------------------
def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="zhiwen retrieval benchmark: quality (nDCG@10, Recall@100, MRR@10), latency, ingest speed.",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    p.add_argument("--datasets", nargs="+", default=["scifact", "rgb-zh"], help="BEIR sets under --data-root")
    p.add_argument(
        "--parts",
        nargs="+",
        default=["quality", "latency", "ingest"],
        choices=["quality", "latency", "ingest"],
        help="what to measure",
    )
    p.add_argument("--scales", nargs="+", type=int, default=[10_000, 100_000], help="synthetic chunk counts")
    p.add_argument(
        "--embed",
        action="store_true",
        help="compute passage vectors missing from the cache (slow: ~2 passages/s per core); "
        "default: dense/hybrid run only when the corpus is fully cached",
    )
    p.add_argument(
        "--out", type=Path, default=Path(__file__).resolve().parent / "results", help="where results go"
    )
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="BEIR sets folder (default: ZHIWEN_DATASETS, else $ZHIWEN_HOME/datasets)",
    )
    p.add_argument(
        "--cache",
        type=Path,
        default=Path.home() / ".local" / "share" / "zhiwen" / "cache" / "embeddings.sqlite",
        help="shared passage-vector cache (query vectors go to bench-query-embeddings.sqlite beside it)",
    )
    p.add_argument(
        "--max-queries", type=int, default=0, help="quality: use only the first N queries (0 = all)"
    )
    p.add_argument("--latency-queries", type=int, default=200, help="real queries timed (half per set)")
    p.add_argument("--ingest-passages", type=int, default=60, help="rgb-zh passages embedded per round")
    p.add_argument("--ingest-rounds", type=int, default=3, help="interleaved raw/pipeline rounds (medians)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed")
    p.add_argument(
        "--tmp", type=Path, default=None, help="parent of the scratch folder (default: system temp)"
    )
    p.add_argument("--keep", action="store_true", help="keep the scratch knowledge bases (for profiling)")
    args = p.parse_args(argv)
    args.data_root = args.data_root or datasets_root()
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    today = dt.date.today().isoformat()
    json_path = args.out / f"retrieval-{today}.json"
    results: dict[str, Any] = json.loads(json_path.read_text()) if json_path.exists() else {}
    defaults = product_defaults()
    results.update(
        {
            "date": today,
            "defaults": defaults,
            "machine": {
                "cores": os.cpu_count(),
                "python": platform.python_version(),
                "platform": platform.platform(),
            },
        }
    )
    scratch = Path(tempfile.mkdtemp(prefix="zhiwen-bench-", dir=args.tmp))
    try:
        if "quality" in args.parts:
            quality = results.setdefault("quality", {})
            for name in args.datasets:
                quality[name] = run_quality(
                    load_beir(args.data_root, name), args, scratch / "quality", defaults
                )
                save(results, json_path, args.out)
        if "latency" in args.parts:
            results["latency"] = run_latency(args, scratch / "latency")
            save(results, json_path, args.out)
        if "ingest" in args.parts:
            results["ingest"] = run_ingest(args, scratch / "ingest")
            save(results, json_path, args.out)
    finally:
        if args.keep:
            console.print(f"scratch kept in {scratch}")
        else:
            shutil.rmtree(scratch, ignore_errors=True)
    console.rule("results")
    print_tables(results)
    console.print(f"wrote {json_path} and {args.out / 'retrieval-latest.md'}")
    return 0


def save(results: dict[str, Any], json_path: Path, out: Path) -> None:
    json_path.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    merged, dates = newest_parts(out)
    (out / "retrieval-latest.md").write_text(markdown(merged, dates) + "\n", encoding="utf-8")


if __name__ == "__main__":
    sys.exit(main())
