#!/usr/bin/env python
"""What the figure-on-topic check would refuse among answers the gate passed, replayed on eval records.

    ZHIWEN_DATASETS=../shared/datasets .venv/bin/python benchmarks/figure_check.py
    .venv/bin/python benchmarks/figure_check.py --records evals/baselines/records --thresholds 0.3 0.5

For every passed answer of a suite's records (evals/baselines/records/<suite>/records/<config>.jsonl), the
answer's own figures are checked by ``zhiwen.tools.anchors.figures_on_topic`` against the full passages the
turn was shown (the records keep them cut at 300 characters; the dataset's corpus has them whole), at each
share of the question's topic terms. Counted: right answers (containment 1) it would refuse, wrong ones,
and negatives' answers. No model runs: a refused first attempt would have been retried, so a live run can
differ; ``zhiwen eval`` measures that.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from _common import replay_cli  # benchmarks/ is sys.path[0] when run as a script

from zhiwen.tools.anchors import figures_on_topic


def replay(records: list[dict[str, Any]], corpus: dict[str, str], threshold: float) -> dict[str, int]:
    """Counts of passed answers the check refuses at ``threshold``: right, wrong, negatives; and checked."""
    out = {"passed": 0, "checked": 0, "right refused": 0, "wrong refused": 0, "negatives refused": 0}
    for r in records:
        if r["refused"] or r["verdict"] != "pass":
            continue
        out["passed"] += 1
        sources = [corpus.get(s["doc_id"], s["text"]) for s in r["sources"]]
        verdict = figures_on_topic(r["question"], r["answer"], sources, share=threshold)
        if verdict is None:
            continue
        out["checked"] += 1
        if not verdict:
            key = "negatives" if r["negative"] else ("right" if r["containment"] else "wrong")
            out[f"{key} refused"] += 1
    return out


def main(argv: Sequence[str] | None = None) -> int:
    return replay_cli(
        argv, __doc__ or "", [0.3, 0.4, 0.5], "topic-term shares",
        lambda _suite, records, corpus, t: replay(records, corpus, t),
        lambda r: f"passed {r['passed']:>5}  with figures {r['checked']:>4}  refused: right "
        f"{r['right refused']:>3}  wrong {r['wrong refused']:>3}  negatives {r['negatives refused']:>2}",
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
