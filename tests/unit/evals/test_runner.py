"""The eval runner on a tiny synthetic BEIR dataset, with a fake chat model and the fake embedder.

Checks the records (ids, rankings, metrics), negative rejection (the gold passage is removed from the
knowledge base), resumability, the lock against a concurrent run, the summary and floors/ceilings.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from fakes import HashEmbedder
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models.fake_chat_models import GenericFakeChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

from zhiwen.errors import ZhiwenError
from zhiwen.evals import runner
from zhiwen.evals.dataset import load_eval_set
from zhiwen.evals.runner import run_suite
from zhiwen.evals.suite import Suite
from zhiwen.evals.summary import check_limits, read_records, rescore, summarize
from zhiwen.memory import registry
from zhiwen.nodes._common import set_model_override
from zhiwen.settings import get_settings

CORPUS = [
    ("d1", "Eiffel Tower", "The Eiffel Tower stands in Paris. The Eiffel Tower was completed in 1889."),
    ("d2", "Mount Fuji", "Mount Fuji is the highest mountain of Japan. Mount Fuji is 3776 metres tall."),
    ("d3", "Amazon", "The Amazon river flows east through Brazil into the Atlantic Ocean."),
    ("d4", "Penguins", "Penguins live in Antarctica and on the cold coasts of the southern oceans."),
    ("d5", "Great Wall", "The Great Wall of China is thousands of kilometres long."),
    ("d6", "Coffee", "Coffee beans are the roasted seeds of the coffea plant."),
]
QUESTIONS = {
    "q1": ("When was the Eiffel Tower completed?", "d1", ["1889"]),
    "q2": ("How tall is Mount Fuji?", "d2", ["3776 metres", "3,776 metres"]),
    "q3": ("Which ocean does the Amazon river flow into?", "d3", ["Atlantic Ocean"]),
    "q4": ("Where do penguins live?", "d4", ["Antarctica"]),
}
# The fake model's answer to each question: exact (q1), partial (q2), wrong (q3), refusal (q4).
REPLIES = {
    "q1": "1889.",
    "q2": "Mount Fuji is 3776 metres tall.",
    "q3": "It flows into the Pacific Ocean.",
    "q4": "The sources do not mention where penguins live.",
}
SUITE: dict[str, Any] = {
    "name": "tiny",
    "dataset": "tiny-beir",
    "language": "en",
    "negatives": 1,
    "retrieval_k": 10,
    "model": {"condense_with_llm": False},
    "configurations": [
        {"name": "hybrid", "context": {"retrieval_mode": "hybrid", "quality_gate": False}},
        {"name": "bm25", "context": {"retrieval_mode": "bm25", "quality_gate": False}},
    ],
}


class AnsweringChatModel(GenericFakeChatModel):
    """Answers by the question found in the prompt (streams word by word); counts its calls."""

    replies: dict[str, str]
    calls: list[str] = Field(default_factory=list)
    on_call: Callable[[], None] | None = None

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        prompt = str(messages[-1].content)
        qid = next(q for q, (text, _, _) in QUESTIONS.items() if text in prompt)
        self.calls.append(qid)
        if self.on_call is not None:
            self.on_call()
        return ChatResult(generations=[ChatGeneration(message=AIMessage(content=self.replies[qid]))])


def write_dataset(folder: Path) -> None:
    """A BEIR folder: corpus.jsonl, queries.jsonl, qrels/test.tsv (with header), answers.jsonl."""
    (folder / "qrels").mkdir(parents=True)
    with (folder / "corpus.jsonl").open("w", encoding="utf-8") as f:
        for doc_id, title, text in CORPUS:
            f.write(json.dumps({"_id": doc_id, "title": title, "text": text}) + "\n")
    with (folder / "queries.jsonl").open("w", encoding="utf-8") as f:
        for qid, (text, _, _) in QUESTIONS.items():
            f.write(json.dumps({"_id": qid, "text": text}) + "\n")
    lines = ["query-id\tcorpus-id\tscore"] + [f"{q}\t{d}\t1" for q, (_, d, _) in QUESTIONS.items()]
    (folder / "qrels" / "test.tsv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    with (folder / "answers.jsonl").open("w", encoding="utf-8") as f:
        for qid, (_, _, answers) in QUESTIONS.items():
            f.write(json.dumps({"_id": qid, "answers": answers}) + "\n")


@pytest.fixture
def env(
    tmp_path: Path, zhiwen_home: Path, fake_embedder: HashEmbedder, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Path]:
    """ZHIWEN_DATASETS with the tiny dataset, the fake embedder, no chat endpoint; yields the out folder."""
    datasets = tmp_path / "datasets"
    write_dataset(datasets / "tiny-beir")
    monkeypatch.setenv("ZHIWEN_DATASETS", str(datasets))
    for var in ("ZHIWEN_LLM_BASE_URL", "ZHIWEN_EMBEDDINGS_BASE_URL"):
        monkeypatch.delenv(var, raising=False)
    get_settings.cache_clear()
    monkeypatch.setattr(registry, "make_embedder", lambda settings: fake_embedder)
    monkeypatch.setattr(registry, "_embedders", {})
    yield tmp_path / "run"
    set_model_override(None)
    registry.close_all()


def use_model(**kwargs: Any) -> AnsweringChatModel:
    kwargs.setdefault("replies", REPLIES)
    model = AnsweringChatModel(messages=iter([]), **kwargs)
    set_model_override(model)
    return model


def suite(**changes: Any) -> Suite:
    return Suite.model_validate({**SUITE, **changes})


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()


# --- dataset ------------------------------------------------------------------------------------


def test_negative_questions_lose_their_gold_passage(env: Path) -> None:
    data = load_eval_set(suite())
    assert sorted(d.id for d in data.documents) == ["d1", "d2", "d3", "d5", "d6"]
    assert [q.id for q in data.questions] == ["q1", "q2", "q3", "q4"]
    assert [q.negative for q in data.questions] == [False, False, False, True]
    assert data.questions[1].answers == ["3776 metres", "3,776 metres"]
    assert data.questions[0].relevant == {"d1": 1}


def test_judged_corpus_keeps_gold_passages_and_distractors(env: Path) -> None:
    data = load_eval_set(suite(questions=2, negatives=0, corpus="judged", distractors=1))
    ids = [d.id for d in data.documents]
    assert ids[:2] == ["d1", "d2"]
    assert len(ids) == 3 and ids[2] in {"d3", "d4", "d5", "d6"}


def test_a_question_sharing_a_negatives_gold_passage_is_left_out(env: Path) -> None:
    # q5 asks about d4 too; q4 (the negative) loses d4, so q5 would have no answer either
    datasets = Path(os.environ["ZHIWEN_DATASETS"]) / "tiny-beir"
    with (datasets / "queries.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"_id": "q5", "text": "What do penguins eat?"}) + "\n")
    with (datasets / "qrels" / "test.tsv").open("a", encoding="utf-8") as f:
        f.write("q5\td4\t1\nq6\td6\t0\n")  # q6: judged, nothing relevant -> not a question at all
    with (datasets / "queries.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"_id": "q6", "text": "Is coffee a bean?"}) + "\n")
    data = load_eval_set(suite(negatives=2))  # the last two asked-for questions: q4, q5
    assert [(q.id, q.negative) for q in data.questions] == [
        ("q1", False),
        ("q2", False),
        ("q3", False),
        ("q4", True),
        ("q5", True),
    ]
    data = load_eval_set(suite(questions=4, negatives=1))  # q4 negative: q5 is not among the 4 anyway
    assert "d4" not in {d.id for d in data.documents}
    # q1..q5 with q5 the only negative: q4 shares d4 with it, so q4 is left out and d4 removed
    data = load_eval_set(suite(questions=5, negatives=1))
    assert [(q.id, q.negative) for q in data.questions] == [
        ("q1", False),
        ("q2", False),
        ("q3", False),
        ("q5", True),
    ]
    assert "d4" not in {d.id for d in data.documents}


@pytest.mark.parametrize(
    ("file", "text"),
    [
        ("queries.jsonl", "{not json\n"),
        ("answers.jsonl", json.dumps({"_id": "q1", "answer": ["typo"]}) + "\n"),
    ],
)
def test_a_broken_dataset_file_is_a_zhiwen_error(env: Path, file: str, text: str) -> None:
    folder = Path(os.environ["ZHIWEN_DATASETS"]) / "tiny-beir"
    (folder / file).write_text(text, encoding="utf-8")
    with pytest.raises(ZhiwenError, match=r"not readable as BEIR"):
        load_eval_set(suite())


def test_a_dataset_without_qrels_is_a_zhiwen_error(env: Path) -> None:
    folder = Path(os.environ["ZHIWEN_DATASETS"]) / "tiny-beir"
    (folder / "qrels" / "test.tsv").unlink()
    with pytest.raises(ZhiwenError, match=r"test\.tsv"):
        load_eval_set(suite())


def test_numeric_query_ids_match_their_qrels_and_a_bom_is_ignored(env: Path) -> None:
    folder = Path(os.environ["ZHIWEN_DATASETS"]) / "tiny-beir"
    (folder / "queries.jsonl").write_text(json.dumps({"_id": 7, "text": "Where is the tower?"}) + "\n")
    (folder / "answers.jsonl").write_text(json.dumps({"_id": 7, "answers": ["Paris"]}) + "\n")
    (folder / "qrels" / "test.tsv").write_text("\ufeff7\td1\t1\n", encoding="utf-8")  # no header, a BOM
    data = load_eval_set(suite(negatives=0))
    assert [(q.id, q.relevant, q.answers) for q in data.questions] == [("7", {"d1": 1}, ["Paris"])]


def test_a_bare_string_answer_is_refused_not_scored_letter_by_letter(env: Path) -> None:
    folder = Path(os.environ["ZHIWEN_DATASETS"]) / "tiny-beir"
    (folder / "answers.jsonl").write_text(json.dumps({"_id": "q1", "answers": "1889"}) + "\n")
    with pytest.raises(ZhiwenError, match=r"answers of 'q1' must be a list"):
        load_eval_set(suite())


def test_a_number_among_the_answers_is_refused_before_any_turn(env: Path) -> None:
    folder = Path(os.environ["ZHIWEN_DATASETS"]) / "tiny-beir"
    (folder / "answers.jsonl").write_text(json.dumps({"_id": "q1", "answers": [1889]}) + "\n")
    with pytest.raises(ZhiwenError, match=r"answers of 'q1' must be a list of strings.*got \[1889\]"):
        load_eval_set(suite())
    (folder / "answers.jsonl").write_text(json.dumps({"_id": "q1", "answers": [["1889", "一八八九"]]}) + "\n")
    assert load_eval_set(suite(negatives=0)).questions[0].answers == [["1889", "一八八九"]]  # RGB slots


def test_a_query_id_given_twice_is_refused(env: Path) -> None:
    folder = Path(os.environ["ZHIWEN_DATASETS"]) / "tiny-beir"
    with (folder / "queries.jsonl").open("a", encoding="utf-8") as f:
        f.write(json.dumps({"_id": "q2", "text": "How high is Mount Fuji?"}) + "\n")
    with pytest.raises(ZhiwenError, match=r"query id 'q2' appears twice"):
        load_eval_set(suite())


def test_a_dataset_whose_queries_have_no_qrels_is_a_zhiwen_error(env: Path) -> None:
    folder = Path(os.environ["ZHIWEN_DATASETS"]) / "tiny-beir"
    (folder / "qrels" / "test.tsv").write_text("query-id\tcorpus-id\tscore\nother\td1\t1\n", encoding="utf-8")
    with pytest.raises(ZhiwenError, match=r"no query in queries.jsonl has a relevant passage"):
        load_eval_set(suite())


def test_missing_dataset_is_a_zhiwen_error(env: Path) -> None:
    with pytest.raises(ZhiwenError, match=r"no corpus\.jsonl"):
        load_eval_set(suite(dataset="absent"))
    with pytest.raises(ZhiwenError, match=r"no corpus\.jsonl"):
        asyncio.run(run_suite(suite(dataset="absent"), env))
    assert not env.exists(), "refused before the output folder (and its lock) was made"


# --- records ------------------------------------------------------------------------------------


def test_records_per_configuration(env: Path) -> None:
    model = use_model()
    files = asyncio.run(run_suite(suite(), env))
    assert set(files) == {"hybrid", "bm25"}
    assert sorted(model.calls) == sorted(["q1", "q2", "q3", "q4"] * 2)
    assert json.loads((env / "suite.json").read_text(encoding="utf-8"))["name"] == "tiny"
    for name, path in files.items():
        assert path == env / "records" / f"{name}.jsonl"
        records = {r["id"]: r for r in read_records(path)}
        assert list(records) == ["q1", "q2", "q3", "q4"]
        for qid, (text, gold_doc, answers) in QUESTIONS.items():
            r = records[qid]
            assert r["question"] == text
            assert r["gold"] == answers
            assert r["relevant"] == {gold_doc: 1}
            assert "error" not in r
            assert isinstance(r["total_s"], float)
            assert r["ttft_s"] is not None  # the answer was streamed
            assert "d4" not in r["ranking"]  # removed from the knowledge base for q4
            assert len(r["ranking"]) == len(set(r["ranking"])) <= 10
        for qid in ("q1", "q2", "q3"):
            r = records[qid]
            gold_doc = QUESTIONS[qid][1]
            assert r["negative"] is False
            assert r["ranking"][0] == gold_doc, (name, qid, r["ranking"])
            assert r["ndcg@10"] == r["recall@10"] == r["mrr@10"] == 1.0
            assert r["refused"] is False
            assert r["sources"] and r["sources"][0]["doc_id"] == gold_doc
        # hand-computed answer metrics (citations the quality gate adds are removed first)
        q1, q2, q3, q4 = (records[q] for q in ("q1", "q2", "q3", "q4"))
        assert (q1["em"], q1["f1"], q1["containment"]) == (1.0, 1.0, 1.0)
        # pred [mount, fuji, is, 3776, metres, tall] vs [3776, metres]: P = 1/3, R = 1 -> F1 = 1/2
        assert (q2["em"], q2["containment"]) == (0.0, 1.0)
        assert q2["f1"] == pytest.approx(0.5)
        # pred [it, flows, into, pacific, ocean] vs [atlantic, ocean]: P = 1/5, R = 1/2 -> F1 = 2/7
        assert (q3["em"], q3["containment"]) == (0.0, 0.0)
        assert q3["f1"] == pytest.approx(2 / 7)
        # the negative question: no relevant passage left, the refusal is recorded, no EM/F1
        assert q4["negative"] is True
        assert q4["ndcg@10"] == q4["recall@10"] == q4["mrr@10"] == 0.0
        assert q4["refused"] is True
        assert q4["reasons"] and all(isinstance(x, str) for x in q4["reasons"])  # why the gate refused
        assert q1["reasons"] == [] and q1["attempts"] == 1
        assert all("draft" not in r for r in records.values())  # no gate here: the answer is the draft
        assert "em" not in q4 and "f1" not in q4 and "containment" not in q4


def test_retrieval_only_suite_needs_no_model(env: Path) -> None:
    model = use_model()
    files = asyncio.run(run_suite(suite(answers=False), env))
    assert model.calls == []
    for path in files.values():
        records = read_records(path)
        assert [r["id"] for r in records] == ["q1", "q2", "q3", "q4"]
        assert all("answer" not in r and "em" not in r for r in records)
        assert [r["ranking"][0] for r in records[:3]] == ["d1", "d2", "d3"]
        row = summarize(records, suite(answers=False))
        assert row["ndcg@10"] == 1.0
        assert "correct_refusal" not in row and "latency_p50_s" not in row


def test_a_refusal_by_the_gate_keeps_the_refused_draft(env: Path) -> None:
    # q3's passage is retrieved with confidence, so the gate retries the unsupported draft once, then refuses
    use_model(replies={**REPLIES, "q3": "Bananas are blue [1]."})
    gated = [{"name": "gated", "context": {"retrieval_mode": "hybrid", "quote_fallback": False}}]
    files = asyncio.run(run_suite(suite(configurations=gated), env))
    records = {r["id"]: r for r in read_records(files["gated"])}
    q3 = records["q3"]
    assert q3["verdict"] == "refuse" and q3["refused"] is True and q3["attempts"] == 2
    assert q3["draft"] == "Bananas are blue [1]."  # the last attempt's draft, not both attempts joined
    assert records["q4"]["draft"] == REPLIES["q4"]  # a refusal by the model itself
    assert all("draft" not in r for r in records.values() if r["verdict"] != "refuse")


def test_a_draft_the_gate_withholds_is_replaced_by_the_source_sentence_that_answers(env: Path) -> None:
    use_model(replies={**REPLIES, "q3": "Bananas are blue [1]."})
    gated = [{"name": "gated", "context": {"retrieval_mode": "hybrid"}}]
    files = asyncio.run(run_suite(suite(configurations=gated), env))
    records = {r["id"]: r for r in read_records(files["gated"])}
    q3 = records["q3"]
    assert q3["verdict"] == "quote" and q3["refused"] is False and q3["draft"] == "Bananas are blue [1]."
    assert q3["answer"].startswith('The passage closest to your question says: "The Amazon river flows east')
    assert 'Atlantic Ocean." [1]' in q3["answer"]
    assert q3["containment"] == 1.0
    assert "answered with the source sentence closest to the question" in q3["reasons"]
    row = summarize(read_records(files["gated"]), suite())
    assert row["quoted"] == 0.25 and row["false_refusal"] < 0.5


def test_a_failed_turn_is_recorded_not_raised(env: Path) -> None:
    def boom() -> None:
        raise RuntimeError("model down")

    use_model(on_call=boom)
    files = asyncio.run(run_suite(suite(), env, limit=1))
    (record,) = read_records(files["hybrid"])
    assert record["error"] == "RuntimeError: model down"
    assert record["ndcg@10"] == 1.0  # retrieval metrics are still recorded
    assert summarize([record], suite())["errors"] == 1


def test_a_failed_turn_runs_again_on_resume_and_its_new_record_counts(env: Path) -> None:
    failing = True

    def flaky() -> None:
        if failing:
            raise RuntimeError("stream cut")

    model = use_model(on_call=flaky)
    files = asyncio.run(run_suite(suite(), env, limit=2, configs=["hybrid"]))
    assert [r["error"] for r in read_records(files["hybrid"])] == ["RuntimeError: stream cut"] * 2

    failing = False
    model.calls.clear()
    files = asyncio.run(run_suite(suite(), env, limit=3, configs=["hybrid"]))
    assert sorted(model.calls) == ["q1", "q2", "q3"]  # the failed two again, and the new one
    assert len(lines_of(files["hybrid"])) == 5  # the failed records stay in the file, superseded
    records = read_records(files["hybrid"])
    assert [r["id"] for r in records] == ["q1", "q2", "q3"]
    assert all("error" not in r and r["answer"] for r in records)
    assert summarize(records, suite())["errors"] == 0

    model.calls.clear()
    asyncio.run(run_suite(suite(), env, limit=3, configs=["hybrid"]))
    assert model.calls == []  # nothing failed this time: nothing to run again


# --- resuming and locking -------------------------------------------------------------------------


def test_resume_skips_recorded_questions(env: Path) -> None:
    model = use_model()
    progress: list[tuple[str, int, int]] = []
    files = asyncio.run(run_suite(suite(), env, lambda *a: progress.append(a), limit=2))
    assert sorted(model.calls) == ["q1", "q1", "q2", "q2"]
    assert ("hybrid", 2, 2) in progress and ("bm25", 2, 2) in progress
    first = {name: lines_of(path) for name, path in files.items()}
    assert all(len(lines) == 2 for lines in first.values())

    model.calls.clear()
    files = asyncio.run(run_suite(suite(), env))
    assert sorted(model.calls) == ["q3", "q3", "q4", "q4"]  # q1, q2 not recomputed
    for name, path in files.items():
        lines = lines_of(path)
        assert len(lines) == 4
        assert lines[:2] == first[name]  # untouched, byte for byte
        assert [json.loads(line)["id"] for line in lines] == ["q1", "q2", "q3", "q4"]

    model.calls.clear()
    asyncio.run(run_suite(suite(), env))
    assert model.calls == []
    assert all(len(lines_of(path)) == 4 for path in files.values())


def test_a_finished_run_refreshes_without_ingesting(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Committed baseline records copied to a fresh machine report at once: no corpus to embed first."""
    use_model()
    first = asyncio.run(run_suite(suite(), env))
    before = {name: path.read_bytes() for name, path in first.items()}

    def no_ingest(*args: Any) -> None:
        raise AssertionError("a finished run ingested its corpus")

    monkeypatch.setattr(runner, "build_kb", no_ingest)
    assert asyncio.run(run_suite(suite(), env)) == first
    assert {name: path.read_bytes() for name, path in first.items()} == before
    assert len(read_records(first["hybrid"])) == 4
    # one question short of finished: the knowledge base is needed again
    first["bm25"].write_bytes(b"".join(before["bm25"].splitlines(keepends=True)[:3]))
    with pytest.raises(AssertionError, match="ingested"):
        asyncio.run(run_suite(suite(), env))


