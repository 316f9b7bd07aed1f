"""Read a BEIR-layout dataset (corpus, queries, qrels, answers) and cut the part a suite asks for."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zhiwen.errors import ZhiwenError
from zhiwen.evals.retrieval_metrics import read_qrels_tsv
from zhiwen.evals.suite import Suite, datasets_root
from zhiwen.memory.documents import Document
from zhiwen.memory.loaders import load_path

__all__ = ["LAYOUT", "EvalSet", "Question", "dataset_folder", "load_eval_set"]


@dataclass(frozen=True)
class Question:
    id: str
    text: str
    relevant: dict[str, int]
    answers: list[Any]
    negative: bool


@dataclass(frozen=True)
class EvalSet:
    documents: list[Document]
    questions: list[Question]


def _jsonl(path: Path) -> list[dict[str, Any]]:
    """The lines of a JSONL file, ``_id`` made a string (qrels ids are: ``1`` must find ``"1"``)."""
    with path.open(encoding="utf-8-sig") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    for n, row in enumerate(rows, 1):
        if not isinstance(row, dict) or "_id" not in row:
            raise ValueError(f"{path.name} line {n}: an object with an _id is expected")
        row["_id"] = str(row["_id"])
    return rows


def _answers(path: Path) -> dict[str, list[Any]]:
    """Gold answers by query id: a list of strings, or of lists of alternative strings (RGB slots).

    Checked here: a bare string would be scored letter by letter, and a number stopped a run mid-way.
    """
    answers = {}
    for row in _jsonl(path):
        gold = row.get("answers")
        if not isinstance(gold, list) or not all(
            isinstance(g, str) or (isinstance(g, list) and all(isinstance(a, str) for a in g)) for g in gold
        ):
            raise ValueError(
                f"{path.name}: answers of {row['_id']!r} must be a list of strings (or of lists of "
                f"alternative strings), got {json.dumps(gold, ensure_ascii=False)[:80]}"
            )
        answers[row["_id"]] = gold
    return answers


LAYOUT = "corpus.jsonl, queries.jsonl, qrels/test.tsv, answers.jsonl (BEIR layout, docs/evaluation.md)"


def dataset_folder(suite: Suite) -> Path:
    """The suite's BEIR folder; ``ZhiwenError`` saying where to get it and how to lay it out when missing."""
    folder = suite.dataset_path
    if not (folder / "corpus.jsonl").exists():
        where = f"get it from {suite.source}; " if suite.source else ""
        raise ZhiwenError(
            f"suite {suite.name} needs the dataset {suite.dataset!r} in {folder}, which has no corpus.jsonl: "
            f"{where}lay it out there as {LAYOUT}, or set ZHIWEN_DATASETS to the folder that holds "
            f"{Path(suite.dataset).name}/ (now {datasets_root()})"
        )
    return folder


def load_eval_set(suite: Suite) -> EvalSet:
    """The suite's questions and corpus.

    Negatives are the last ``suite.negatives`` questions, and their gold passages leave the corpus. A kept
    question that needs one of those passages is left out (it would have lost its answer too): on sets that
    ask several questions of one passage (XQuAD, CMRC) the run then has fewer questions than asked for.
    """
    folder = dataset_folder(suite)
    try:
        return _cut(suite, folder)
    except (OSError, ValueError, KeyError, TypeError) as exc:  # JSONDecodeError is a ValueError
        detail = (
            f"{exc.filename}: {exc.strerror}"
            if isinstance(exc, OSError) and exc.filename
            else f"{type(exc).__name__}: {exc}"
        )
        raise ZhiwenError(f"dataset {folder} is not readable as BEIR: {detail}") from exc


def _cut(suite: Suite, folder: Path) -> EvalSet:
    qrels = read_qrels_tsv((folder / "qrels" / "test.tsv").read_text(encoding="utf-8-sig").splitlines())
    answers = _answers(folder / "answers.jsonl") if (folder / "answers.jsonl").exists() else {}
    gold = {qid: {d for d, rel in judged.items() if rel > 0} for qid, judged in qrels.items()}
    # A query with no relevant passage says nothing about ranking (trec_eval leaves it out too).
    all_queries = _jsonl(folder / "queries.jsonl")
    seen: set[str] = set()
    for q in all_queries:
        if q["_id"] in seen:
            raise ValueError(f"queries.jsonl: query id {q['_id']!r} appears twice (it would be run twice)")
        seen.add(q["_id"])
    queries = [q for q in all_queries if gold.get(q["_id"])]
    if not queries:
        raise ValueError("no query in queries.jsonl has a relevant passage in qrels/test.tsv")
    chosen = queries[: suite.questions] if suite.questions else queries
    n_neg = min(suite.negatives, len(chosen))
    negative_ids = {q["_id"] for q in chosen[len(chosen) - n_neg :]} if n_neg else set()
    removed = {d for qid in negative_ids for d in gold[qid]}
    chosen = [q for q in chosen if q["_id"] in negative_ids or not gold[q["_id"]] & removed]
    docs = load_path(folder / "corpus.jsonl")
    if suite.corpus == "judged":
        wanted = {d for q in chosen for d in qrels[q["_id"]]}
        judged = [d for d in docs if d.id in wanted]
        others = [d for d in docs if d.id not in wanted]
        random.Random(0).shuffle(others)
        docs = judged + others[: suite.distractors]
    docs = [d for d in docs if d.id not in removed]
    questions = [
        Question(q["_id"], q["text"], qrels[q["_id"]], answers.get(q["_id"], []), q["_id"] in negative_ids)
        for q in chosen
    ]
    return EvalSet(docs, questions)
