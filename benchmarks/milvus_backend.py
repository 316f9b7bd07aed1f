"""The Milvus backend beside the embedded one, in one run: quality per leg and fused, latency, ingest speed.

    .venv/bin/python benchmarks/milvus_backend.py --sets rgb-zh scifact --scales 10000

Quality: each set's corpus is ingested through the real pipeline twice, into the embedded backend (bm25s +
Chroma) and into a ``milvus-lite server`` started on loopback (``ZHIWEN_MILVUS_URI``), with passage vectors
from the shared embedding cache (a set whose passages are not all cached is reported as pending). Each judged
query's legs are fetched as ``KnowledgeBase.search`` fetches them (50 candidates) and fused as the product fuses
them (``DEFAULT_FUSION``, minmax_confidence) and, beside it, with weighted RRF; nDCG@10 on documents. A third BM25 row indexes the raw chunk text with Milvus's own jieba analyzer (the
other way to tokenise, measured to choose). Latency: synthetic chunks with random unit vectors added to both
backends, then each leg timed per query. Before anything is measured, each backend must hold exactly the chunks
the catalog holds (Milvus rows flushed and counted). Results: ``benchmarks/results/milvus-<date>.json`` (a part
run again replaces its own section) and a table.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
from _metrics import ndcg_at_k
from retrieval import (
    NullEmbedder,
    SyntheticText,
    chunk_doc_map,
    latency_queries,
    load_beir,
    percentiles,
    to_docs,
    unit_vectors,
)
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from zhiwen.evals.suite import datasets_root
from zhiwen.memory.catalog import Catalog
from zhiwen.memory.chunking import chunk_document
from zhiwen.memory.documents import Chunk, Document, content_hash
from zhiwen.memory.ingest import ingest_documents
from zhiwen.memory.kb import DEFAULT_FUSION, DEFAULT_RRF_K, DEFAULT_WEIGHTS, KnowledgeBase
from zhiwen.memory.loaders import load_path
from zhiwen.memory.registry import get_embedder
from zhiwen.settings import get_settings
from zhiwen.tools.bm25 import ScoredId
from zhiwen.tools.embedding_cache import CachedEmbedder
from zhiwen.tools.fusion import FusionSpec, fuse_legs, reciprocal_rank_fusion

CANDIDATES = 50
BACKENDS = ("embedded", "milvus")
WARMUP = 10
LEGS = ("bm25", "dense", "fused", "fused-rrf")
PRODUCT_FUSION = FusionSpec(DEFAULT_FUSION, DEFAULT_WEIGHTS["bm25"], DEFAULT_WEIGHTS["dense"], DEFAULT_RRF_K)
console = Console(width=None if sys.stdout.isatty() else 160)


@contextlib.contextmanager
def milvus_server(base: Path) -> Iterator[str]:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    cmd = shutil.which("milvus-lite") or str(Path(sys.executable).parent / "milvus-lite")
    log = (base / "milvus.log").open("wb")
    proc = subprocess.Popen([cmd, "server", "--data-dir", str(base / "milvus"), "--host", "127.0.0.1",
                             "--port", str(port)], stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("milvus-lite server did not start") from None
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


@contextlib.contextmanager
def backend(kind: str, uri: str) -> Iterator[None]:
    """Settings for one backend: ZHIWEN_MILVUS_URI set for Milvus, unset for the embedded one."""
    old = os.environ.pop("ZHIWEN_MILVUS_URI", None)
    if kind == "milvus":
        os.environ["ZHIWEN_MILVUS_URI"] = uri
    get_settings.cache_clear()
    try:
        yield
    finally:
        os.environ.pop("ZHIWEN_MILVUS_URI", None)
        if old is not None:
            os.environ["ZHIWEN_MILVUS_URI"] = old
        get_settings.cache_clear()


def cached(texts: list[str]) -> bool:
    embedder = get_embedder()
    assert isinstance(embedder, CachedEmbedder)
    found = 0
    for i in range(0, len(texts), 2000):
        found += len(embedder.lookup(texts[i : i + 2000]))
    return found == len(texts)


def check_counts(kb: KnowledgeBase, expected: int, what: str) -> int:
    """Refuse to measure unless the catalog and the backend both hold ``expected`` chunks (and, for the
    embedded backend, its BM25 index too): a Milvus row not yet visible would be missing from the legs."""
    found = {"catalog": len(kb.catalog.all_chunk_ids()), "backend": kb.backend.count()}
    index = getattr(kb.backend, "index", None)
    if index is not None:
        found["bm25 index"] = len(index().ids)
    if any(n != expected for n in found.values()):
        raise SystemExit(f"{what}: expected {expected} chunks, found {found}")
    return expected


def settle(kb: KnowledgeBase, timeout: float = 600.0) -> None:
    """Wait until Milvus has indexed every row (a search before that scans raw rows)."""
    if kb.backend.kind != "milvus":
        return
    client, name = kb.backend._client, kb.backend.collection  # type: ignore[attr-defined]
    deadline = time.monotonic() + timeout
    while True:
        infos = [client.describe_index(name, index) for index in client.list_indexes(name)]
        if all(i.get("state") == "Finished" and i.get("indexed_rows") == i.get("total_rows") for i in infos):
            return
        if time.monotonic() > deadline:
            raise SystemExit(f"Milvus did not finish indexing {name} in {timeout:.0f} s: {infos}")
        time.sleep(1)


def jieba_bm25(
    kb: KnowledgeBase, uri: str, queries: dict[str, str]
) -> tuple[dict[str, list[ScoredId]], float]:
    """The other tokenisation: Milvus's jieba analyzer over the raw chunk text (BM25 leg only)."""
    from pymilvus import DataType, Function, FunctionType, MilvusClient

    client = MilvusClient(uri=uri)
    name = "bench_jieba_" + kb.path.name.replace("-", "_")[:60]
    if client.has_collection(name):
        client.drop_collection(name)
    schema = client.create_schema(auto_id=False)
    schema.add_field("id", DataType.VARCHAR, is_primary=True, max_length=256)
    schema.add_field("text", DataType.VARCHAR, max_length=65535, enable_analyzer=True,
                     analyzer_params={"tokenizer": {"type": "jieba", "mode": "search"}})  # fmt: skip
    schema.add_field("sparse", DataType.SPARSE_FLOAT_VECTOR)
    schema.add_function(Function(name="bm25", function_type=FunctionType.BM25, input_field_names=["text"],
                                 output_field_names=["sparse"]))  # fmt: skip
    index = client.prepare_index_params()
    index.add_index("sparse", index_type="SPARSE_INVERTED_INDEX", metric_type="BM25",
                    params={"bm25_k1": 1.2, "bm25_b": 0.75})  # fmt: skip
    client.create_collection(name, schema=schema, index_params=index, consistency_level="Strong")
    rows = kb.catalog.chunks(sorted(kb.catalog.all_chunk_ids()))
    t0 = time.perf_counter()
    items = [{"id": cid, "text": row.text[:20000]} for cid, row in rows.items()]
    for i in range(0, len(items), 1000):
        client.insert(name, items[i : i + 1000])
    client.flush(name)  # sealed: Milvus Lite searches unsealed rows slowly (see MilvusBackend.committed)
    ingest_s = time.perf_counter() - t0
    count = client.query(name, filter="", output_fields=["count(*)"])[0]["count(*)"]
    if count != len(items):
        raise SystemExit(f"jieba collection: expected {len(items)} rows, found {count}")
    legs: dict[str, list[ScoredId]] = {}
    for qid, q in tqdm(queries.items(), desc="jieba BM25", leave=False, dynamic_ncols=True):
        res = client.search(name, data=[q], anns_field="sparse", limit=CANDIDATES,
                            search_params={"metric_type": "BM25"}, output_fields=["id"])  # fmt: skip
        hits = [h for h in res[0] if h["distance"] != 0]
        legs[qid] = [ScoredId(str(h["id"]), abs(float(h["distance"])), r) for r, h in enumerate(hits, 1)]
    client.drop_collection(name)
    client.close()
    return legs, ingest_s


