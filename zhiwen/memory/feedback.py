"""Ratings of answers (👍/👎 and a comment), kept with the turn they rate, and written out as an eval dataset.

Each rating stores what a later regression test needs: the question as the graph understood it, the answer,
the numbered sources (their text too, so the export does not depend on the knowledge base still holding
them) and the quality verdict. In ``ZHIWEN_HOME/feedback.sqlite``, or the shared database's ``zhiwen_feedback``
with ``ZHIWEN_DATABASE_URL``.

``export_dataset`` writes the rated turns in the BEIR layout ``zhiwen eval`` reads (corpus, queries, qrels,
answers) plus a suite file, so a complaint becomes a question that runs in every later evaluation.
"""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from zhiwen.errors import ZhiwenError
from zhiwen.memory.small_store import Sql, open_sql
from zhiwen.settings import Settings
from zhiwen.tools.language import detect_language

__all__ = ["Feedback", "FeedbackStore", "Rating", "export_dataset", "open_feedback_store"]

Rating = Literal["up", "down"]

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS feedback (id TEXT PRIMARY KEY, created REAL NOT NULL, owner TEXT NOT NULL, "
    "rating TEXT NOT NULL, body TEXT NOT NULL)"
)


@dataclass
class Feedback:
    """One rating of one answer."""

    thread_id: str
    rating: Rating
    question: str
    answer: str
    comment: str = ""
    kb: str = ""
    verdict: str = ""
    sources: list[dict[str, Any]] = field(default_factory=list)
    """``n``, ``id``, ``source`` (the file's name), ``title`` and ``text`` of each numbered source."""
    id: str = field(default_factory=lambda: uuid.uuid4().hex)
    created: float = field(default_factory=time.time)


class FeedbackStore:
    """Blocking: from an event loop, call it in a worker thread."""

    def __init__(self, path: Path, database_url: str | None = None) -> None:
        self._sql: Sql = open_sql(path, database_url, _SCHEMA, ("feedback",))

    def close(self) -> None:
        self._sql.close()

    def add(self, item: Feedback, owner: str) -> None:
        self._sql.rows(
            "INSERT INTO feedback VALUES (?, ?, ?, ?, ?)",
            (item.id, item.created, owner, item.rating, json.dumps(asdict(item), ensure_ascii=False)),
        )

    def rated(self, rating: Rating | None = None) -> list[Feedback]:
        """The ratings (or those of one kind), oldest first: a rater's latest of each answer.

        Every press is stored, but a rater who pressed 👍 three times and then 👎 on one answer meant 👎 once:
        exported as they were, the four became four regression questions, two expecting the answer and two
        not. Filtering by kind comes after, so an answer re-rated 👎 is not exported among the 👍.
        """
        latest: dict[tuple[str, str, str, str], Feedback] = {}
        for owner, body in self._sql.rows("SELECT owner, body FROM feedback ORDER BY created"):
            item = Feedback(**json.loads(body))
            key = (owner, item.thread_id, item.question, item.answer)
            latest.pop(key, None)  # re-inserted: the order is that of each rater's last word
            latest[key] = item
        return [item for item in latest.values() if rating is None or item.rating == rating]


def open_feedback_store(settings: Settings) -> FeedbackStore:
    return FeedbackStore(settings.home / "feedback.sqlite", settings.database_url)


def _gold(item: Feedback) -> list[str]:
    """What a right answer must hold: the rater's comment when they wrote one (a 👎 with the correction),
    else a 👍 answer as given; a 👎 without a comment has none (it is still run, for retrieval and review)."""
    if item.comment.strip():
        return [item.comment.strip()]
    return [item.answer.strip()] if item.rating == "up" and item.answer.strip() else []


def export_dataset(items: list[Feedback], out: Path, name: str) -> int:
    """Write ``items`` to ``out`` as a BEIR dataset and ``out/suite.yaml``; the number of questions written.

    The corpus is the rated turns' sources (deduplicated by chunk id), so the suite runs anywhere, without
    the knowledge base they came from; each question's sources are its relevant passages.
    """
    if out.exists() and not out.is_dir():
        raise ZhiwenError(f"{out} is a file: choose a new folder for the export")
    if out.exists() and any(out.iterdir()):
        raise ZhiwenError(f"{out} is not empty: choose a new folder (an export never overwrites one)")
    if not items:
        raise ZhiwenError("no rated answers to export (POST /v1/feedback stores them)")
    (out / "qrels").mkdir(parents=True, exist_ok=True)
    corpus: dict[str, dict[str, str]] = {}
    queries, answers, qrels = [], [], ["query-id\tcorpus-id\tscore"]
    for item in items:
        for s in item.sources:
            corpus.setdefault(str(s["id"]), {"_id": str(s["id"]), "title": str(s.get("title", "")),
                                             "text": str(s["text"])})  # fmt: skip
            qrels.append(f"{item.id}\t{s['id']}\t1")
        queries.append({"_id": item.id, "text": item.question, "rating": item.rating, "comment": item.comment,
                        "rated_answer": item.answer, "verdict": item.verdict, "kb": item.kb})  # fmt: skip
        answers.append({"_id": item.id, "answers": _gold(item)})

    def jsonl(rows: list[dict[str, Any]]) -> str:
        return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)

    (out / "corpus.jsonl").write_text(jsonl(list(corpus.values())), encoding="utf-8")
    (out / "queries.jsonl").write_text(jsonl(queries), encoding="utf-8")
    (out / "answers.jsonl").write_text(jsonl(answers), encoding="utf-8")
    (out / "qrels" / "test.tsv").write_text("\n".join(qrels) + "\n", encoding="utf-8")
    suite = {
        "name": name,
        "description": f"{len(items)} rated answers exported by `zhiwen feedback export`",
        "dataset": "./",
        "language": "zh"
        if sum(detect_language(i.question) == "zh" for i in items) * 2 > len(items)
        else "en",
        "corpus": "full",
        "configurations": [{"name": "hybrid", "context": {"retrieval_mode": "hybrid"}}],
    }
    (out / "suite.yaml").write_text(json.dumps(suite, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    return len(items)
