#!/usr/bin/env python
"""Which of the recorded quotes would the quote fall-back's "when" rule withhold? Replayed on eval records.

    .venv/bin/python benchmarks/quote_when.py
    .venv/bin/python benchmarks/quote_when.py --records evals/runs --out benchmarks/results/quote-when.json

A question that asks when ("硅谷银行破产时间", "When did ...?", ``quote.asks_when``) is quoted only with a sentence
that states a time (``quote.states_a_time``). For every turn a committed baseline answered with a quote
(verdict ``quote``), the quoted sentence is read back from the answer and checked; counted, right (containment
1) / wrong / negatives, are the quotes kept and withheld. A withheld quote becomes the refusal. No model runs,
and no corpus is needed: the records hold the quoted sentence whole.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from zhiwen.tools.quote import asks_when, states_a_time

# The quote as evaluate.py words it, in either language.
_QUOTED = re.compile(r"「(.*)」\[\d+\]|says: \"(.*)\" \[\d+\]", re.DOTALL)


def replay(records: list[dict[str, Any]]) -> dict[str, int]:
    """Quotes kept and withheld by the rule, by kind of question."""
    out = {f"{kind} {fate}": 0 for kind in ("right", "wrong", "negatives") for fate in ("kept", "withheld")}
    for r in records:
        if r.get("verdict") != "quote":
            continue
        m = _QUOTED.search(r["answer"])
        sentence = (m.group(1) or m.group(2)) if m else r["answer"]
        kind = "negatives" if r["negative"] else ("right" if r["containment"] >= 1 else "wrong")
        kept = not asks_when(r["question"]) or states_a_time(sentence, r["question"])
        out[f"{kind} {'kept' if kept else 'withheld'}"] += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    p.add_argument("--records", type=Path, default=Path("evals/baselines/records"), help="records folder")
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    for path in sorted(args.records.glob("*/records/*.jsonl")):
        records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        name = f"{path.parent.parent.name}/{path.stem}"
        results[name] = counts = replay(records)
        print(
            f"{name:<32} kept: right {counts['right kept']:>3}  wrong {counts['wrong kept']:>3}  negatives "
            f"{counts['negatives kept']:>2}   withheld: right {counts['right withheld']:>2}  wrong "
            f"{counts['wrong withheld']:>2}  negatives {counts['negatives withheld']:>2}"
        )
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