def test_resume_with_other_suite_settings_is_refused_and_keeps_the_records(env: Path) -> None:
    use_model()
    files = asyncio.run(run_suite(suite(), env, limit=2))
    before = {name: lines_of(path) for name, path in files.items()}
    changed_context = [
        {"name": "hybrid", "context": {"retrieval_mode": "dense", "quality_gate": False}},
        SUITE["configurations"][1],
    ]
    for changes, field in (
        ({"negatives": 2}, "negatives"),
        ({"model": {"condense_with_llm": True}}, "model"),
        ({"configurations": changed_context}, "configurations[hybrid].context"),
    ):
        with pytest.raises(ZhiwenError, match=re.escape(field) + r".*choose another --out"):
            asyncio.run(run_suite(suite(**changes), env))
    assert {name: lines_of(path) for name, path in files.items()} == before  # nothing lost or added
    # floors and new configurations do not change what the old records mean
    extra = [*SUITE["configurations"], {"name": "dense", "context": {"retrieval_mode": "dense"}}]
    asyncio.run(run_suite(suite(floors={"hybrid": {"recall@10": 0.5}}, configurations=extra), env, limit=2))


def test_a_run_refused_before_any_record_does_not_lock_the_folder(env: Path) -> None:
    use_model()
    typo = [{"name": "hybrid", "context": {"retrieval_mod": "bm25"}}]
    with pytest.raises(ZhiwenError, match="retrieval_mod"):
        asyncio.run(run_suite(suite(configurations=typo, model={"condense_with_llm": True}), env))
    assert not (env / "suite.json").exists()  # refused before it wrote anything
    bad_value = [{"name": "hybrid", "context": {"retrieval_mode": "bm-25", "top_k": "three"}}]
    with pytest.raises(
        ZhiwenError, match=r"configuration hybrid: top_k: .*integer.*retrieval_mode: .*'bm25'"
    ):
        asyncio.run(run_suite(suite(configurations=bad_value), env))
    assert not (env / "suite.json").exists()
    # a suite.json left with no records (an older run interrupted in its ingest) does not lock either
    env.mkdir(parents=True, exist_ok=True)
    (env / "suite.json").write_text(suite(negatives=2).model_dump_json(), encoding="utf-8")
    files = asyncio.run(run_suite(suite(), env, limit=1))
    assert all(len(lines_of(path)) == 1 for path in files.values())


