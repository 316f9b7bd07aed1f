"""Reports of a run: summary.json, a Markdown table, and an offline HTML page with embedded plots."""

from __future__ import annotations

import base64
import json
import re
import sys
from pathlib import Path
from typing import Any

import pytest

from zhiwen.evals.report import false_refusal_reasons, markdown, write_reports

SUMMARY: dict[str, dict[str, Any]] = {
    "hybrid": {
        "questions": 3, "negatives": 1, "errors": 0, "ndcg@10": 0.9, "recall@10": 1.0, "mrr@10": 0.8333,
        "em": 0.5, "f1": 0.6667, "containment": 1.0, "correct_refusal": 1.0, "false_refusal": 0.0,
        "grounded": 0.75, "citations_valid": 1.0, "think_leaks": 0, "latency_p50_s": 1.2, "ttft_p50_s": None,
    },
    "bm25": {
        "questions": 3, "negatives": 1, "errors": 0, "ndcg@10": 0.7, "recall@10": 0.5, "mrr@10": 0.5,
        "em": 0.0, "f1": 0.25, "containment": 0.5, "correct_refusal": 0.0, "false_refusal": 0.5,
        "grounded": 0.5, "citations_valid": 0.5, "think_leaks": 1, "latency_p50_s": 0.8, "ttft_p50_s": 0.3,
    },
}  # fmt: skip


def record(qid: str, **fields: Any) -> dict[str, Any]:
    base = {
        "id": qid, "question": f"question {qid}", "gold": ["gold"], "negative": False, "answer": "gold",
        "refused": False, "f1": 1.0, "verdict": "pass", "total_s": 1.0, "sources": [],
    }  # fmt: skip
    return base | fields


RECORDS: dict[str, list[dict[str, Any]]] = {
    "hybrid": [
        record("q1", total_s=1.2),
        record("q2", total_s=1.5, f1=0.1, answer="wrong <i>answer</i>", question="Who is <b>bold</b>?",
               sources=[{"n": 1, "doc_id": "d<1>", "text": "a passage about <script>x</script>"}]),
        record("q3", negative=True, refused=True, answer="The sources do not say."),
    ],
    "bm25": [
        record("q1", total_s=0.5),
        record("q2", total_s=0.8, f1=0.0, answer="nothing", reasons=["only 0% of sentences <supported>"],
               draft="a <draft> the gate refused", refused=True),
        record("q3", negative=True, refused=False, answer="A made-up answer.", question="Trap question?"),
    ],
}  # fmt: skip


@pytest.fixture
def written(tmp_path: Path) -> dict[str, Path]:
    failures = ["bm25: ndcg@10 = 0.7 is below the floor 0.8"]
    return write_reports(tmp_path, "tiny", SUMMARY, RECORDS, failures)


def test_paths(written: dict[str, Path], tmp_path: Path) -> None:
    assert written == {
        "json": tmp_path / "summary.json",
        "markdown": tmp_path / "summary.md",
        "html": tmp_path / "report.html",
    }
    assert all(p.is_file() for p in written.values())


def test_summary_json(written: dict[str, Path]) -> None:
    data = json.loads(written["json"].read_text(encoding="utf-8"))
    assert data["suite"] == "tiny"
    assert data["configurations"] == SUMMARY
    assert data["failures"] == ["bm25: ndcg@10 = 0.7 is below the floor 0.8"]


