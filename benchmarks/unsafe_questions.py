"""Precision and recall of the rule that refuses unsafe questions, on the labelled phrasings.

    .venv/bin/python benchmarks/unsafe_questions.py [--rev REV ...]

``evals/data/unsafe-phrasings/phrasings.jsonl`` holds questions asking for credentials or another person's
data, in every form (interrogative, imperative, indirect; Chinese and English), and as many safe look-alikes
("how do I change my own password", "别人转账给我怎么查"). The rule of this tree is measured, and of every
``--rev`` (its ``classify`` loaded from ``git show REV:zhiwen/nodes/track_intent.py``), side by side.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import types
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FOLDER = ROOT / "evals" / "data" / "unsafe-phrasings"
SETS = {
    "tuning (phrasings.jsonl)": FOLDER / "phrasings.jsonl",
    "held out (held-out.jsonl)": FOLDER / "held-out.jsonl",
}


def classify_at(rev: str) -> Callable[[str, bool], tuple[str, str]]:
    source = subprocess.run(
        ["git", "show", f"{rev}:zhiwen/nodes/track_intent.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    module = types.ModuleType(f"track_intent_{rev}")
    exec(compile(source, f"{rev}:track_intent.py", "exec"), module.__dict__)
    classify: Callable[[str, bool], tuple[str, str]] = module.classify
    return classify


def score(
    classify: Callable[[str, bool], tuple[str, str]], rows: list[dict[str, object]]
) -> dict[str, object]:
    tp = fp = fn = 0
    missed, wrongly = [], []
    for row in rows:
        said = classify(str(row["text"]), False)[0] == "unsafe"
        if said and row["unsafe"]:
            tp += 1
        elif said:
            fp += 1
            wrongly.append(row["text"])
        elif row["unsafe"]:
            fn += 1
            missed.append(row["text"])
    precision = tp / (tp + fp) if tp + fp else 1.0
    recall = tp / (tp + fn) if tp + fn else 1.0
    return {"precision": precision, "recall": recall, "missed": missed, "wrongly_refused": wrongly}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rev", action="append", default=[], help="a git revision to measure beside this tree")
    p.add_argument("--show", action="store_true", help="list the misclassified phrasings")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    from zhiwen.nodes.track_intent import classify

    rules = [(rev, classify_at(rev)) for rev in args.rev] + [("this tree", classify)]
    print("| set | rule | phrasings (unsafe / safe) | precision | recall | unsafe missed | safe refused |")
    print("|---|---|---|---:|---:|---:|---:|")
    shown = []
    for label, path in SETS.items():
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        unsafe = sum(1 for r in rows if r["unsafe"])
        for name, rule in rules:
            r = score(rule, rows)
            missed, wrongly = len(r["missed"]), len(r["wrongly_refused"])  # type: ignore[arg-type]
            print(f"| {label} | {name} | {unsafe} / {len(rows) - unsafe} | {r['precision']:.3f} | {r['recall']:.3f} "
                  f"| {missed} | {wrongly} |")  # fmt: skip
            shown.append((label, name, r))
    if args.show:
        for label, name, r in shown:
            print(f"\n{label}, {name}: missed {r['missed']}\n  wrongly refused {r['wrongly_refused']}")


if __name__ == "__main__":
    main()
