"""Every recorded baseline that ships its per-question records must be what those records summarise to.

A baseline under ``evals/baselines/<suite>.json`` is the number to beat; with its records committed under
``evals/baselines/records/<suite>/`` it can be rescored when a metric's definition changes, resumed where a
long run stopped, and audited question by question. This test fails when the two drift apart: a metric
changed without the baseline being rescored, or a baseline edited by hand.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zhiwen.evals.suite import Suite
from zhiwen.evals.summary import read_records, rescore, summarize

BASELINES = Path(__file__).resolve().parents[3] / "evals" / "baselines"
RUNS = sorted(p for p in (BASELINES / "records").iterdir() if p.is_dir())


def test_some_baselines_ship_their_records() -> None:
    assert RUNS, f"no recorded runs under {BASELINES / 'records'}"


@pytest.mark.parametrize("run", RUNS, ids=[p.name for p in RUNS])
def test_baseline_is_its_records_summary(run: Path) -> None:
    suite = Suite.model_validate_json((run / "suite.json").read_text(encoding="utf-8"))
    baseline = json.loads((BASELINES / f"{run.name}.json").read_text(encoding="utf-8"))["configurations"]
    files = sorted((run / "records").glob("*.jsonl"))
    assert files, f"{run} has no records"
    for path in files:
        row = summarize(rescore(read_records(path), suite), suite)
        assert baseline[path.stem] == row, f"{run.name}/{path.stem}: baseline differs from its records"