def run_quality(
    name: str, root: Path, tmp: Path, uri: str, max_queries: int, bm25_only: bool
) -> dict[str, Any]:
    """Both backends on one set; without every passage vector cached, pending, or (``bm25_only``) the BM25
    legs alone over random passage vectors."""
    console.rule(f"quality: {name}")
    ds = load_beir(root, name)
    docs = load_path(ds.corpus)
    texts = [c.text for d in docs for c in chunk_document(d)]
    qids = list(ds.queries)[: max_queries or None]
    out: dict[str, Any] = {"documents": len(docs), "chunks": len(texts), "queries": len(qids)}
    embedder: Any = get_embedder()
    dense = cached(texts)
    if not dense:
        if not bm25_only:
            console.print(f"{name}: passages not all in the embedding cache yet: pending")
            return {"pending": "passage embeddings not all cached"}
        console.print(f"{name}: passages not all cached: BM25 legs only (random passage vectors)")
        embedder = NullEmbedder()
        out["pending"] = "dense and fused: passage embeddings not all cached; BM25 legs over random vectors"
    qvecs = (
        {q: embedder.embed_query(ds.queries[q]) for q in tqdm(qids, desc="query vectors", leave=False)}
        if dense
        else {}
    )
    runs: dict[str, dict[str, list[str]]] = {}
    for kind in BACKENDS:
        with backend(kind, uri):
            kb = KnowledgeBase.open(tmp / kind, name, embedder, create=True)
            t0 = time.perf_counter()
            ingest_documents(kb, docs, batch_chunks=512)
            ingest_s = time.perf_counter() - t0
            check_counts(kb, len(texts), f"{name} {kind}")
            t0 = time.perf_counter()
            settle(kb)
            settle_s = time.perf_counter() - t0
            cmap = chunk_doc_map(kb)
            legs = {"bm25": {}, "dense": {}}  # type: dict[str, dict[str, list[ScoredId]]]
            times: dict[str, list[float]] = {"bm25": [], "dense": []}
            for qid in tqdm(qids, desc=f"{name} {kind}", leave=False, dynamic_ncols=True):
                t0 = time.perf_counter()
                legs["bm25"][qid] = kb.backend.bm25(kb.tokens(ds.queries[qid]), CANDIDATES)
                t1 = time.perf_counter()
                legs["dense"][qid] = kb.backend.dense(qvecs[qid], CANDIDATES) if dense else []
                times["bm25"].append(t1 - t0)
                times["dense"].append(time.perf_counter() - t1)
            runs[f"{kind}:bm25"] = {q: [h.id for h in legs["bm25"][q]] for q in qids}
            if dense:
                runs[f"{kind}:dense"] = {q: [h.id for h in legs["dense"][q]] for q in qids}
                both = {q: {"bm25": legs["bm25"][q], "dense": legs["dense"][q]} for q in qids}
                runs[f"{kind}:fused"] = {
                    q: [cid for cid, _ in fuse_legs(both[q], PRODUCT_FUSION)] for q in qids
                }
                runs[f"{kind}:fused-rrf"] = {
                    q: [cid for cid, _ in reciprocal_rank_fusion(both[q], DEFAULT_WEIGHTS, DEFAULT_RRF_K)]
                    for q in qids
                }
            out[kind] = {
                "chunks_indexed": len(texts),
                "ingest_s": round(ingest_s, 1),
                "ingest_chunks_per_s": round(len(texts) / ingest_s, 1),
                "index_wait_s": round(settle_s, 1),  # after the ingest returned, until Milvus had indexed all
                "bm25_ms": percentiles(times["bm25"]),
                **({"dense_ms": percentiles(times["dense"])} if dense else {}),
            }
            if kind == "milvus":
                jb, jb_s = jieba_bm25(kb, uri, {q: ds.queries[q] for q in qids})
                runs["milvus-jieba:bm25"] = {q: [h.id for h in jb[q]] for q in qids}
                out["milvus-jieba"] = {"ingest_s": round(jb_s, 1)}
            kb.close()
    for key, run in runs.items():
        kind, leg = key.split(":")
        scores = [ndcg_at_k(to_docs(run[q], cmap, 10), ds.qrels[q], 10) for q in qids]
        out.setdefault(kind, {})[f"nDCG@10 {leg}"] = round(float(np.mean(scores)), 4)
    return out


