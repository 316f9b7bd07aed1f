"""README's answer-quality table states the recorded baselines: it went stale as they were re-recorded."""

from __future__ import annotations

import json
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]
MARKER = "<!-- answer-quality: from evals/baselines/*.json, configuration hybrid -->"


def _rows() -> list[list[str]]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    table = text[text.index(MARKER) :].split("\n\n", 1)[0].splitlines()[3:]
    return [[cell.strip() for cell in line.strip("|").split("|")] for line in table]


def test_the_table_is_the_baselines() -> None:
    rows = _rows()
    assert len(rows) >= 7, rows
    for name, questions, containment, false_refusal, refused, leaks, p50 in rows:
        suite = name.strip("`")
        c = json.loads((ROOT / "evals" / "baselines" / f"{suite}.json").read_text())["configurations"][
            "hybrid"
        ]
        negatives = c["negatives"]
        assert questions.split(" (")[0] == f"{c['questions']:,}", suite
        assert containment == f"{c['containment']:.3f}", suite
        assert false_refusal == f"{c['false_refusal']:.3f}", suite
        assert refused == (
            f"{round(c['correct_refusal'] * negatives)} of {negatives}" if negatives else "-"
        ), suite
        assert int(leaks) == c["think_leaks"], suite
        assert re.fullmatch(r"[\d.]+ s", p50) and float(p50[:-2]) == round(c["latency_p50_s"], 1), suite
