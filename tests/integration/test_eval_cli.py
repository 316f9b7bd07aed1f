"""``zhiwen eval`` end to end in a subprocess: a retrieval-only suite on a tiny BEIR dataset (real e5).

Exit codes: 0 within the floors (Markdown table on stdout), 1 with a failed floor (the failure printed),
1 with a one-line ``zhiwen: error:`` for a bad suite, no traceback.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
CORPUS = {
    "d1": "The Eiffel Tower in Paris was completed in 1889.",
    "d2": "Mount Fuji is the highest mountain in Japan, 3776 metres tall.",
    "d3": "The Amazon river flows through Brazil into the Atlantic Ocean.",
    "d4": "长城是中国古代修建的军事防御工程，全长两万多公里。",
    "d5": "熊猫主要生活在中国四川的山区，以竹子为食。",
    "d6": "Coffee beans are the roasted seeds of the coffea plant.",
}
QUERIES = {
    "q1": ("When was the Eiffel Tower completed?", "d1"),
    "q2": ("How tall is Mount Fuji?", "d2"),
    "q3": ("长城有多长？", "d4"),
    "q4": ("熊猫吃什么？", "d5"),
}
SUITE = """\
name: cli-tiny
dataset: tiny-beir
language: en
answers: false
retrieval_k: 10
configurations:
  - name: hybrid
    context: {{retrieval_mode: hybrid}}
  - name: bm25
    context: {{retrieval_mode: bm25}}
floors:
  hybrid: {{recall@10: {floor}}}
