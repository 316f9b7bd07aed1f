"""Cut the part of a BEIR dataset that a suite uses into a small dataset folder of its own.

    python scripts/slice_dataset.py evals/smoke-full.yaml evals/data/xquad-en-smoke

Writes the suite's questions (before negatives and the questions sharing their passages are left out, so the
same cut is made again from the slice), their qrels and answers, and the passages the suite ingests, in the
order it ingests them, followed by the negatives' removed gold passages. A suite pointed at the slice with
``corpus: full`` then ingests exactly the passages, in exactly the order, that it did from the whole set.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from zhiwen.evals.dataset import dataset_folder, load_eval_set
from zhiwen.evals.retrieval_metrics import read_qrels_tsv
from zhiwen.evals.suite import load_suite


def _rows(path: Path) -> dict[str, dict[str, object]]:
    with path.open(encoding="utf-8-sig") as f:
        return {str(r["_id"]): r for r in (json.loads(line) for line in f if line.strip())}


def _write(path: Path, rows: list[dict[str, object]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("suite", help="suite YAML whose dataset and cut are sliced")
    p.add_argument("out", type=Path, help="folder to write the slice to (BEIR layout)")
    args = p.parse_args()
    suite = load_suite(args.suite)
    source = dataset_folder(suite)
    qrels = read_qrels_tsv((source / "qrels" / "test.tsv").read_text(encoding="utf-8-sig").splitlines())
    queries = [
        q for q in _rows(source / "queries.jsonl").values() if any(qrels.get(str(q["_id"]), {}).values())
    ]
    chosen = queries[: suite.questions] if suite.questions else queries
    ids = [str(q["_id"]) for q in chosen]
    ingested = [d.id for d in load_eval_set(suite).documents]
    removed = list(dict.fromkeys(d for qid in ids for d in qrels[qid] if d not in ingested))
    corpus = _rows(source / "corpus.jsonl")
    _write(args.out / "corpus.jsonl", [corpus[d] for d in [*ingested, *removed]])
    _write(args.out / "queries.jsonl", chosen)
    answers = _rows(source / "answers.jsonl") if (source / "answers.jsonl").exists() else {}
    _write(args.out / "answers.jsonl", [answers[q] for q in ids if q in answers])
    lines = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t{s}" for q in ids for d, s in qrels[q].items())]
    (args.out / "qrels").mkdir(parents=True, exist_ok=True)
    (args.out / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print(f"{args.out}: {len(chosen)} questions, {len(ingested)} passages ingested, {len(removed)} removed")


if __name__ == "__main__":
    main()
