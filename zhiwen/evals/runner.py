"""Run a suite: build its knowledge base, run the real graph on every question, record, summarise.

Records are appended one JSON line per question and configuration, so an interrupted run resumes
where it stopped. Passage vectors come from the shared embedding cache, so re-runs do not re-embed.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from zhiwen.errors import ZhiwenError
from zhiwen.evals.answer_metrics import score_answer
from zhiwen.evals.dataset import EvalSet, Question, dataset_folder, load_eval_set
from zhiwen.evals.retrieval_metrics import dedupe, mrr_at_k, ndcg_at_k, recall_at_k
from zhiwen.evals.suite import Suite
from zhiwen.evals.summary import read_records
from zhiwen.graph.builder import build
from zhiwen.graph.context import Context
from zhiwen.memory.ingest import ingest_documents
from zhiwen.memory.kb import KnowledgeBase
from zhiwen.memory.registry import open_kb
from zhiwen.settings import get_settings
from zhiwen.tools.grounding import is_refusal
from zhiwen.turns import stream_turn

__all__ = ["Progress", "build_kb", "run_suite"]

Progress = Callable[[str, int, int], None]


def build_kb(suite: Suite, data: EvalSet, progress: Progress | None = None) -> KnowledgeBase:
    """The suite's knowledge base, named after its documents so a changed corpus gets a new one."""
    digest = hashlib.sha1("\n".join(sorted(d.id for d in data.documents)).encode()).hexdigest()[:10]
    kb = open_kb(f"eval-{suite.name}-{digest}", create=True)
    ingest_documents(
        kb, data.documents, progress=(lambda d, t: progress("ingest", d, t)) if progress else None
    )
    return kb


def _ranking(kb: KnowledgeBase, q: Question, ctx: Context, k: int) -> list[str]:
    """The first ``k`` documents of the chunk ranking (a document ranks where its best chunk does).

    Starts from ``2k`` chunks and doubles while the chunks hold fewer than ``k`` documents and more are
    left: a long document split into many chunks would otherwise crowd others out of the ranking and
    understate Recall@k (SciFact has abstracts of 5-11 chunks). Corpora of one chunk per document never
    search twice.
    """
    chunks = k * 2
    while True:
        hits = kb.search(
            q.text, top_k=chunks, mode=ctx.retrieval_mode,
            weights={"bm25": ctx.bm25_weight, "dense": ctx.dense_weight}, rrf_k=ctx.rrf_k, candidates=chunks,
            fusion=ctx.fusion,
        )  # fmt: skip
        docs = dedupe(h.doc_id for h in hits)
        if len(docs) >= k or len(hits) < chunks:
            return docs[:k]
        chunks *= 2


async def _answer(graph: Any, q: Question, ctx: Context) -> dict[str, Any]:
    ttft = None
    streamed: list[str] = []
    attempt_text: list[str] = []  # the current attempt's draft (the output state does not carry drafts)
    final: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        async for event in stream_turn(graph, q.text, ctx):
            if event.kind == "token":
                ttft = event.elapsed if ttft is None else ttft
                streamed.append(event.text)
                attempt_text.append(event.text)
            elif event.kind == "retry":
                attempt_text.clear()
            elif event.kind == "final":
                final = event.state
    except Exception as exc:  # a failed turn is a recorded result, not a crashed run
        return {"error": f"{type(exc).__name__}: {exc}", "total_s": time.perf_counter() - start}
    answer = str(final.get("answer", ""))
    quality = final.get("quality", {})
    draft = "".join(attempt_text).strip()
    return {
        "answer": answer,
        # what the model wrote before the gate replaced it with a refusal: the evidence for a false refusal
        # (or replaced with a quote of the closest source sentence, verdict "quote")
        **({"draft": draft} if quality.get("verdict") in ("refuse", "quote") and draft else {}),
        "verdict": quality.get("verdict"),
        "grounded": quality.get("grounded"),
        "citations_valid": quality.get("citations_valid"),
        "anchored": quality.get("anchored"),
        "figures_on_topic": quality.get("figures_on_topic"),
        # kept per record so a source_relevance_threshold can be tried on a finished run's records
        "source_relevance": quality.get("source_relevance"),
        "attempts": quality.get("attempts"),
        "reasons": list(quality.get("reasons") or []),  # why the gate retried or refused
        "refused": quality.get("verdict") == "refuse" or is_refusal(answer),
        "think_leak": int(
            any(tag in text for tag in ("<think>", "</think>") for text in (answer, "".join(streamed)))
        ),
        "sources": [
            {"n": s["n"], "doc_id": s["doc_id"], "text": s["text"][:300]} for s in final.get("sources", [])
        ],
        "intent": final.get("intent", {}).get("label"),
        "timings": final.get("timings", {}),
        "ttft_s": ttft,
        "total_s": time.perf_counter() - start,
    }


