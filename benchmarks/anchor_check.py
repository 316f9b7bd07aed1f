#!/usr/bin/env python
"""How often the quality gate's anchor check would refuse a correct answer (no model needed).

    .venv/bin/python benchmarks/anchor_check.py                 # rgb-zh
    .venv/bin/python benchmarks/anchor_check.py --datasets rgb-zh xquad-zh

For every question whose gold passages hold a gold answer literally, the answer is phrased the way a model
restates it ("<question>: <answer>.") and checked against the gold passages alone. A question without
numbers or codes is not checked by the gate; the share of checked questions that pass is the upper bound
of what the check costs on answerable questions (a model's own phrasing can differ). What it catches on
negatives needs a model's answers: see the ``rgb-zh-quick`` eval suite.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zhiwen.evals.suite import datasets_root
from zhiwen.tools.anchors import anchored


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def _aliases(answer: Any) -> list[str]:
    return [a for a in answer if isinstance(a, str)] if isinstance(answer, list) else [str(answer)]


def measure(root: Path) -> dict[str, Any]:
    corpus = {d["_id"]: f"{d.get('title', '')} {d['text']}".strip() for d in _jsonl(root / "corpus.jsonl")}
    queries = {d["_id"]: d["text"] for d in _jsonl(root / "queries.jsonl")}
    answers = {d["_id"]: d["answers"] for d in _jsonl(root / "answers.jsonl")}
    gold: dict[str, list[str]] = defaultdict(list)
    for line in (root / "qrels" / "test.tsv").read_text().splitlines()[1:]:
        qid, cid, score = line.split("\t")
        if int(score) > 0:
            gold[qid].append(cid)
    usable = checked = passed = 0
    refused: list[tuple[str, str]] = []
    for qid, question in queries.items():
        sources = [corpus[c] for c in gold.get(qid, []) if c in corpus]
        alias = next(
            (a for slot in answers.get(qid, []) for a in _aliases(slot) if any(a in s for s in sources)), None
        )
        if alias is None:
            continue
        usable += 1
        verdict = anchored(question, f"{question}：{alias}。", sources)
        if verdict is None:
            continue
        checked += 1
        passed += verdict
        if not verdict:
            refused.append((question, alias))
    return {
        "questions": len(queries),
        "gold_holds_answer": usable,
        "checked": checked,
        "passed": passed,
        "pass_rate": round(passed / checked, 4) if checked else None,
        "refused_examples": refused[:10],
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--datasets", nargs="+", default=["rgb-zh"], help="sets under --data-root")
    p.add_argument(
        "--data-root",
        type=Path,
        default=None,
        help="BEIR sets folder (default: ZHIWEN_DATASETS, else $ZHIWEN_HOME/datasets)",
    )
    args = p.parse_args(argv)
    args.data_root = args.data_root or datasets_root()
    for name in args.datasets:
        r = measure(args.data_root / name)
        print(
            f"{name}: {r['questions']} questions, {r['gold_holds_answer']} with the answer in a gold passage, "
            f"{r['checked']} checked by the anchor rule, {r['passed']} pass ({r['pass_rate']:.1%})"
            if r["checked"]
            else f"{name}: no question has numbers or codes to check"
        )
        for question, alias in r["refused_examples"]:
            print(f"  would refuse: {question} -> {alias}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
