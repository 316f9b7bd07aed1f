#!/usr/bin/env python
"""Two eval runs of one suite, paired question by question: what each turn became in each, and what moved.

    .venv/bin/python benchmarks/pair_runs.py rgb-zh A.jsonl B.jsonl
    .venv/bin/python benchmarks/pair_runs.py rgb-zh evals/baselines/records/rgb-zh/records/hybrid.jsonl \\
        evals/runs/rgb-zh-k3/records/k3.jsonl --list --out benchmarks/results/pair.json

A suite's summary says how many answers were right; two summaries a few points apart can hide dozens of
answers that changed both ways (a different prompt moves about a fifth of a 0.5B model's answers), or one
check that refuses what the other run passed. Paired, each answerable question is right (its answer holds
every gold slot), wrong, or refused in each run, and each negative refused or not; the flips between the
runs are counted, the answers that stayed word for word the same too, and ``--list`` prints every flip that
involves a right answer, with both runs' texts and the gate's reasons. Scored as ``zhiwen eval`` scores
today (``score_answer``), whatever code wrote the records, so runs of an older commit compare fairly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from _common import _jsonl  # benchmarks/ is sys.path[0] when run as a script

from zhiwen.evals.answer_metrics import score_answer
from zhiwen.evals.suite import load_suite


def _records(path: Path) -> dict[str, dict[str, Any]]:
    """The last record of each question (a resumed run may hold a failed turn and its re-run)."""
    return {str(record["id"]): record for record in _jsonl(path)}


def state(record: dict[str, Any], language: str, slots: bool) -> str:
    """right | wrong | refused (answerable), or refused | answered (negative)."""
    if record.get("negative"):
        return "refused" if record.get("refused") else "answered"
    if record.get("refused") or "answer" not in record:
        return "refused"
    held = score_answer(record["answer"], record["gold"], language, slots)["containment"]
    return "right" if held >= 1.0 else "wrong"


def pair(
    a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], language: str, slots: bool
) -> dict[str, Any]:
    """Counts per run, flips from A to B, and identical answers, over the questions both runs hold."""
    shared = [i for i in a if i in b]
    answerable = [i for i in shared if not a[i].get("negative")]
    negatives = [i for i in shared if a[i].get("negative")]
    result: dict[str, Any] = {
        "paired": len(shared),
        "answerable": len(answerable),
        "negatives": len(negatives),
    }
    states = {name: {i: state(run[i], language, slots) for i in shared} for name, run in (("A", a), ("B", b))}
    for name, of in states.items():
        counts = Counter(of[i] for i in answerable)
        result[name] = {
            "right": counts["right"],
            "wrong": counts["wrong"],
            "refused": counts["refused"],
            "negatives refused": sum(of[i] == "refused" for i in negatives),
        }
    flips = Counter(
        f"{states['A'][i]} -> {states['B'][i]}" for i in shared if states["A"][i] != states["B"][i]
    )
    result["flips (negatives: answered/refused)"] = dict(sorted(flips.items()))
    result["identical answers"] = sum(a[i].get("answer") == b[i].get("answer") for i in shared)
    return result


def _flip_lines(
    a: dict[str, dict[str, Any]], b: dict[str, dict[str, Any]], language: str, slots: bool
) -> list[str]:
    lines = []
    for i in (i for i in a if i in b and not a[i].get("negative")):
        sa, sb = state(a[i], language, slots), state(b[i], language, slots)
        if sa == sb or "right" not in (sa, sb):
            continue
        lines.append(
            f"{i}  {sa} -> {sb}  gold {json.dumps(a[i]['gold'], ensure_ascii=False)}  {a[i]['question']}"
        )
        for name, r in (("A", a[i]), ("B", b[i])):
            text = (
                r.get("answer", "")
                if not r.get("refused")
                else f"(refused: {'; '.join(r.get('reasons') or [])})"
            )
            lines.append(f"    {name}: {' '.join(str(text).split())[:160]}")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("suite", help="the suite both runs ran (its language and answer style score them)")
    p.add_argument("a", type=Path, help="run A's records (a .jsonl file)")
    p.add_argument("b", type=Path, help="run B's records")
    p.add_argument("--list", action="store_true", help="print every flip that involves a right answer")
    p.add_argument("--out", type=Path, help="write the counts as JSON here")
    args = p.parse_args(argv)
    for path in (args.a, args.b):
        if not path.is_file():
            print(f"pair_runs: no records file at {path}", file=sys.stderr)
            return 2
    spec = load_suite(args.suite)
    slots = spec.answer_style == "slots"
    a, b = _records(args.a), _records(args.b)
    result = pair(a, b, spec.language, slots)
    print(json.dumps(result, indent=2, ensure_ascii=False))
    if args.list:
        print("\n".join(_flip_lines(a, b, spec.language, slots)))
    if args.out:
        args.out.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
