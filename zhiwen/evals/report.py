"""Reports of a suite run: summary.json, a Markdown table for pull requests, and an offline HTML page.

Plots are drawn with matplotlib and embedded as PNG data URIs, so the page needs no network.
"""

from __future__ import annotations

import base64
import html
import io
import json
from collections import Counter
from pathlib import Path
from typing import Any

__all__ = ["false_refusal_reasons", "markdown", "write_reports"]

_HEADLINE = ("ndcg@10", "recall@10", "mrr@10", "em", "f1", "containment", "correct_refusal", "false_refusal",
             "grounded", "citations_valid", "think_leaks", "latency_p50_s", "ttft_p50_s")  # fmt: skip


def _fmt(value: Any) -> str:
    if value is None:
        return "–"
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def false_refusal_reasons(records: dict[str, list[dict[str, Any]]]) -> dict[str, dict[str, int]]:
    """Per configuration, why answerable questions were refused: each gate reason with its count, most
    frequent first (a refusal can have several reasons; one without recorded reasons counts as such)."""
    out: dict[str, dict[str, int]] = {}
    for config, rs in records.items():
        counts = Counter(
            reason
            for r in rs
            if r.get("refused") and not r.get("negative")
            for reason in (r.get("reasons") or ["(no reason recorded)"])
        )
        if counts:
            out[config] = dict(counts.most_common())
    return out


_LEDGER_HEADINGS = {
    "answered_right": "answered, right", "answered_wrong": "answered, wrong",
    "quoted_right": "quoted, right", "quoted_wrong": "quoted, wrong",
    "refused_draft_right": "refused, draft was right", "refused_draft_wrong": "refused, draft was wrong",
    "refused_no_draft": "refused, no draft", "negatives_refused": "negatives refused",
    "negatives_answered": "negatives answered", "negatives_quoted": "negatives quoted",
}  # fmt: skip


def _right_when_answered(ledger: dict[str, int]) -> str:
    answered = ledger.get("answered_right", 0) + ledger.get("answered_wrong", 0)
    return f"{ledger.get('answered_right', 0) / answered:.3f}" if answered else "–"


def _ledger_markdown(ledgers: dict[str, dict[str, int]]) -> list[str]:
    shown = {config: ledger for config, ledger in ledgers.items() if any(ledger.values())}
    if not shown:
        return []
    columns = list(_LEDGER_HEADINGS)
    return [
        "What each final verdict did, against the gold answers (right = the answer holds every gold slot; "
        "a refused draft is the answer the gate withheld):",
        "",
        "| configuration | " + " | ".join(_LEDGER_HEADINGS[c] for c in columns) + " | right when answered |",
        "|---|" + "---|" * (len(columns) + 1),
        *(
            f"| {config} | " + " | ".join(str(ledger.get(c, 0)) for c in columns)
            + f" | {_right_when_answered(ledger)} |"
            for config, ledger in shown.items()
        ),
        "",
    ]  # fmt: skip


def markdown(
    suite_name: str,
    summary: dict[str, dict[str, Any]],
    failures: list[str],
    reasons: dict[str, dict[str, int]] | None = None,
    ledgers: dict[str, dict[str, int]] | None = None,
) -> str:
    deep_recall = sorted(
        {k for row in summary.values() for k in row if k.startswith("recall@") and k != "recall@10"}
    )
    # recall@k at the suite's retrieval_k (recall@100 by default) goes right after recall@10
    headline = [*_HEADLINE[:2], *deep_recall, *_HEADLINE[2:]]
    metrics = [m for m in headline if any(row.get(m) is not None for row in summary.values())]
    lines = [f"### zhiwen eval: {suite_name}", "", "| configuration | " + " | ".join(metrics) + " |",
             "|---|" + "---|" * len(metrics)]  # fmt: skip
    for config, row in summary.items():
        lines.append(f"| {config} | " + " | ".join(_fmt(row.get(m)) for m in metrics) + " |")
    lines.append("")
    lines.extend(_ledger_markdown(ledgers or {}))
    if reasons:
        lines.append("Why answerable questions were refused:")
        for config, counts in reasons.items():
            lines.append(f"- {config}: " + "; ".join(f"{reason} ({n})" for reason, n in counts.items()))
        lines.append("")
    lines.extend(
        [f"- ❌ {f}" for f in failures] or ["- ✅ every metric is within its recorded floors and ceilings"]
    )
    return "\n".join(lines) + "\n"


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _plots(summary: dict[str, dict[str, Any]], records: dict[str, list[dict[str, Any]]]) -> list[str] | None:
    """PNG data URIs of the plots; None when matplotlib is not installed (the report is written without)."""
    try:
        import matplotlib
    except ImportError:
        return None

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    images = []
    metrics = [m for m in ("ndcg@10", "recall@10", "mrr@10", "em", "f1", "containment", "grounded", "false_refusal",
                           "correct_refusal") if any(r.get(m) is not None for r in summary.values())]  # fmt: skip
    if metrics:
        fig, ax = plt.subplots(figsize=(max(6, len(metrics) * 1.2), 3.5))
        width = 0.8 / max(1, len(summary))
        for i, (config, row) in enumerate(summary.items()):
            xs = [j + i * width for j in range(len(metrics))]
            ax.bar(xs, [row.get(m) or 0 for m in metrics], width, label=config)
        ax.set_xticks([j + 0.4 - width / 2 for j in range(len(metrics))], metrics, rotation=30)
        ax.set_ylim(0, 1)
        ax.legend(fontsize=8)
        ax.set_title("metrics by configuration")
        images.append(_png(fig))
        plt.close(fig)
    totals = {c: [r["total_s"] for r in rs if "total_s" in r and "answer" in r] for c, rs in records.items()}
    if any(totals.values()):
        fig, ax = plt.subplots(figsize=(6, 3.5))
        ax.boxplot([v or [0] for v in totals.values()], tick_labels=list(totals))
        ax.set_ylabel("seconds per turn")
        ax.set_title("turn latency")
        images.append(_png(fig))
        plt.close(fig)
    return images


