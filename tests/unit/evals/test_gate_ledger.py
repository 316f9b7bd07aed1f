"""The quality gate's balance sheet: each final verdict counted against the gold answers."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from zhiwen.evals.report import markdown, write_reports
from zhiwen.evals.suite import Configuration, Suite
from zhiwen.evals.summary import LEDGER_COLUMNS, gate_ledger


def suite(language: str = "en", answer_style: str = "alternatives") -> Suite:
    return Suite(
        name="tiny", dataset="tiny", language=language, answer_style=answer_style,
        configurations=[Configuration(name="hybrid")],
    )  # fmt: skip


def turn(gold: Any, answer: str, refused: bool = False, **fields: Any) -> dict[str, Any]:
    return {"id": answer, "gold": gold, "negative": False, "answer": answer, "refused": refused} | fields


def test_each_verdict_lands_in_one_column() -> None:
    records = [
        turn(["Paris"], "It is Paris [1]."),  # answered, right (citation marks do not matter)
        turn(["Paris"], "It is Lyon [1]."),  # answered, wrong
        turn(
            ["1889"], "No answer.", refused=True, draft="Built in 1889 [1]."
        ),  # the gate withheld a right draft
        turn(["1889"], "No answer.", refused=True, draft="Built in 18890."),  # a number must appear whole
        turn(["1889"], "No answer.", refused=True),  # no draft kept
        turn([], "No answer.", refused=True, negative=True),
        turn([], "Made up.", negative=True),
        turn([], "Made up too.", negative=True),
        turn(
            ["Paris"],
            'The passage closest to your question says: "Paris is the capital." [1]',
            verdict="quote",
        ),
        turn(["Paris"], 'The passage closest to your question says: "Lyon is large." [1]', verdict="quote"),
        turn([], 'The passage closest to your question says: "Nearby." [2]', negative=True, verdict="quote"),
        {"id": "crashed", "gold": ["x"], "negative": False, "error": "timeout"},  # no turn: not counted
        {"id": "retrieval only", "gold": ["x"], "ndcg@10": 1.0},
    ]
    assert gate_ledger(records, suite()) == {
        "answered_right": 1, "answered_wrong": 1, "quoted_right": 1, "quoted_wrong": 1, "refused_draft_right": 1,
        "refused_draft_wrong": 1, "refused_no_draft": 1, "negatives_refused": 1, "negatives_answered": 2,
        "negatives_quoted": 1,
    }  # fmt: skip


def test_slot_answers_are_right_only_with_every_slot() -> None:
    gold = [["Germany", "Deutschland"], "France"]
    records = [
        turn(gold, "Deutschland and France."),
        turn(gold, "Germany alone."),
        turn(gold, "Refused.", refused=True, draft="France and Germany."),
    ]
    ledger = gate_ledger(records, suite(answer_style="slots"))
    assert (ledger["answered_right"], ledger["answered_wrong"], ledger["refused_draft_right"]) == (1, 1, 1)


def test_chinese_answers_are_normalised_before_matching() -> None:
    records = [
        turn(["三百元"], "年费为三百元，首年免收。"),
        turn(["三百元"], "无法回答。", refused=True, draft="年费是五百元"),
    ]
    ledger = gate_ledger(records, suite(language="zh"))
    assert (ledger["answered_right"], ledger["refused_draft_wrong"]) == (1, 1)


def test_reports_show_the_ledger_with_precision_when_answered(tmp_path: Path) -> None:
    ledgers = {
        "hybrid": dict(zip(LEDGER_COLUMNS, (6, 2, 2, 1, 1, 3, 0, 4, 1, 0), strict=True)),
        "no-answers": dict.fromkeys(LEDGER_COLUMNS, 0),  # a retrieval-only run: no row
    }
    summary = {"hybrid": {"containment": 0.5}, "no-answers": {"ndcg@10": 0.9}}
    paths = write_reports(tmp_path, "tiny", summary, {"hybrid": [], "no-answers": []}, [], ledgers)

    md = paths["markdown"].read_text(encoding="utf-8")
    header = next(line for line in md.splitlines() if line.startswith("| configuration | answered, right"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    row = next(line for line in md.splitlines() if line.startswith("| hybrid | 6 |"))
    cells = dict(zip(columns, [c.strip() for c in row.strip("|").split("|")], strict=True))
    assert cells["refused, draft was right"] == "1" and cells["refused, draft was wrong"] == "3"
    assert (
        cells["negatives answered"] == "1" and cells["quoted, right"] == "2" and cells["quoted, wrong"] == "1"
    )
    assert cells["right when answered"] == "0.750"  # 6 of 8 composed answers
    assert "| no-answers |" not in md.split("What each final verdict did")[1]

    page = paths["html"].read_text(encoding="utf-8")
    assert "<h2>What each final verdict did</h2>" in page and "<td>0.750</td>" in page
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["gate_ledger"] == ledgers


def test_no_ledger_no_table() -> None:
    assert "What each final verdict did" not in markdown("tiny", {"bm25": {"ndcg@10": 0.5}}, [])
    empty = {"bm25": dict.fromkeys(LEDGER_COLUMNS, 0)}
    assert "What each final verdict did" not in markdown("tiny", {"bm25": {"ndcg@10": 0.5}}, [], None, empty)
