"""Summarise per-question records into one row of metrics per configuration, and check floors."""

from __future__ import annotations

import json
import statistics
from pathlib import Path
from typing import Any

from zhiwen.evals.suite import Suite

__all__ = ["check_limits", "read_records", "summarize"]

STAGES = ("intent", "retrieval", "generation", "evaluation")


def read_records(path: Path) -> list[dict[str, Any]]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            continue
    return out


def _mean(values: list[float]) -> float | None:
    return round(statistics.fmean(values), 4) if values else None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))], 3)


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


def check_limits(summary: dict[str, dict[str, Any]], suite: Suite) -> list[str]:
    """Human-readable failures: a metric below its floor or above its ceiling (or missing)."""
    failures = []
    for config, floors in suite.floors.items():
        for metric, floor in floors.items():
            value = summary.get(config, {}).get(metric)
            if value is None or value < floor:
                failures.append(f"{config}: {metric} = {value} is below the floor {floor}")
    for config, ceilings in suite.ceilings.items():
        for metric, ceiling in ceilings.items():
            value = summary.get(config, {}).get(metric)
            if value is None or value > ceiling:
                failures.append(f"{config}: {metric} = {value} is above the ceiling {ceiling}")
    return failures