def insert_synthetic(
    kb: KnowledgeBase, gen: SyntheticText, start: int, stop: int, rng: np.random.Generator
) -> float:
    """Add chunks ``start..stop`` to ``kb``'s backend and catalog; the seconds the backend took."""
    spent = 0.0
    for lo in range(start, stop, 2000):
        hi = min(lo + 2000, stop)
        batch: list[tuple[Document, Chunk, list[str]]] = []
        for i in range(lo, hi):
            text = gen.chunk()
            doc = Document(source=f"synthetic://{i}", text=text, doc_id=f"syn{i}", is_passage=True)
            cid = content_hash(f"{doc.id}:{doc.sha256}:0:{text}")[:32]
            meta = {"source": doc.source, "title": "", "start": 0, "end": len(text)}
            batch.append((doc, Chunk(cid, doc.id, text, 0, 0, len(text), meta), kb.tokens(text)))
        t0 = time.perf_counter()
        kb.backend.add([c.id for _, c, _ in batch], [d.id for d, _, _ in batch], [t for _, _, t in batch],
                       unit_vectors(rng, len(batch)))  # fmt: skip
        spent += time.perf_counter() - t0
        with kb.catalog.transaction() as db:
            for doc, chunk, toks in batch:
                Catalog.put_document(db, doc, [chunk], [toks])
    t0 = time.perf_counter()
    kb.backend.committed()  # the embedded backend rebuilds its BM25 index here; Milvus flushes
    spent += time.perf_counter() - t0
    check_counts(kb, stop, f"synthetic {kb.backend.kind}")
    t0 = time.perf_counter()
    settle(kb)
    return spent + time.perf_counter() - t0


