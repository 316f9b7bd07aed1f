"""Helpers the benchmark scripts share (they import it by path, like ``_metrics``)."""

from __future__ import annotations

import argparse
import json
import math
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from zhiwen.evals.suite import load_suite

__all__ = ["fmt", "ms_stats", "replay_cli", "suite_records"]


def ms_stats(xs: Sequence[float]) -> dict[str, float]:
    """Seconds in, milliseconds out."""
    if not xs:
        return {"n": 0}
    a = np.asarray(xs, dtype=float) * 1000
    return {
        "n": len(a),
        "p50": round(float(np.percentile(a, 50)), 3),
        "p95": round(float(np.percentile(a, 95)), 3),
        "mean": round(float(a.mean()), 3),
        "min": round(float(a.min()), 3),
        "max": round(float(a.max()), 3),
    }


def fmt(d: dict[str, Any] | None, key: str = "p50", scale: float = 1.0) -> str:
    v = (d or {}).get(key)
    return "-" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{v * scale:.2f}"


def _jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def suite_records(
    records_dir: Path, config: str
) -> Iterator[tuple[str, list[dict[str, Any]], dict[str, str]]]:
    """(suite name, its ``config`` records, its corpus as id -> "title\ntext") for each suite folder under
    ``records_dir`` (evals/baselines/records/<suite>/records/<config>.jsonl) whose dataset is here.

    The records keep each source cut at 300 characters; a replay needs the passages whole, as the turn
    saw them, so they come from the dataset's corpus. A suite whose YAML or corpus is missing is skipped
    with a line on stderr.
    """
    for folder in sorted(d for d in records_dir.iterdir() if (d / "records" / f"{config}.jsonl").is_file()):
        try:
            dataset = load_suite(folder.name).dataset_path
        except Exception as exc:  # a records folder whose suite file is gone
            print(f"{folder.name}: skipped ({exc})", file=sys.stderr)
            continue
        if not (dataset / "corpus.jsonl").is_file():
            print(f"{folder.name}: skipped (no corpus at {dataset})", file=sys.stderr)
            continue
        corpus = {
            d["_id"]: f"{d.get('title', '')}\n{d['text']}".strip() for d in _jsonl(dataset / "corpus.jsonl")
        }
        yield folder.name, _jsonl(folder / "records" / f"{config}.jsonl"), corpus


Replay = Callable[[str, list[dict[str, Any]], dict[str, str], float], dict[str, int]]


def replay_cli(
    argv: Sequence[str] | None, doc: str, thresholds: list[float], what: str, replay: Replay,
    describe: Callable[[dict[str, int]], str],
) -> int:  # fmt: skip
    """The command line of a records replay: for each suite under ``--records`` and each of ``--thresholds``
    (``what`` they are), ``replay(suite, records, corpus, threshold)``'s counts, printed with ``describe``
    and written to ``--out`` as JSON."""
    p = argparse.ArgumentParser(description=doc.splitlines()[0])
    p.add_argument("--records", type=Path, default=Path("evals/baselines/records"), help="records folder")
    p.add_argument("--config", default="hybrid", help="which configuration's records (default: hybrid)")
    p.add_argument("--thresholds", type=float, nargs="+", default=thresholds, help=what)
    p.add_argument("--out", type=Path, help="write the figures as JSON here")
    args = p.parse_args(argv)
    results: dict[str, Any] = {}
    for suite, records, corpus in suite_records(args.records, args.config):
        results[suite] = {str(t): replay(suite, records, corpus, t) for t in args.thresholds}
        for t, counts in results[suite].items():
            print(f"{suite:<20} {t:<4} {describe(counts)}")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    return 0
