#!/usr/bin/env python
"""Questions in one language about documents in the other: hybrid retrieval with and without telling the fusion
that BM25 cannot see across languages (``zhiwen.tools.fusion.fuse_legs``'s ``blind``).

    ZHIWEN_DATASETS=../shared/datasets .venv/bin/python benchmarks/cross_lingual.py
    ZHIWEN_DATASETS=../shared/datasets .venv/bin/python benchmarks/cross_lingual.py --sets xquad-en cmrc2018-dev

The bilingual knowledge base is XQuAD's parallel corpus mixed: the passages of even-numbered articles in
English, of odd-numbered ones in Chinese (240 passages, each in one language only, titles left out as a file
of the other language would not share them), asked all 1,190 questions in English and all 1,190 in Chinese.
Half of each language's questions are about a passage in the other language. Each query's two legs are fetched
as ``KnowledgeBase.search`` fetches them, and fused with the product's default fusion twice: as before (a
document BM25 did not return counts as its lowest score) and with the dense leg's other-language chunks
scored by the dense leg alone. Reported: recall@2 (the turn's default ``top_k``) and nDCG@10 on documents,
for cross-language and same-language questions, beside each leg alone. ``--sets`` also runs the shared
one-language sets, where the change should do nothing, to show it does nothing.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import sys
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from _metrics import ndcg_at_k  # benchmarks/ is sys.path[0] when run as a script
from retrieval import load_beir, to_docs
from rich.console import Console
from rich.table import Table
from tqdm import tqdm

from zhiwen.evals.suite import datasets_root
from zhiwen.memory.documents import Document
from zhiwen.memory.ingest import ingest_documents
from zhiwen.memory.kb import DEFAULT_FUSION, DEFAULT_RRF_K, DEFAULT_WEIGHTS, KnowledgeBase
from zhiwen.memory.loaders import load_path
from zhiwen.memory.registry import get_embedder
from zhiwen.tools.fusion import FusionSpec, fuse_legs

CANDIDATES = 50  # KnowledgeBase.search's fetch per leg
console = Console(width=None if sys.stdout.isatty() else 160)
SPEC = FusionSpec(DEFAULT_FUSION, DEFAULT_WEIGHTS["bm25"], DEFAULT_WEIGHTS["dense"], DEFAULT_RRF_K)


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def mixed_xquad(
    root: Path,
) -> tuple[list[Document], dict[str, str], dict[str, dict[str, int]], dict[str, str]]:
    """The mixed corpus, the queries of both languages (ids suffixed ``:en``/``:zh``), their qrels, and each
    passage's language."""
    docs, language = [], {}
    texts = {
        lang: {d["_id"]: d["text"] for d in _jsonl(root / f"xquad-{lang}" / "corpus.jsonl")}
        for lang in ("en", "zh")
    }
    for pid in texts["en"]:
        lang = "en" if int(pid.split("-")[0]) % 2 == 0 else "zh"
        language[pid] = lang
        docs.append(
            Document(source=f"xquad-mixed.jsonl#{pid}", text=texts[lang][pid], doc_id=pid, is_passage=True)
        )
    queries: dict[str, str] = {}
    qrels: dict[str, dict[str, int]] = {}
    for lang in ("en", "zh"):
        beir = load_beir(root, f"xquad-{lang}")
        for qid, text in beir.queries.items():
            queries[f"{qid}:{lang}"] = text
            qrels[f"{qid}:{lang}"] = beir.qrels[qid]
    return docs, queries, qrels, language