def run_latency(root: Path, tmp: Path, uri: str, scales: list[int], n_queries: int) -> dict[str, Any]:
    console.rule("latency")
    queries = latency_queries(root, n_queries, 7)
    embedder = get_embedder()
    qvecs = {q: embedder.embed_query(q) for q in tqdm(queries, desc="query vectors", leave=False)}
    out: dict[str, Any] = {"queries": len(queries)}
    for kind in BACKENDS:
        with backend(kind, uri):
            kb = KnowledgeBase.open(tmp / f"latency-{kind}", "latency", embedder, create=True)
            gen, rng, have = SyntheticText(root, 7), np.random.default_rng(7), 0
            for scale in sorted(scales):
                add_s = insert_synthetic(kb, gen, have, scale, rng)
                added, have = scale - have, scale
                for q in queries[:WARMUP]:  # untimed: first searches load indexes and caches
                    kb.backend.bm25(kb.tokens(q), CANDIDATES)
                    kb.backend.dense(qvecs[q], CANDIDATES)
                times: dict[str, list[float]] = {"bm25": [], "dense": []}
                for q in tqdm(queries, desc=f"{kind} {scale}", leave=False, dynamic_ncols=True):
                    t0 = time.perf_counter()
                    kb.backend.bm25(kb.tokens(q), CANDIDATES)
                    t1 = time.perf_counter()
                    kb.backend.dense(qvecs[q], CANDIDATES)
                    times["bm25"].append(t1 - t0)
                    times["dense"].append(time.perf_counter() - t1)
                row = {"chunks_indexed": scale, "add_chunks_per_s": round(added / add_s, 1),
                       "bm25": percentiles(times["bm25"]), "dense": percentiles(times["dense"]),
                       "loadavg_1m": round(os.getloadavg()[0], 2)}  # fmt: skip
                out.setdefault(kind, {})[str(scale)] = row
                console.print(f"{kind} {scale}: {json.dumps(row)}", markup=False)
            kb.close()
    return out


