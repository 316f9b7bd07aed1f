"""Prometheus metrics (prometheus_client), one registry per app so tests can build several apps.

Names follow Prometheus's conventions (``_seconds`` for durations, ``_total`` added to counters by the client).
What operators alert on is here: gate verdicts and refusal reasons, think leaks, upstream errors by kind,
ingestion jobs and the upload queue, beside the process and GC collectors. With ``--workers N`` each worker
keeps its own registry: ``zhiwen_worker_info`` says which worker (pid) answered a scrape.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.gc_collector import GCCollector
from prometheus_client.platform_collector import PlatformCollector
from prometheus_client.process_collector import ProcessCollector

__all__ = ["Metrics", "refusal_reason", "upstream_kind"]

# The client's *_created series (one timestamp gauge beside every counter and histogram) double the exposition
# for nothing a dashboard or alert reads.
disable_created_metrics()  # type: ignore[no-untyped-call]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)
_FAST = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)

# The gate's reasons (nodes/evaluate.py, nodes/refuse.py) by a phrase each holds, as a bounded label set.
_REASONS = (
    ("no sources", "no_sources"),
    ("model said", "model_declined"),
    ("sentences supported", "ungrounded"),
    ("topic terms", "off_topic"),
    ("next to the numbers", "unanchored"),
    ("language differs", "wrong_language"),
    ("think text", "think_leak"),
    ("broke off", "truncated"),
    ("repeats the prompt", "prompt_copied"),
    ("LLM judge", "judge"),
)


def refusal_reason(quality: Mapping[str, Any], intent: Mapping[str, Any]) -> str:
    """One label for why a turn was refused: the intent (unsafe, out_of_scope, empty) or the gate's first
    reason; ``unsafe_answer`` when the answer rules left nothing to say."""
    label = str(intent.get("label", ""))
    if label in ("unsafe", "out_of_scope", "empty"):
        return label
    for reason in quality.get("reasons") or []:
        for phrase, name in _REASONS:
            if phrase in str(reason):
                return name
    return "unsafe_answer" if quality.get("unsafe_dropped") else "other"


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        ProcessCollector(registry=r)
        GCCollector(registry=r)
        PlatformCollector(registry=r)
        Gauge("zhiwen_worker_info", "The worker process that answered this scrape", ["pid"],
              registry=r).labels(str(os.getpid())).set(1)  # fmt: skip
        self.requests = Counter("zhiwen_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram(
            "zhiwen_request_duration_seconds", "Request latency", ["route"], buckets=_LATENCY, registry=r
        )
        self.ttft = Histogram(
            "zhiwen_time_to_first_token_seconds", "Time to first token", buckets=_LATENCY, registry=r
        )
        self.tokens = Counter(
            "zhiwen_completion_tokens", "Answer tokens (the endpoint's usage, else estimated)", registry=r
        )
        self.prompt_tokens = Counter("zhiwen_prompt_tokens", "Prompt tokens sent to the model", registry=r)
        self.retrieval = Histogram(
            "zhiwen_retrieval_duration_seconds",
            "Retrieval latency: the whole stage (leg=total) and each leg (embed, bm25, dense)",
            ["leg"],
            buckets=_FAST,
            registry=r,
        )
        self.rerank = Histogram(
            "zhiwen_rerank_duration_seconds",
            "Rerank requests (failed ones included)",
            buckets=_FAST,
            registry=r,
        )
        self.rerank_fallbacks = Counter(
            "zhiwen_rerank_fallbacks",
            "Turns that kept the fused order: the reranker failed, by kind",
            ["kind"],
            registry=r,
        )
        self.verdicts = Counter(
            "zhiwen_quality_verdicts",
            "Quality gate verdicts, one per turn (its last)",
            ["verdict"],
            registry=r,
        )
        self.retries = Counter(
            "zhiwen_quality_retries", "Drafts the gate sent back for another attempt", registry=r
        )
        self.refusals = Counter("zhiwen_refusals", "Refused turns by reason", ["reason"], registry=r)
        self.think_leaks = Counter("zhiwen_think_leaks", "Answers whose think text leaked", registry=r)
        self.upstream_errors = Counter(
            "zhiwen_upstream_errors",
            "Turns failed by the model endpoint, by error kind",
            ["kind"],
            registry=r,
        )
        # One series per knowledge base and verdict: bases are created by admins (ZHIWEN_MAX_KBS_PER_KEY bounds
        # them), so the label's values stay few; per-base refusal rates are what operators compare.
        self.kb_turns = Counter(
            "zhiwen_kb_turns",
            "Chat turns by knowledge base and quality verdict",
            ["kb", "verdict"],
            registry=r,
        )
        self.answer_cache = Counter(
            "zhiwen_answer_cache",
            "Questions looked up in the answer cache, by result (hit, miss)",
            ["result"],
            registry=r,
        )
        self.cancelled = Counter("zhiwen_streams_cancelled", "Streams the client left early", registry=r)
        self.feedback = Counter("zhiwen_feedback", "Answers rated by users", ["rating"], registry=r)
        self.ingest_jobs = Counter(
            "zhiwen_ingest_jobs", "Upload jobs settled, by status (done, failed)", ["status"], registry=r
        )
        self.ingest_queue = Gauge("zhiwen_ingest_queue_depth", "Upload jobs queued or running", registry=r)
        self.ready = Gauge(
            "zhiwen_ready",
            "1 when /ready would answer 200 (checked at each scrape and each probe)",
            registry=r,
        )
        self._start_at_zero()

    def _start_at_zero(self) -> None:
        """Export every known label value at 0 from the start: a series born at 1 shows no increase, so
        rate() and increase() (dashboards, alerts) would miss the first refusal, failure or upstream error."""
        for verdict in ("pass", "refuse", "quote"):  # a turn never ends on "retry": zhiwen_quality_retries
            self.verdicts.labels(verdict)
        for route, status in (("chat", "200"), ("chat", "502"), ("chat_stream", "200"), ("chat_stream", "502"),
                              ("chat", "429"), ("chat_stream", "429"), ("chat", "401")):  # fmt: skip
            self.requests.labels(route, status)
        for rating in ("up", "down"):
            self.feedback.labels(rating)
        for reason in (
            "unsafe",
            "out_of_scope",
            "empty",
            *(name for _, name in _REASONS),
            "unsafe_answer",
            "other",
        ):
            self.refusals.labels(reason)
        for kind in ("timeout", "rate_limited", "server_error", "client_error", "connection", "other"):
            self.upstream_errors.labels(kind)
        for status in ("done", "failed"):
            self.ingest_jobs.labels(status)
        for result in ("hit", "miss"):
            self.answer_cache.labels(result)

    def watch_ingest_queue(self, depth: Callable[[], float]) -> None:
        """Read the upload queue's depth at each scrape."""
        self.ingest_queue.set_function(depth)

    def turn_finished(self, state: Mapping[str, Any], usage: Mapping[str, int], kb: str = "") -> None:
        """Count what a finished turn says about quality, retrieval and tokens (and its verdict per base)."""
        quality = state.get("quality") or {}
        verdict = str(quality.get("verdict", "none"))
        self.verdicts.labels(verdict).inc()
        if kb:
            self.kb_turns.labels(kb, verdict).inc()
        if verdict == "refuse":
            self.refusals.labels(refusal_reason(quality, state.get("intent") or {})).inc()
        self.retries.inc(max(0, int(quality.get("attempts") or 1) - 1))
        if quality.get("think_leak"):
            self.think_leaks.inc()
        timings = state.get("timings") or {}
        if "retrieval" in timings:
            self.retrieval.labels("total").observe(float(timings["retrieval"]))
        for leg in ("embed", "bm25", "dense"):
            if f"retrieval_{leg}" in timings:
                self.retrieval.labels(leg).observe(float(timings[f"retrieval_{leg}"]))
        for result in ("hit", "miss"):
            if f"answer_cache_{result}" in timings:
                self.answer_cache.labels(result).inc()
        if "rerank" in timings:
            self.rerank.observe(float(timings["rerank"]))
        for key in timings:
            if key.startswith("rerank_failed_"):
                self.rerank_fallbacks.labels(key.removeprefix("rerank_failed_")).inc()
        self.tokens.inc(max(0, int(usage.get("completion_tokens", 0))))
        self.prompt_tokens.inc(max(0, int(usage.get("prompt_tokens", 0))))


def upstream_kind(exc: BaseException | None) -> str:
    """A bounded label for why the model endpoint failed, from the error and the errors that caused it."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        name = type(exc).__name__
        status = getattr(exc, "status_code", None) or getattr(exc, "status", None)
        if isinstance(exc, TimeoutError) or "Timeout" in name:
            return "timeout"
        if isinstance(status, int):
            return "rate_limited" if status == 429 else ("server_error" if status >= 500 else "client_error")
        if "Connect" in name or isinstance(exc, ConnectionError):
            return "connection"
        exc = exc.__cause__ or exc.__context__
    return "other"
