"""Suite YAML files: a valid one loads, mistakes are one clear ZhiwenError, every suite in evals/ loads."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from zhiwen.errors import ZhiwenError
from zhiwen.evals.dataset import dataset_folder
from zhiwen.evals.suite import Suite, datasets_root, load_suite
from zhiwen.evals.summary import summarize

REPO = Path(__file__).resolve().parents[3]
SUITES = sorted((REPO / "evals").glob("*.yaml"))

VALID = """\
name: tiny
description: a tiny suite
dataset: tiny-set
language: zh
questions: 3
negatives: 1
corpus: judged
distractors: 2
answer_style: slots
model: {max_tokens: 60, condense_with_llm: false}
configurations:
  - name: hybrid
    context: {retrieval_mode: hybrid}
  - name: bm25
    context: {retrieval_mode: bm25, quality_gate: false}
floors:
  hybrid: {ndcg@10: 0.5}
ceilings:
  bm25: {think_leaks: 0}
"""


def test_valid_suite_loads(tmp_path: Path) -> None:
    path = tmp_path / "tiny.yaml"
    path.write_text(VALID, encoding="utf-8")
    suite = load_suite(str(path))
    assert suite.name == "tiny"
    assert suite.language == "zh"
    assert (suite.questions, suite.negatives, suite.corpus, suite.distractors) == (3, 1, "judged", 2)
    assert suite.answer_style == "slots"
    assert suite.answers is True  # default
    assert suite.retrieval_k == 100  # default
    assert [c.name for c in suite.configurations] == ["hybrid", "bm25"]
    assert suite.configurations[1].context == {"retrieval_mode": "bm25", "quality_gate": False}
    assert suite.floors == {"hybrid": {"ndcg@10": 0.5}}
    assert suite.ceilings == {"bm25": {"think_leaks": 0.0}}


def test_suite_by_name_from_the_evals_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "tiny.yaml").write_text(VALID, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    assert load_suite("tiny").name == "tiny"


def test_unknown_key_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "typo.yaml"
    path.write_text(VALID + "negativs: 2\n", encoding="utf-8")
    with pytest.raises(ZhiwenError) as info:
        load_suite(str(path))
    message = str(info.value)
    assert str(path) in message
    assert "negativs" in message
    assert "\n" not in message  # one line for the CLI


def test_unknown_configuration_key_is_rejected(tmp_path: Path) -> None:
    path = tmp_path / "conf.yaml"
    path.write_text(VALID.replace("  - name: bm25\n", "  - name: bm25\n    contxt: {}\n"), encoding="utf-8")
    with pytest.raises(ZhiwenError, match=r"conf\.yaml"):
        load_suite(str(path))


@pytest.mark.parametrize(
    "text",
    [
        "name: x\ndataset: d\nlanguage: fr\nconfigurations: [{name: a}]\n",  # unknown language
        "name: x\ndataset: d\nlanguage: en\nconfigurations: []\n",  # no configuration
        "name: x y\ndataset: d\nlanguage: en\nconfigurations: [{name: a}]\n",  # name not a file name
        "name: x\ndataset: d\nlanguage: en\nconfigurations: [{name: a}\n",  # not YAML
        "- just a list\n",  # not a mapping
    ],
)
def test_invalid_suites_raise_zhiwen_error(tmp_path: Path, text: str) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(text, encoding="utf-8")
    with pytest.raises(ZhiwenError, match=r"bad\.yaml"):
        load_suite(str(path))


def test_missing_suite_lists_known_suites(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evals").mkdir()
    for name in ("beta", "alpha"):
        (tmp_path / "evals" / f"{name}.yaml").write_text(VALID, encoding="utf-8")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ZhiwenError) as info:
        load_suite("nope")
    assert "'nope'" in str(info.value)
    assert "alpha, beta" in str(info.value)


def test_missing_suite_without_an_evals_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ZhiwenError, match="none found"):
        load_suite(str(tmp_path / "missing.yaml"))


def test_a_folder_is_not_a_suite(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "evals").mkdir()
    (tmp_path / "evals" / "smoke.yaml").write_text(VALID, encoding="utf-8")
    (tmp_path / "smoke").mkdir()  # a folder named like the suite does not hide it
    monkeypatch.chdir(tmp_path)
    assert load_suite("smoke").name == "tiny"
    with pytest.raises(ZhiwenError, match="no suite 'evals'"):
        load_suite("evals")


def test_a_file_that_is_not_text_is_a_zhiwen_error(tmp_path: Path) -> None:
    path = tmp_path / "binary.yaml"
    path.write_bytes(b"\xff\xfe\x00name")
    with pytest.raises(ZhiwenError, match=r"binary\.yaml"):
        load_suite(str(path))


def test_datasets_root_follows_the_environment(
    tmp_path: Path, zhiwen_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ZHIWEN_DATASETS", str(tmp_path))
    assert datasets_root() == tmp_path
    monkeypatch.delenv("ZHIWEN_DATASETS")
    assert datasets_root() == zhiwen_home / "datasets", (
        "the default is under ZHIWEN_HOME, not a machine's path"
    )


def _suite_file(folder: Path, dataset: str, source: str = "") -> Path:
    raw = {"name": "s", "dataset": dataset, "language": "en", "configurations": [{"name": "hybrid"}]}
    if source:
        raw["source"] = source
    path = folder / "s.yaml"
    path.write_text(yaml.safe_dump(raw), encoding="utf-8")
    return path


def test_a_dataset_beside_the_suite_is_found_relative_to_its_file(
    tmp_path: Path, zhiwen_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "suites" / "data" / "mini").mkdir(parents=True)
    (tmp_path / "suites" / "data" / "mini" / "corpus.jsonl").write_text('{"_id": "1", "text": "x"}\n')
    path = _suite_file(tmp_path / "suites", "./data/mini")
    monkeypatch.chdir(zhiwen_home)  # anywhere: the path is the suite file's, not the working directory's
    suite = load_suite(str(path))
    assert dataset_folder(suite) == tmp_path / "suites" / "data" / "mini"
    assert dataset_folder(suite.only(["hybrid"])) == tmp_path / "suites" / "data" / "mini"


def test_a_missing_dataset_says_where_to_get_it_and_how_to_lay_it_out(
    tmp_path: Path, zhiwen_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ZHIWEN_DATASETS", raising=False)
    suite = load_suite(
        str(_suite_file(tmp_path, "scifact", source="allenai/scifact via BEIR (CC BY-NC 2.0)"))
    )
    with pytest.raises(ZhiwenError) as caught:
        dataset_folder(suite)
    message = str(caught.value)
    assert "\n" not in message
    assert str(zhiwen_home / "datasets" / "scifact") in message
    assert "get it from allenai/scifact via BEIR (CC BY-NC 2.0)" in message
    assert "corpus.jsonl, queries.jsonl, qrels/test.tsv" in message
    assert "ZHIWEN_DATASETS" in message


def test_every_suite_says_where_its_dataset_comes_from() -> None:
    root = Path(__file__).resolve().parents[3]
    for path in (root / "evals").glob("*.yaml"):
        suite = load_suite(str(path))
        assert suite.source, f"{path.name} has no source"


def _summary_keys(suite: Suite) -> set[str]:
    """Every metric name a summary row can hold (a fully populated record)."""
    record = {
        "id": "q", "negative": False, "answer": "a", "refused": False, "grounded": 1.0,
        "citations_valid": True, "think_leak": 0, "total_s": 1.0, "ttft_s": 0.5,
        "timings": {"intent": 0.1, "retrieval": 0.1, "generation": 0.1, "evaluation": 0.1},
        "ndcg@10": 1.0, "recall@10": 1.0, f"recall@{suite.retrieval_k}": 1.0, "mrr@10": 1.0,
        "em": 1.0, "f1": 1.0, "containment": 1.0,
    }  # fmt: skip
    return set(summarize([record, {**record, "negative": True}], suite))


def test_the_repository_has_suites() -> None:
    assert any(p.stem == "smoke" for p in SUITES)


@pytest.mark.parametrize("path", SUITES, ids=[p.stem for p in SUITES])
def test_every_suite_in_evals_loads(path: Path) -> None:
    suite = load_suite(str(path))
    assert suite.name == path.stem
    names = {c.name for c in suite.configurations}
    assert len(names) == len(suite.configurations), "configuration names must be unique"
    for config in suite.configurations:
        suite.context_of(config, "kb")  # real Context fields, with values of their types
    known = _summary_keys(suite)
    for limits in (suite.floors, suite.ceilings):
        for config_name, metrics in limits.items():
            assert config_name in names, f"limit for unknown configuration {config_name!r}"
            assert set(metrics) <= known, f"unknown metrics {set(metrics) - known}"


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"configurations": [{"name": "a"}, {"name": "b"}, {"name": "a"}]}, r"unique: a given twice"),
        ({"floors": {"hybird": {"ndcg@10": 0.5}}}, r"floors name no configuration: hybird"),
        ({"ceilings": {"x": {"think_leaks": 0}}}, r"ceilings name no configuration: x"),
    ],
)
def test_configuration_names_are_unique_and_limits_name_configurations(
    tmp_path: Path, changes: dict[str, object], message: str
) -> None:
    # Two configurations of one name would share one records file (the second would skip every question);
    # a floor under a misspelt name would never be checked.
    base = {"name": "s", "dataset": "d", "language": "en", "configurations": [{"name": "hybrid"}]}
    path = tmp_path / "s.yaml"
    path.write_text(yaml.safe_dump(base | changes), encoding="utf-8")
    with pytest.raises(ZhiwenError, match=message):
        load_suite(str(path))