def run_set(name: str, docs: list[Document], queries: dict[str, str], qrels: dict[str, dict[str, int]],
            kind: Callable[[str], str]) -> dict[str, dict[str, dict[str, float]]]:  # fmt: skip
    """Per query group (``kind(qid)``) and ranking: mean recall@2 and nDCG@10 on documents."""
    rows: dict[str, dict[str, list[tuple[float, float]]]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        kb = KnowledgeBase.open(Path(tmp), "x", get_embedder(), create=True)
        ingest_documents(kb, docs, batch_chunks=256)
        chunk_doc = {
            cid: row.doc_id for cid, row in kb.catalog.chunks(sorted(kb.catalog.all_chunk_ids())).items()
        }
        for qid, text in tqdm(queries.items(), desc=name, dynamic_ncols=True):
            legs = {
                "bm25": kb.backend.bm25(kb.tokens(text), CANDIDATES),
                "dense": kb.backend.dense(kb.embedder.embed_query(text), CANDIDATES),
            }
            rankings = {
                "bm25": [h.id for h in legs["bm25"]],
                "dense": [h.id for h in legs["dense"]],
                "hybrid before": [cid for cid, _ in fuse_legs(legs, SPEC)],
                "hybrid now": [cid for cid, _ in fuse_legs(legs, SPEC, kb._blind(text, legs))],
            }
            for label, chunks in rankings.items():
                ranked = to_docs(chunks, chunk_doc, 10)
                gold = qrels[qid]
                recall2 = float(any(d in gold for d in ranked[:2]))
                rows.setdefault(kind(qid), {}).setdefault(label, []).append(
                    (recall2, ndcg_at_k(ranked, gold, 10))
                )
        kb.close()
    return {
        group: {
            label: {
                "queries": len(v),
                "recall@2": statistics.fmean(r for r, _ in v),
                "ndcg@10": statistics.fmean(n for _, n in v),
            }
            for label, v in by_label.items()
        }
        for group, by_label in rows.items()
    }


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--sets", nargs="*", default=[], help="one-language sets to run too (under ZHIWEN_DATASETS)"
    )
    ap.add_argument(
        "--max-queries", type=int, default=0, help="first N queries of each one-language set (0: all)"
    )
    ap.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = ap.parse_args(argv)
    root = datasets_root()
    needed = ["xquad-en", "xquad-zh", *args.sets]
    missing = [s for s in needed if not (root / s / "corpus.jsonl").exists()]
    if missing:
        print(
            f"cross_lingual: no dataset {', '.join(missing)} under {root} (set ZHIWEN_DATASETS)",
            file=sys.stderr,
        )
        return 2
    docs, queries, qrels, language = mixed_xquad(root)

    def crossing(qid: str) -> str:
        asked = qid.rsplit(":", 1)[1]
        held = {language[d] for d in qrels[qid]}
        return f"{asked} question, {'other' if asked not in held else 'same'}-language passage"

    results = {"xquad mixed en/zh": run_set("xquad mixed", docs, queries, qrels, crossing)}
    for name in args.sets:
        beir = load_beir(root, name)
        chosen = dict(list(beir.queries.items())[: args.max_queries or None])
        results[name] = run_set(
            name, load_path(root / name / "corpus.jsonl"), chosen, beir.qrels, lambda _: "all"
        )
    table = Table(title=f"Cross-language retrieval, {SPEC.label} (recall@2 / nDCG@10 on documents)")
    for column in ("set", "questions", "n", "bm25", "dense", "hybrid before", "hybrid now"):
        table.add_column(column, justify="left" if column in ("set", "questions") else "right")
    for name, groups in results.items():
        for group, by_label in sorted(groups.items()):
            cells = [
                f"{by_label[k]['recall@2']:.3f} / {by_label[k]['ndcg@10']:.3f}"
                for k in ("bm25", "dense", "hybrid before", "hybrid now")
            ]
            table.add_row(name, group, str(by_label["bm25"]["queries"]), *cells)
    console.print(table)
    if args.out:
        payload = {
            "date": dt.date.today().isoformat(),
            "fusion": SPEC.label,
            "embedder": get_embedder().name,
            "results": results,
        }
        args.out.write_text(json.dumps(payload, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        console.print(f"written: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
