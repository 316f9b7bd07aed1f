"""Summarise per-question records into one row of metrics per configuration, and check floors."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path
from typing import Any

from zhiwen.evals.answer_metrics import score_answer
from zhiwen.evals.suite import Suite

__all__ = ["LEDGER_COLUMNS", "check_limits", "gate_ledger", "read_records", "rescore", "summarize"]

STAGES = ("intent", "retrieval", "generation", "evaluation")


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records of a run in file order, the last one of each question only (a rerun of a failed turn
    supersedes it); a line cut by an interruption is skipped."""
    by_id: dict[Any, dict[str, Any]] = {}
    # "\n" only: records are written with ensure_ascii=False, and splitlines() also breaks at U+2028,
    # U+2029 and \x85 inside a record's text, which lost the record and re-ran it on every resume.
    for n, line in enumerate(path.read_text(encoding="utf-8").split("\n")):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        key = record.get("id", n) if isinstance(record, dict) else n
        by_id.pop(key, None)  # re-inserted: a superseding record takes the place of the question's last run
        by_id[key] = record
    return list(by_id.values())


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _pct(values: list[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``q`` of the values at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[max(0, math.ceil(q * len(ordered)) - 1)], 3)


def rescore(records: list[dict[str, Any]], suite: Suite) -> list[dict[str, Any]]:
    """The records with EM, F1 and containment computed again from each stored answer.

    A run keeps the scores of the metric definitions it ran with; rescoring at summary time makes every
    stored run, however old, report today's definitions (a fixed metric needs no hours-long re-run).
    """
    slots = suite.answer_style == "slots"
    return [
        r | score_answer(r["answer"], r["gold"], suite.language, slots)
        if "answer" in r and r.get("gold") and not r.get("negative")
        else r
        for r in records
    ]


def summarize(records: list[dict[str, Any]], suite: Suite) -> dict[str, Any]:
    """Metric means (retrieval over answerable questions), refusal rates, leaks, latency p50/p95."""
    answerable = [r for r in records if not r.get("negative")]
    negative = [r for r in records if r.get("negative")]
    ran = [r for r in records if "answer" in r]
    row: dict[str, Any] = {
        "questions": len(records),
        "negatives": len(negative),
        "errors": sum("error" in r for r in records),
    }
    for key in ("ndcg@10", "recall@10", f"recall@{suite.retrieval_k}", "mrr@10"):
        row[key] = _mean([r[key] for r in answerable if key in r])
    for key in ("em", "f1", "containment"):
        row[key] = _mean([r[key] for r in answerable if key in r])
    if ran:
        row["correct_refusal"] = _mean([float(r["refused"]) for r in negative if "refused" in r])
        row["false_refusal"] = _mean([float(r["refused"]) for r in answerable if "refused" in r])
        # answered with a quote of the closest source sentence instead of a refusal (the gate's fall-back)
        row["quoted"] = _mean([float(r.get("verdict") == "quote") for r in ran])
        row["grounded"] = _mean(
            [float(r["grounded"]) for r in ran if isinstance(r.get("grounded"), int | float)]
        )
        row["citations_valid"] = _mean(
            [float(bool(r["citations_valid"])) for r in ran if r.get("citations_valid") is not None]
        )
        row["think_leaks"] = sum(int(r.get("think_leak", 0)) for r in ran)
        row["latency_p50_s"] = _pct([r["total_s"] for r in ran], 0.5)
        row["latency_p95_s"] = _pct([r["total_s"] for r in ran], 0.95)
        ttft = [r["ttft_s"] for r in ran if r.get("ttft_s") is not None]
        row["ttft_p50_s"], row["ttft_p95_s"] = _pct(ttft, 0.5), _pct(ttft, 0.95)
        for stage in STAGES:
            values = [r["timings"][stage] for r in ran if stage in r.get("timings", {})]
            row[f"{stage}_p50_s"], row[f"{stage}_p95_s"] = _pct(values, 0.5), _pct(values, 0.95)
    return row


LEDGER_COLUMNS = ("answered_right", "answered_wrong", "quoted_right", "quoted_wrong", "refused_draft_right",
                  "refused_draft_wrong", "refused_no_draft", "negatives_refused", "negatives_answered",
                  "negatives_quoted")  # fmt: skip


def gate_ledger(records: list[dict[str, Any]], suite: Suite) -> dict[str, int]:
    """What each turn's final verdict did, counted against the gold answers: the quality gate's balance sheet.

    An answerable question answered is right when its answer holds every gold slot (containment 1). One the
    gate refused is split by its refused draft: right (the gate withheld a correct answer, its cost) or wrong
    (it stopped a wrong one, its worth); ``refused_no_draft`` are refusals with no draft to judge. An answer
    that quotes the closest source sentence (verdict ``quote``, the gate's fall-back) is counted apart from
    composed ones. Negatives (nothing in the knowledge base answers them) are refused, as they should be,
    answered or quoted. The draft kept
    is the last attempt's, so "draft right" is close to, not exactly, what a run without the gate would say.
    """
    slots = suite.answer_style == "slots"
    ledger = dict.fromkeys(LEDGER_COLUMNS, 0)
    for r in records:
        if "answer" not in r or "refused" not in r:
            continue
        quoted = r.get("verdict") == "quote"
        if r.get("negative"):
            ledger[
                "negatives_refused"
                if r["refused"]
                else "negatives_quoted"
                if quoted
                else "negatives_answered"
            ] += 1
        elif not r.get("gold"):
            continue
        elif not r["refused"]:
            right = score_answer(r["answer"], r["gold"], suite.language, slots)["containment"] == 1.0
            ledger[("quoted_" if quoted else "answered_") + ("right" if right else "wrong")] += 1
        elif r.get("draft"):
            right = score_answer(r["draft"], r["gold"], suite.language, slots)["containment"] == 1.0
            ledger["refused_draft_right" if right else "refused_draft_wrong"] += 1
        else:
            ledger["refused_no_draft"] += 1
    return ledger


def check_limits(summary: dict[str, dict[str, Any]], suite: Suite, partial: bool = False) -> list[str]:
    """Human-readable failures: a metric below its floor or above its ceiling (or missing).

    A ``partial`` run (``--limit``) may not measure every metric (its first questions hold no negatives, say);
    there a missing metric is skipped, not a failure.
    """
    failures = []
    for config, floors in suite.floors.items():
        for metric, floor in floors.items():
            value = summary.get(config, {}).get(metric)
            if value is None and partial:
                continue
            if value is None or value < floor:
                failures.append(f"{config}: {metric} = {value} is below the floor {floor}")
    for config, ceilings in suite.ceilings.items():
        for metric, ceiling in ceilings.items():
            value = summary.get(config, {}).get(metric)
            if value is None and partial:
                continue
            if value is None or value > ceiling:
                failures.append(f"{config}: {metric} = {value} is above the ceiling {ceiling}")
    return failures