def _failures_html(records: dict[str, list[dict[str, Any]]], limit: int = 8) -> str:
    parts = []
    for config, rs in records.items():
        bad = [
            r for r in rs if "answer" in r and (r.get("negative") != r.get("refused") or r.get("f1", 1) < 0.3)
        ]
        for r in bad[:limit]:
            passages = "".join(
                f"<li><code>{html.escape(s['doc_id'])}</code> {html.escape(s['text'])}</li>"
                for s in r.get("sources", [])
            )
            parts.append(
                f"<details><summary>[{html.escape(config)}] {html.escape(r['question'])}</summary>"
                f"<p><b>gold</b>: {html.escape(json.dumps(r.get('gold'), ensure_ascii=False))}"
                f" · <b>negative</b>: {r.get('negative')} · <b>verdict</b>: {html.escape(str(r.get('verdict')))}</p>"
                f"<p><b>answer</b>: {html.escape(r.get('answer', ''))}</p>"
                + (f"<p><b>gate</b>: {html.escape('; '.join(r['reasons']))}</p>" if r.get("reasons") else "")
                + (f"<p><b>refused draft</b>: {html.escape(r['draft'])}</p>" if r.get("draft") else "")
                + f"<ol>{passages}</ol></details>"
            )
    return "\n".join(parts) or "<p>No failures.</p>"


def _reasons_html(reasons: dict[str, dict[str, int]]) -> str:
    if not reasons:
        return ""
    items = "".join(
        f"<li>{html.escape(config)}: "
        + "; ".join(f"{html.escape(reason)} ({n})" for reason, n in counts.items())
        + "</li>"
        for config, counts in reasons.items()
    )
    return f"<h2>Why answerable questions were refused</h2><ul>{items}</ul>"


def _ledger_html(ledgers: dict[str, dict[str, int]]) -> str:
    shown = {config: ledger for config, ledger in ledgers.items() if any(ledger.values())}
    if not shown:
        return ""
    head = "".join(f"<th>{html.escape(h)}</th>" for h in _LEDGER_HEADINGS.values())
    rows = "".join(
        f"<tr><td>{html.escape(config)}</td>"
        + "".join(f"<td>{ledger.get(c, 0)}</td>" for c in _LEDGER_HEADINGS)
        + f"<td>{_right_when_answered(ledger)}</td></tr>"
        for config, ledger in shown.items()
    )
    return (
        "<h2>What each final verdict did</h2><p>Against the gold answers: right = the answer holds every gold "
        "slot; a refused draft is the answer the quality gate withheld.</p>"
        f"<table><tr><th>configuration</th>{head}<th>right when answered</th></tr>{rows}</table>"
    )


def write_reports(out: Path, suite_name: str, summary: dict[str, dict[str, Any]],
                  records: dict[str, list[dict[str, Any]]], failures: list[str],
                  ledgers: dict[str, dict[str, int]] | None = None) -> dict[str, Path]:  # fmt: skip
    """Write summary.json, summary.md and report.html into ``out``; ``ledgers`` are the per-configuration
    counts of :func:`zhiwen.evals.summary.gate_ledger` (omitted, the reports leave that table out)."""
    paths = {"json": out / "summary.json", "markdown": out / "summary.md", "html": out / "report.html"}
    reasons = false_refusal_reasons(records)
    ledgers = ledgers or {}
    paths["json"].write_text(json.dumps({"suite": suite_name, "configurations": summary, "failures": failures,
                                         "false_refusal_reasons": reasons, "gate_ledger": ledgers},
                                        ensure_ascii=False, indent=2), encoding="utf-8")  # fmt: skip
    md = markdown(suite_name, summary, failures, reasons, ledgers)
    paths["markdown"].write_text(md, encoding="utf-8")
    cols = sorted({k for row in summary.values() for k in row})
    table = "<tr><th>configuration</th>" + "".join(f"<th>{html.escape(c)}</th>" for c in cols) + "</tr>"
    for config, row in summary.items():
        table += (
            f"<tr><td>{html.escape(config)}</td>"
            + "".join(f"<td>{_fmt(row.get(c))}</td>" for c in cols)
            + "</tr>"
        )
    plots = _plots(summary, records)
    images = (
        "".join(f'<img alt="plot" src="{src}">' for src in plots)
        if plots is not None
        else "<p>Plots need matplotlib (<code>pip install matplotlib</code>).</p>"
    )
    page = f"""<!doctype html><html><head><meta charset="utf-8"><title>zhiwen eval: {html.escape(suite_name)}</title>
<style>body{{font-family:sans-serif;margin:2em}}table{{border-collapse:collapse;font-size:12px}}
td,th{{border:1px solid #ccc;padding:3px 6px}}img{{max-width:100%;margin:1em 0}}</style></head><body>
<h1>zhiwen eval: {html.escape(suite_name)}</h1><table>{table}</table>
<ul>{"".join(f"<li>{html.escape(f)}</li>" for f in failures) or "<li>all metrics within floors</li>"}</ul>
{_ledger_html(ledgers)}{_reasons_html(reasons)}{images}<h2>Failures, with retrieved passages</h2>{_failures_html(records)}</body></html>"""
    paths["html"].write_text(page, encoding="utf-8")
    return paths