def test_chosen_configurations_run_alone_and_the_rest_later(env: Path) -> None:
    model = use_model()
    files = asyncio.run(run_suite(suite(), env, limit=2, configs=["bm25"]))
    assert set(files) == {"bm25"}
    assert sorted(model.calls) == ["q1", "q2"]
    assert not (env / "records" / "hybrid.jsonl").exists()
    saved = json.loads((env / "suite.json").read_text(encoding="utf-8"))
    assert [c["name"] for c in saved["configurations"]] == ["hybrid", "bm25"]  # the whole suite is kept

    model.calls.clear()
    files = asyncio.run(run_suite(suite(), env, limit=2))
    assert sorted(model.calls) == ["q1", "q2"]  # only hybrid was missing
    assert all(len(lines_of(path)) == 2 for path in files.values())


def test_an_unknown_configuration_is_named_in_the_error(env: Path) -> None:
    use_model()
    with pytest.raises(ZhiwenError, match=r"no configuration dense \(it has: hybrid, bm25\)"):
        asyncio.run(run_suite(suite(), env, configs=["dense"]))
    only = suite(floors={"hybrid": {"recall@10": 0.5}, "bm25": {"recall@10": 0.5}}).only(["bm25"])
    assert [c.name for c in only.configurations] == ["bm25"] and list(only.floors) == ["bm25"]