def _score(suite: Suite, q: Question, ranking: list[str], result: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "ndcg@10": ndcg_at_k(ranking, q.relevant, 10),
        "recall@10": recall_at_k(ranking, q.relevant, 10),
        f"recall@{suite.retrieval_k}": recall_at_k(ranking, q.relevant, suite.retrieval_k),
        "mrr@10": mrr_at_k(ranking, q.relevant, 10),
    }
    if "answer" in result and q.answers and not q.negative:
        rec |= score_answer(result["answer"], q.answers, suite.language, suite.answer_style == "slots")
    return rec


def _done_ids(path: Path) -> set[str]:
    if not path.exists():
        return set()
    with path.open("rb+") as f:  # drop a last line cut by an interruption, so appends start on a new line
        data = f.read()
        if data and not data.endswith(b"\n"):
            tail = data[data.rfind(b"\n") + 1 :]
            try:
                json.loads(tail)
            except ValueError:
                f.truncate(data.rfind(b"\n") + 1)
            else:
                f.write(b"\n")  # a whole record without its newline (an edited file): kept
    # A turn that failed (endpoint down, stream cut) says nothing about answer quality: it runs again, and its
    # new record supersedes the failed one (read_records keeps the last record of each question).
    return {r["id"] for r in read_records(path) if "id" in r and "error" not in r}


async def run_suite(
    suite: Suite,
    out: Path,
    progress: Progress | None = None,
    limit: int | None = None,
    configs: list[str] | None = None,
) -> dict[str, Path]:
    """Run every configuration (or only ``configs``); returns the records file of each run.

    Already-recorded questions are skipped. The saved ``suite.json`` always holds the whole suite, so a later
    run of the other configurations is checked against the same settings.
    """
    dataset_folder(suite)  # a missing dataset is refused before the output folder is made
    try:
        out.mkdir(parents=True, exist_ok=True)
        lock = (out / ".lock").open("w")
    except OSError as exc:
        raise ZhiwenError(f"cannot write the run to {out}: {exc}") from exc
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError as exc:
        lock.close()
        raise ZhiwenError(
            f"another `zhiwen eval` is writing to {out}; wait for it or choose another --out"
        ) from exc
    try:
        return await _run(suite, out, progress, limit, configs)
    finally:
        lock.close()


# What decides a record: a change in any of these makes old records incomparable with new ones.
_RECORD_FIELDS = ("dataset", "language", "questions", "corpus", "distractors", "negatives", "answer_style",
                  "answers", "retrieval_k", "model")  # fmt: skip