def test_summary_markdown_table(written: dict[str, Path]) -> None:
    md = written["markdown"].read_text(encoding="utf-8")
    lines = md.splitlines()
    assert lines[0] == "### zhiwen eval: tiny"
    header = next(line for line in lines if line.startswith("| configuration |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    assert columns[:4] == ["configuration", "ndcg@10", "recall@10", "mrr@10"]
    assert "think_leaks" in columns and "ttft_p50_s" in columns
    separator = lines[lines.index(header) + 1]
    assert separator == "|---|" + "---|" * (len(columns) - 1)
    rows = {row.split("|")[1].strip(): [c.strip() for c in row.strip("|").split("|")]
            for row in lines if row.startswith("| hybrid") or row.startswith("| bm25")}  # fmt: skip
    assert set(rows) == {"hybrid", "bm25"}
    hybrid = dict(zip(columns, rows["hybrid"], strict=True))
    assert hybrid["ndcg@10"] == "0.900"
    assert hybrid["mrr@10"] == "0.833"
    assert hybrid["think_leaks"] == "0"  # integers unformatted
    assert hybrid["ttft_p50_s"] == "–"  # missing value
    assert dict(zip(columns, rows["bm25"], strict=True))["think_leaks"] == "1"
    assert "- ❌ bm25: ndcg@10 = 0.7 is below the floor 0.8" in lines


def test_markdown_without_failures_and_drops_empty_columns() -> None:
    md = markdown("tiny", {"dense": {"ndcg@10": 0.5, "em": None}}, [])
    assert "| configuration | ndcg@10 |" in md
    assert "em" not in md.split("\n")[2]
    assert "- ✅ every metric is within its recorded floors and ceilings" in md


def test_html_report_is_offline_with_embedded_png_plots(written: dict[str, Path]) -> None:
    page = written["html"].read_text(encoding="utf-8")
    assert page.startswith("<!doctype html>")
    assert not re.search(r"https?://", page), "the report must not load anything from the network"
    images = re.findall(r'<img alt="plot" src="data:image/png;base64,([A-Za-z0-9+/=]+)">', page)
    assert len(images) == 2  # metrics by configuration, turn latency
    for data in images:
        assert base64.b64decode(data).startswith(b"\x89PNG\r\n\x1a\n")
    assert "<th>ndcg@10</th>" in page
    assert "bm25: ndcg@10 = 0.7 is below the floor 0.8" in page


def test_html_report_lists_failures_escaped(written: dict[str, Path]) -> None:
    page = written["html"].read_text(encoding="utf-8")
    # q2 (low F1) in both configurations, and bm25's q3 (a negative that was answered)
    assert page.count("<details>") == 3
    assert "Who is &lt;b&gt;bold&lt;/b&gt;?" in page
    assert "wrong &lt;i&gt;answer&lt;/i&gt;" in page
    assert "<code>d&lt;1&gt;</code>" in page
    assert "<script>" not in page
    assert "Trap question?" in page
    assert "question q1" not in page  # correct answers are not failures
    assert "<b>gate</b>: only 0% of sentences &lt;supported&gt;" in page  # why the quality gate acted
    assert page.count("<b>gate</b>") == 1  # records without reasons show none
    assert "<b>refused draft</b>: a &lt;draft&gt; the gate refused" in page


def test_html_report_without_answers(tmp_path: Path) -> None:
    summary = {"dense": {"questions": 2, "ndcg@10": 0.5, "recall@10": 1.0, "mrr@10": 0.5}}
    records = {"dense": [{"id": "q1", "question": "q", "ndcg@10": 0.5}]}
    paths = write_reports(tmp_path, "retrieval", summary, records, [])
    page = paths["html"].read_text(encoding="utf-8")
    assert page.count('<img alt="plot"') == 1  # metrics only: no latency without answers
    assert "<p>No failures.</p>" in page
    assert not re.search(r"https?://", page)


def test_html_report_without_matplotlib(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib -> ImportError
    paths = write_reports(tmp_path, "tiny", SUMMARY, RECORDS, [])
    page = paths["html"].read_text(encoding="utf-8")
    assert "<img" not in page
    assert "Plots need matplotlib" in page
    assert json.loads(paths["json"].read_text(encoding="utf-8"))["suite"] == "tiny"


def test_false_refusal_reasons_are_counted_per_configuration(written: dict[str, Path]) -> None:
    records = {
        "gate": [
            record("a", refused=True, reasons=["r1", "r2"]),
            record("b", refused=True, reasons=["r1"]),
            record("c", refused=True),  # made before records kept reasons
            record("d", refused=True, negative=True, reasons=["r3"]),  # a correct refusal: not counted
            record("e", reasons=[]),
        ],
        "none": [record("a")],
    }
    reasons = false_refusal_reasons(records)
    assert reasons == {"gate": {"r1": 2, "r2": 1, "(no reason recorded)": 1}}
    assert list(reasons["gate"]) == ["r1", "r2", "(no reason recorded)"]  # most frequent first

    md = written["markdown"].read_text(encoding="utf-8")
    assert "Why answerable questions were refused:\n- bm25: only 0% of sentences <supported> (1)\n" in md
    page = written["html"].read_text(encoding="utf-8")
    assert "<li>bm25: only 0% of sentences &lt;supported&gt; (1)</li>" in page
    saved = json.loads(written["json"].read_text(encoding="utf-8"))
    assert saved["false_refusal_reasons"] == {"bm25": {"only 0% of sentences <supported>": 1}}
    assert "Why answerable" not in markdown("x", SUMMARY, [], {})  # nothing refused: no section