def test_a_line_cut_by_an_interruption_is_run_again(env: Path) -> None:
    model = use_model()
    files = asyncio.run(run_suite(suite(), env, limit=2))
    path = files["hybrid"]
    kept = lines_of(path)[0]
    path.write_text(kept + "\n" + lines_of(path)[1][:25], encoding="utf-8")  # q2's line cut short
    model.calls.clear()
    asyncio.run(run_suite(suite(), env, limit=2))
    assert model.calls == ["q2"]
    assert [r["id"] for r in read_records(path)] == ["q1", "q2"]


def test_a_resume_with_another_model_is_refused(env: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    use_model()
    files = asyncio.run(run_suite(suite(), env, limit=1))
    (record,) = read_records(files["hybrid"])
    assert record["answered_by"] == f"embedded {get_settings().local_model}"
    before = lines_of(files["hybrid"])
    monkeypatch.setenv("ZHIWEN_LLM_BASE_URL", "http://gpu:8000/v1/")
    monkeypatch.setenv("ZHIWEN_LLM_MODEL", "qwen-72b")
    get_settings.cache_clear()
    with pytest.raises(
        ZhiwenError, match=r"answered by embedded .* would use qwen-72b at http://gpu:8000/v1 "
    ):
        asyncio.run(run_suite(suite(), env, limit=2))
    assert lines_of(files["hybrid"]) == before


def test_a_whole_last_record_without_its_newline_is_kept(env: Path) -> None:
    model = use_model()
    files = asyncio.run(run_suite(suite(), env, limit=2))
    path = files["hybrid"]
    path.write_text(path.read_text(encoding="utf-8").rstrip("\n"), encoding="utf-8")  # as an editor saves it
    model.calls.clear()
    asyncio.run(run_suite(suite(), env, limit=2))
    assert model.calls == [], "the last record was deleted and its question run again"
    assert path.read_text(encoding="utf-8").endswith("\n") and len(lines_of(path)) == 2


def test_records_holding_unicode_line_separators_are_read_once(env: Path) -> None:
    # json.dumps(ensure_ascii=False) leaves U+2028, U+2029 and \x85 as they are; splitlines() broke there.
    path = env / "records" / "hybrid.jsonl"
    path.parent.mkdir(parents=True)
    answers = {"q1": "1889\u2028completed.", "q2": "3776\x85metres", "q3": "Atlantic\u2029Ocean"}
    path.write_text(
        "".join(json.dumps({"id": q, "answer": a}, ensure_ascii=False) + "\n" for q, a in answers.items()),
        encoding="utf-8",
    )
    assert {r["id"]: r["answer"] for r in read_records(path)} == answers
    assert runner._done_ids(path) == set(answers)


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_records_without_a_readable_suite_json_are_not_resumed(env: Path, damage: str) -> None:
    use_model()
    files = asyncio.run(run_suite(suite(), env, limit=1))
    saved = env / "suite.json"
    if damage == "delete":
        saved.unlink()
    else:
        saved.write_text(saved.read_text(encoding="utf-8")[:40], encoding="utf-8")
    before = {name: lines_of(path) for name, path in files.items()}
    with pytest.raises(ZhiwenError, match=r"suite\.json.*missing or unreadable.*choose another --out"):
        asyncio.run(run_suite(suite(negatives=2), env, limit=2))
    assert {name: lines_of(path) for name, path in files.items()} == before


def test_a_concurrent_run_into_the_same_folder_is_refused(env: Path) -> None:
    errors: list[BaseException] = []

    def second_run() -> None:
        try:
            asyncio.run(run_suite(suite(), env))
        except BaseException as exc:  # collected for the assertion below
            errors.append(exc)

    def start_second_run_once() -> None:
        if not errors and not started:
            started.append(True)
            thread = threading.Thread(target=second_run)
            thread.start()
            thread.join(timeout=60)

    started: list[bool] = []
    model = use_model(on_call=start_second_run_once)
    asyncio.run(run_suite(suite(), env, limit=1))
    assert started and len(errors) == 1
    assert isinstance(errors[0], ZhiwenError)
    assert str(env) in str(errors[0]) and "another `zhiwen eval`" in str(errors[0])
    assert model.calls == ["q1", "q1"]  # the second run did nothing
    # the lock is released when a run ends: the next run resumes
    model.on_call = None
    asyncio.run(run_suite(suite(), env))
    assert sorted(model.calls) == sorted(["q1", "q1"] + ["q2", "q3", "q4"] * 2)


def test_an_out_path_that_is_a_file_is_a_zhiwen_error(env: Path) -> None:
    env.write_text("not a folder", encoding="utf-8")
    with pytest.raises(ZhiwenError, match="cannot write the run"):
        asyncio.run(run_suite(suite(), env))


# --- summary and limits -----------------------------------------------------------------------------


@pytest.fixture
def summary(env: Path) -> dict[str, dict[str, Any]]:
    use_model()
    files = asyncio.run(run_suite(suite(), env))
    return {name: summarize(read_records(path), suite()) for name, path in files.items()}


def test_summary_values(summary: dict[str, dict[str, Any]]) -> None:
    for row in summary.values():
        assert (row["questions"], row["negatives"], row["errors"]) == (4, 1, 0)
        # retrieval means over the 3 answerable questions only (the negative's 0 is left out)
        assert row["ndcg@10"] == row["recall@10"] == row["mrr@10"] == 1.0
        assert row["em"] == round(1 / 3, 4)
        assert row["f1"] == round((1 + 0.5 + 2 / 7) / 3, 4)
        assert row["containment"] == round(2 / 3, 4)
        assert row["correct_refusal"] == 1.0
        assert row["false_refusal"] == 0.0
        assert row["think_leaks"] == 0
        assert row["latency_p50_s"] is not None and row["latency_p95_s"] >= row["latency_p50_s"]
        assert row["ttft_p50_s"] is not None
        assert row["retrieval_p50_s"] is not None and row["generation_p50_s"] is not None


def test_percentiles_are_nearest_rank() -> None:
    records = [{"answer": "x", "total_s": float(v), "timings": {}} for v in range(1, 21)]  # 1..20 s
    row = summarize(records, suite())
    assert (row["latency_p50_s"], row["latency_p95_s"]) == (10.0, 19.0)
    one = summarize(records[:1], suite())
    assert (one["latency_p50_s"], one["latency_p95_s"]) == (1.0, 1.0)


def test_rescore_applies_todays_metric_definitions_to_stored_answers() -> None:
    stale = {"id": "q", "answer": "It opened in 1889 [1].", "gold": ["1"], "negative": False,
             "em": 0.0, "f1": 0.0, "containment": 1.0}  # fmt: skip
    negative = {"id": "n", "answer": "1", "gold": ["1"], "negative": True}
    unanswered = {"id": "e", "error": "boom", "gold": ["1"], "negative": False}
    fresh, neg, err = rescore([stale, negative, unanswered], suite())
    assert fresh["containment"] == 0.0 and fresh["f1"] == 0.0  # "1" is not in "1889"; the [1] is a citation
    assert neg == negative and err == unanswered
    assert stale["containment"] == 1.0  # the stored record is not changed


def test_a_partial_run_skips_the_metrics_it_did_not_measure(summary: dict[str, dict[str, Any]]) -> None:
    unmeasured = {name: {**row, "correct_refusal": None} for name, row in summary.items()}
    limits = suite(floors={"hybrid": {"correct_refusal": 0.5, "em": 0.5}})
    assert check_limits(unmeasured, limits, partial=True) == ["hybrid: em = 0.3333 is below the floor 0.5"]
    assert len(check_limits(unmeasured, limits)) == 2  # a whole run must measure every floored metric


def test_check_limits(summary: dict[str, dict[str, Any]]) -> None:
    ok = suite(
        floors={"hybrid": {"ndcg@10": 0.9, "containment": 0.6}, "bm25": {"correct_refusal": 1.0}},
        ceilings={"hybrid": {"think_leaks": 0, "false_refusal": 0.0, "errors": 0}},
    )
    assert check_limits(summary, ok) == []
    strict = suite(
        floors={"hybrid": {"em": 0.5, "ndcg@10": 1.0}, "bm25": {"no_such_metric": 0.1}},
        ceilings={"hybrid": {"containment": 0.5}},
    )
    assert check_limits(summary, strict) == [
        "hybrid: em = 0.3333 is below the floor 0.5",
        "bm25: no_such_metric = None is below the floor 0.1",
        "hybrid: containment = 0.6667 is above the ceiling 0.5",
    ]  # a limit under a name no configuration has is refused when the suite loads


class _ChunkedKB:
    """A knowledge base whose chunk ranking is fixed: ``doc_ids`` in order, one entry per chunk."""

    def __init__(self, doc_ids: list[str]) -> None:
        self.doc_ids = doc_ids
        self.calls: list[int] = []

    def search(self, query: str, top_k: int, **_: Any) -> list[Any]:
        self.calls.append(top_k)
        return [SimpleNamespace(doc_id=d) for d in self.doc_ids[:top_k]]


def test_ranking_reaches_k_documents_past_a_many_chunk_document() -> None:
    from zhiwen.evals.runner import _ranking
    from zhiwen.graph.context import Context

    # "long" fills the first 7 chunk places: 2k = 6 chunks would hold one document, not k = 3
    kb = _ChunkedKB(["long"] * 7 + ["a", "long", "b", "c", "d"])
    q = SimpleNamespace(text="q")
    assert _ranking(kb, q, Context(), 3) == ["long", "a", "b"]  # type: ignore[arg-type]
    assert kb.calls == [6, 12]


def test_ranking_of_single_chunk_documents_searches_once() -> None:
    from zhiwen.evals.runner import _ranking
    from zhiwen.graph.context import Context

    kb = _ChunkedKB([f"d{i}" for i in range(50)])
    assert _ranking(kb, SimpleNamespace(text="q"), Context(), 10) == [f"d{i}" for i in range(10)]  # type: ignore[arg-type]
    assert kb.calls == [20]
    short = _ChunkedKB(["x", "x", "y"])  # the whole corpus holds fewer than k documents: no endless doubling
    assert _ranking(short, SimpleNamespace(text="q"), Context(), 10) == ["x", "y"]  # type: ignore[arg-type]
    assert short.calls == [20]