def _check_resumable(suite: Suite, out: Path) -> None:
    """Refuse to add records to ``out`` when its existing ones were made with other suite settings.

    Floors, ceilings, the description and new configurations may change; a configuration that already has
    records must keep its context.
    """
    saved = out / "suite.json"
    if not any(p.stat().st_size for p in (out / "records").glob("*.jsonl")):
        return  # no records yet: nothing to stay comparable with
    try:
        old = Suite.model_validate_json(saved.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ZhiwenError(
            f"{out} holds records but its suite.json, the settings they were made with, is missing or "
            f"unreadable ({type(exc).__name__}); choose another --out, or delete its records/ folder to start over"
        ) from exc
    changed = [f for f in _RECORD_FIELDS if getattr(old, f) != getattr(suite, f)]
    old_contexts = {c.name: c.context for c in old.configurations}
    for config in suite.configurations:
        recorded = (out / "records" / f"{config.name}.jsonl").exists()
        if recorded and config.name in old_contexts and old_contexts[config.name] != config.context:
            changed.append(f"configurations[{config.name}].context")
    if changed:
        raise ZhiwenError(
            f"{out} holds records made with other suite settings ({', '.join(changed)} changed); "
            "choose another --out, or delete its records/ folder to start over"
        )


async def _run(
    suite: Suite, out: Path, progress: Progress | None, limit: int | None, configs: list[str] | None
) -> dict[str, Path]:
    chosen = suite.only(configs) if configs else suite
    _check_resumable(suite, out)  # before any slow work, so a refused run costs nothing
    files = {c.name: out / "records" / f"{c.name}.jsonl" for c in chosen.configurations}
    for config in chosen.configurations:
        ctx = suite.context_of(
            config, suite.name
        )  # an unknown Context field is an error before the ingest, too
        if suite.answers and files[config.name].exists():
            _check_same_model(files[config.name], config.name, answered_by(ctx))
    data = load_eval_set(suite)
    questions = data.questions[:limit] if limit else data.questions
    done = {name: _done_ids(path) for name, path in files.items()}
    if questions and all(q.id in done[name] for name in files for q in questions):
        # Every question has its record (a finished run, or committed baseline records copied to a fresh
        # machine): only the reports are refreshed, so the corpus is not ingested (SciFact: ~1 h of embedding).
        return files
    kb = build_kb(suite, data, progress)
    graph = build().compile()
    (out / "records").mkdir(parents=True, exist_ok=True)
    saved = out / "suite.json.tmp"  # replaced whole: a cut write must not leave a suite that cannot be read
    saved.write_text(suite.model_dump_json(indent=2), encoding="utf-8")
    os.replace(saved, out / "suite.json")
    for config in chosen.configurations:
        path = files[config.name]
        ctx = suite.context_of(config, kb.name)
        with path.open("a", encoding="utf-8") as f:
            for i, q in enumerate(questions):
                if progress:
                    progress(config.name, i, len(questions))
                if q.id in done[config.name]:
                    continue
                ranking = _ranking(kb, q, ctx, suite.retrieval_k)
                result = (
                    {**await _answer(graph, q, ctx), "answered_by": answered_by(ctx)} if suite.answers else {}
                )
                record = {"id": q.id, "question": q.text, "gold": q.answers, "negative": q.negative,
                          "relevant": q.relevant, "ranking": ranking[:10], **result,
                          **_score(suite, q, ranking, result)}  # fmt: skip
                f.write(json.dumps(record, ensure_ascii=False) + "\n")
                f.flush()
            if progress:
                progress(config.name, len(questions), len(questions))
    return files


def answered_by(ctx: Context) -> str:
    """Which model answers under ``ctx`` (kept in each record): ZHIWEN_LLM_BASE_URL overrides a suite's
    ``local_model``, so a resume from another shell could otherwise mix two models' answers in one run."""
    settings = get_settings()
    if ctx.base_url:
        return f"{ctx.model or settings.llm_model or 'default'} at {ctx.base_url.rstrip('/')}"
    if settings.llm_base_url:
        return f"{ctx.model or settings.llm_model or 'default'} at {settings.llm_base_url.rstrip('/')}"
    return f"embedded {ctx.local_model or settings.local_model}"


def _check_same_model(path: Path, config: str, model: str) -> None:
    """Refuse to add answers by ``model`` to records answered by another (records before this was kept pass)."""
    others = {r["answered_by"] for r in read_records(path) if r.get("answered_by", model) != model}
    if others:
        raise ZhiwenError(
            f"the records of configuration {config} in {path.parent.parent} were answered by "
            f"{', '.join(sorted(others))}, but this run would use {model} (ZHIWEN_LLM_BASE_URL, "
            "ZHIWEN_LLM_MODEL?); use the same model, or choose another --out"
        )