"""


@dataclass
class Env:
    base: Path
    env: dict[str, str]

    def eval(self, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "zhiwen.cli", "eval", *args],
            env=self.env, cwd=self.base, capture_output=True, text=True, timeout=timeout, check=False,
        )  # fmt: skip

    def suite(self, name: str, floor: float) -> Path:
        path = self.base / f"{name}.yaml"
        path.write_text(SUITE.format(floor=floor), encoding="utf-8")
        return path


def write_dataset(folder: Path) -> None:
    (folder / "qrels").mkdir(parents=True)
    (folder / "corpus.jsonl").write_text(
        "".join(
            json.dumps({"_id": d, "title": "", "text": t}, ensure_ascii=False) + "\n"
            for d, t in CORPUS.items()
        ),
        encoding="utf-8",
    )
    (folder / "queries.jsonl").write_text(
        "".join(
            json.dumps({"_id": q, "text": t}, ensure_ascii=False) + "\n" for q, (t, _) in QUERIES.items()
        ),
        encoding="utf-8",
    )
    qrels = ["query-id\tcorpus-id\tscore", *(f"{q}\t{d}\t1" for q, (_, d) in QUERIES.items())]
    (folder / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def env(tmp_path_factory: pytest.TempPathFactory) -> Env:
    base = tmp_path_factory.mktemp("eval-cli")
    write_dataset(base / "datasets" / "tiny-beir")
    variables = {k: v for k, v in os.environ.items() if not k.startswith("ZHIWEN_")}
    variables |= {
        "ZHIWEN_HOME": str(base / "home"),
        "ZHIWEN_DATASETS": str(base / "datasets"),
        "COLUMNS": "200",
    }
    return Env(base, variables)


@pytest.fixture(scope="module")
def passing(env: Env) -> tuple[subprocess.CompletedProcess[str], Path]:
    """One real run (e5 embeds the 6 passages and 4 queries), shared by the tests below."""
    out = env.base / "run-ok"
    return env.eval(str(env.suite("ok", 0.5)), "--out", str(out)), out


def table_rows(stdout: str) -> dict[str, dict[str, str]]:
    lines = stdout.splitlines()
    header = next(line for line in lines if line.startswith("| configuration |"))
    columns = [c.strip() for c in header.strip("|").split("|")]
    rows = {}
    for line in lines[lines.index(header) + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = dict(zip(columns, cells, strict=True))
    return rows


def test_eval_within_floors_exits_0_and_prints_the_table(
    passing: tuple[subprocess.CompletedProcess[str], Path],
) -> None:
    proc, out = passing
    assert proc.returncode == 0, proc.stderr
    assert "### zhiwen eval: cli-tiny" in proc.stdout
    assert "| configuration | ndcg@10 | recall@10 | mrr@10 |" in proc.stdout
    rows = table_rows(proc.stdout)
    assert set(rows) == {"hybrid", "bm25"}
    assert float(rows["hybrid"]["recall@10"]) >= 0.5
    assert "em" not in rows["hybrid"]  # retrieval only
    assert "✅" in proc.stdout
    assert "Traceback" not in proc.stderr
    # stderr is a pipe, not a terminal: progress comes as plain lines a log keeps, per configuration
    assert "ingest: 6/6 (100%)" in proc.stderr and "hybrid: 4/4 (100%)" in proc.stderr, proc.stderr
    for name in ("summary.json", "summary.md", "report.html", "records/hybrid.jsonl", "records/bm25.jsonl"):
        assert (out / name).is_file(), name
    assert len((out / "records" / "hybrid.jsonl").read_text(encoding="utf-8").splitlines()) == 4
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["failures"] == []
    assert summary["configurations"]["hybrid"]["questions"] == 4


def test_eval_below_a_floor_exits_1_and_prints_the_failure(
    env: Env, passing: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    # Resume from the passing run's records, so nothing is embedded again; only the floor differs.
    out = env.base / "run-floor"
    shutil.copytree(passing[1], out)
    proc = env.eval(str(env.suite("impossible", 1.5)), "--out", str(out))
    assert proc.returncode == 1, proc.stderr
    assert "| configuration |" in proc.stdout
    assert re.search(r"❌ hybrid: recall@10 = [0-9.]+ is below the floor 1\.5", proc.stdout), proc.stdout
    assert "Traceback" not in proc.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert len(summary["failures"]) == 1


def one_line_error(proc: subprocess.CompletedProcess[str]) -> str:
    assert proc.returncode == 1
    assert "Traceback" not in proc.stderr
    errors = [line for line in proc.stderr.splitlines() if line.startswith("zhiwen: error:")]
    assert len(errors) == 1, proc.stderr
    return errors[0]


def test_missing_suite_is_one_error_line(env: Env) -> None:
    proc = env.eval(str(env.base / "no-such-suite.yaml"), "--out", str(env.base / "run-missing"))
    assert "no-such-suite.yaml" in one_line_error(proc)
    assert proc.stdout == ""


def test_invalid_suite_is_one_error_line(env: Env) -> None:
    path = env.base / "typo.yaml"
    path.write_text(SUITE.format(floor=0.5) + "negativs: 1\n", encoding="utf-8")
    line = one_line_error(env.eval(str(path), "--out", str(env.base / "run-typo")))
    assert str(path) in line and "negativs" in line


def test_missing_dataset_is_one_error_line(env: Env) -> None:
    path = env.base / "nodata.yaml"
    path.write_text(SUITE.format(floor=0.5).replace("tiny-beir", "absent"), encoding="utf-8")
    line = one_line_error(env.eval(str(path), "--out", str(env.base / "run-nodata")))
    assert "no corpus.jsonl" in line


def test_missing_dataset_says_where_to_get_it(env: Env) -> None:
    path = env.base / "sourced.yaml"
    source = "source: example.org/sets/absent (CC BY 4.0)\n"
    path.write_text(SUITE.format(floor=0.5).replace("tiny-beir", "absent") + source, encoding="utf-8")
    line = one_line_error(env.eval(str(path), "--out", str(env.base / "run-sourced")))
    assert "get it from example.org/sets/absent (CC BY 4.0)" in line
    assert str(env.base / "datasets" / "absent") in line and "qrels/test.tsv" in line


def test_list_shows_which_suites_can_run(env: Env) -> None:
    evals = env.base / "evals"
    evals.mkdir(exist_ok=True)
    (evals / "here.yaml").write_text(SUITE.format(floor=0.5).replace("cli-tiny", "here"), encoding="utf-8")
    (evals / "away.yaml").write_text(
        SUITE.format(floor=0.5).replace("cli-tiny", "away").replace("tiny-beir", "absent"), encoding="utf-8"
    )
    (evals / "typo.yaml").write_text(
        SUITE.format(floor=0.5).replace("cli-tiny", "typo").replace("mode: bm25", "mode: bm-25"),
        encoding="utf-8",
    )
    proc = env.eval("--list")
    assert proc.returncode == 0, proc.stderr
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines() if line.split()}
    assert rows["here"][0] == "yes" and rows["away"][0] == "no", proc.stdout
    assert rows["away"][1] == str(env.base / "datasets" / "absent")
    # Its data is there, but its configuration cannot run: it said "yes", and running it failed.
    assert rows["typo"][0] == "invalid" and "retrieval_mode" in " ".join(rows["typo"]), proc.stdout
    line = one_line_error(env.eval(str(evals / "typo.yaml")))
    assert "configuration bm25" in line and "retrieval_mode" in line, line


def test_the_shipped_smoke_suite_runs_on_a_bare_clone(env: Env) -> None:
    """From the checkout with ZHIWEN_DATASETS unset: the smoke suite's data is the repository's own."""
    root = Path(__file__).resolve().parents[2]
    bare = {k: v for k, v in env.env.items() if k != "ZHIWEN_DATASETS"}
    proc = subprocess.run(
        [sys.executable, "-m", "zhiwen.cli", "eval", "--list"],
        env=bare, cwd=root, capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    smoke = next(line for line in proc.stdout.splitlines() if line.startswith("smoke "))
    assert smoke.split()[1] == "yes" and "evals/data/xquad-en-smoke" in smoke


def test_limit_reports_only_the_first_questions_of_a_longer_run(
    env: Env, passing: tuple[subprocess.CompletedProcess[str], Path]
) -> None:
    out = env.base / "run-limit"
    shutil.copytree(passing[1], out)  # holds all 4 questions' records
    proc = env.eval(str(env.suite("ok", 0.5)), "--out", str(out), "--limit", "2")
    assert proc.returncode == 0, proc.stderr
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    assert summary["configurations"]["hybrid"]["questions"] == 2
    assert len((out / "records" / "hybrid.jsonl").read_text(encoding="utf-8").splitlines()) == 4  # kept


def test_broken_dataset_is_one_error_line(env: Env) -> None:
    broken = env.base / "datasets" / "broken-beir"
    shutil.copytree(env.base / "datasets" / "tiny-beir", broken)
    (broken / "queries.jsonl").write_text("{not json\n", encoding="utf-8")
    path = env.base / "broken.yaml"
    path.write_text(SUITE.format(floor=0.5).replace("tiny-beir", "broken-beir"), encoding="utf-8")
    line = one_line_error(env.eval(str(path), "--out", str(env.base / "run-broken")))
    assert "not readable as BEIR" in line and "JSONDecodeError" in line