def table(results: dict[str, Any]) -> None:
    t = Table(title=f"Milvus backend beside the embedded one (nDCG@10; fused = {PRODUCT_FUSION.label})")
    for col in ("set", "backend", "BM25", "dense", "fused", "fused RRF", "ingest chunks/s"):
        t.add_column(col)
    for name, res in results["quality"].items():
        if "milvus" not in res:
            t.add_row(name, "pending", "", "", "", "", "")
            continue
        for kind in (*BACKENDS, "milvus-jieba"):
            r = res[kind]
            t.add_row(name, kind, *(str(r.get(f"nDCG@10 {leg}", "-")) for leg in LEGS),
                      str(r.get("ingest_chunks_per_s", "")))  # fmt: skip
        a, b = res["milvus"], res["embedded"]
        diffs = [f"{a[k] - b[k]:+.4f}" if k in a else "-" for k in (f"nDCG@10 {leg}" for leg in LEGS)]
        t.add_row(name, "milvus - embedded", *diffs, "")
    console.print(t)
    lat = Table(title="Latency on synthetic chunks (50 candidates per leg)")
    for col in ("backend", "chunks", "BM25 p50/p95", "dense p50/p95", "add chunks/s", "load 1m"):
        lat.add_column(col)
    for kind in BACKENDS:
        for scale, row in results.get("latency", {}).get(kind, {}).items():
            b, d = row["bm25"], row["dense"]
            lat.add_row(kind, scale, f"{b['p50_ms']:.1f}/{b['p95_ms']:.1f}", f"{d['p50_ms']:.1f}/{d['p95_ms']:.1f}",
                        str(row["add_chunks_per_s"]), str(row.get("loadavg_1m", "")))  # fmt: skip
    console.print(lat)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sets", nargs="*", default=["rgb-zh", "scifact"], help="none: no quality part")
    parser.add_argument("--scales", nargs="*", type=int, default=[10_000], help="none: no latency part")
    parser.add_argument("--latency-queries", type=int, default=200)
    parser.add_argument("--max-queries", type=int, default=0)
    parser.add_argument(
        "--bm25-only", action="store_true", help="a set not fully cached: its BM25 legs alone, not pending"
    )
    parser.add_argument("--out", type=Path, help="default: benchmarks/results/milvus-<today>.json")
    args = parser.parse_args()
    root = datasets_root()
    today = dt.date.today().isoformat()
    out = args.out or Path(__file__).parent / "results" / f"milvus-{today}.json"
    quality: dict[str, Any] = {}
    latency: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="zhiwen-milvus-bench-") as tmp, milvus_server(Path(tmp)) as uri:
        for name in args.sets:
            res = run_quality(name, root, Path(tmp), uri, args.max_queries, args.bm25_only)
            res["loadavg_1m"] = round(os.getloadavg()[0], 2)
            res["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
            quality[name] = res
        if args.scales:
            latency = run_latency(root, Path(tmp), uri, args.scales, args.latency_queries)
            latency["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    # Read at the end, not the start: parts run again (or at once) replace only their own figures (a set, or a
    # backend at a scale); the others are kept.
    results: dict[str, Any] = json.loads(out.read_text(encoding="utf-8")) if out.exists() else {}
    results.setdefault("date", today)
    results.update({"cores": os.cpu_count(), "fusion": PRODUCT_FUSION.label})
    results.setdefault("quality", {}).update(quality)
    if latency:
        old = results.setdefault("latency", {})
        for key, value in latency.items():
            if key in BACKENDS:
                old.setdefault(key, {}).update(value)
            else:
                old[key] = value
    out.write_text(json.dumps(results, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    table(results)
    console.print(f"written to {out}")


if __name__ == "__main__":
    main()
