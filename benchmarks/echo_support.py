#!/usr/bin/env python
"""Would counting only an answer's new words (those not in the question) in sentence support pass the right
drafts the gate withheld, and not the wrong ones? Replayed on eval records.

    ZHIWEN_DATASETS=../shared/datasets .venv/bin/python benchmarks/echo_support.py
    .venv/bin/python benchmarks/echo_support.py --thresholds 0.6 0.8 --out benchmarks/results/echo-support.json

The small model often restates the question before its answer ("The last name of the player who took the
ball away from Newton late in the fourth quarter was Miller."), and the question's wording is not the
passage's ("stripped the ball away"), so the sentence fails support although its answer, Miller, is
right. The variant replayed here scores each answer sentence on its words not in the question (a sentence
of question words only is unsupported); figures must still come from the sources. Only drafts withheld
for support alone are replayed (every reason "only k/n sentences supported"): the variant changes nothing
else. Counted: drafts it would pass that hold the gold answer (right), that do not (wrong), and
negatives. No model runs; a live run retries a withheld first draft, so it can differ.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Sequence
from typing import Any

from _common import replay_cli  # benchmarks/ is sys.path[0] when run as a script

from zhiwen.evals.answer_metrics import containment
from zhiwen.evals.suite import load_suite
from zhiwen.memory.chunking import split_sentences
from zhiwen.tools.figures import figures
from zhiwen.tools.grounding import text_terms

_CITED = re.compile(r"\s*\[\d{1,3}\]")


def passes_on_new_words(question: str, draft: str, sources: Sequence[str], threshold: float) -> bool:
    """Every answer sentence with content has ``threshold`` of its new words in one source, and its
    figures in the sources."""
    asked = text_terms(question)  # the terms zhiwen.tools.grounding counts support on
    source_terms = [text_terms(s) for s in sources]
    source_figures = set().union(*(figures(s, lenient=True) for s in sources))
    draft = _CITED.sub("", draft)  # "[1]" is neither a word nor a figure of the answer, as in grounding
    for a, b in split_sentences(draft):
        sentence = draft[a:b]
        terms = text_terms(sentence)
        if len(terms) < 2 and not figures(sentence):
            continue
        new = terms - asked
        if not new or max((len(new & st) / len(new) for st in source_terms), default=0.0) < threshold:
            return False
        if not figures(sentence) <= source_figures:
            return False
    return True


def replay(
    records: list[dict[str, Any]], corpus: dict[str, str], threshold: float, language: str, slots: bool
) -> dict[str, int]:
    """Counts over drafts withheld for support alone: replayed, and passed right / wrong / negative."""
    out = {"withheld for support": 0, "right passed": 0, "wrong passed": 0, "negatives passed": 0}
    for r in records:
        reasons = r.get("reasons") or []
        if not r["refused"] or not r.get("draft") or not reasons:
            continue
        if not all(x.startswith("only ") and "sentences supported" in x for x in reasons):
            continue
        out["withheld for support"] += 1
        sources = [corpus.get(s["doc_id"], s["text"]) for s in r["sources"]]
        if not passes_on_new_words(r["question"], r["draft"], sources, threshold):
            continue
        if r["negative"]:
            out["negatives passed"] += 1
        elif containment(r["draft"], r["gold"], language, slots) >= 1.0:
            out["right passed"] += 1
        else:
            out["wrong passed"] += 1
    return out


def _replay_suite(
    suite: str, records: list[dict[str, Any]], corpus: dict[str, str], t: float
) -> dict[str, int]:
    spec = load_suite(suite)
    return replay(records, corpus, t, spec.language, spec.answer_style == "slots")


def main(argv: Sequence[str] | None = None) -> int:
    return replay_cli(
        argv, __doc__ or "", [0.6, 0.8], "support thresholds", _replay_suite,
        lambda r: f"withheld for support {r['withheld for support']:>3}  would pass: right "
        f"{r['right passed']:>3}  wrong {r['wrong passed']:>3}  negatives {r['negatives passed']:>2}",
    )  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
