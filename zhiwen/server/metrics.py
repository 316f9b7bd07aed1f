"""Prometheus metrics (prometheus_client), one registry per app so tests can build several apps."""

from __future__ import annotations

from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, Counter, Histogram

__all__ = ["Metrics"]

_LATENCY = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80)


@dataclass
class Metrics:
    registry: CollectorRegistry = field(default_factory=CollectorRegistry)

    def __post_init__(self) -> None:
        r = self.registry
        self.requests = Counter("zhiwen_requests", "HTTP requests", ["route", "status"], registry=r)
        self.latency = Histogram(
            "zhiwen_request_seconds", "Request latency", ["route"], buckets=_LATENCY, registry=r
        )
        self.ttft = Histogram(
            "zhiwen_time_to_first_token_seconds", "Time to first token", buckets=_LATENCY, registry=r
        )
        self.tokens = Counter("zhiwen_tokens_streamed", "Answer tokens streamed", registry=r)
        self.retrieval = Histogram(
            "zhiwen_retrieval_seconds", "Retrieval latency", buckets=_LATENCY, registry=r
        )
        self.verdicts = Counter("zhiwen_quality_verdicts", "Quality gate verdicts", ["verdict"], registry=r)
        self.feedback = Counter("zhiwen_feedback", "Answers rated by users", ["rating"], registry=r)
        self.cancelled = Counter("zhiwen_streams_cancelled", "Streams the client left early", registry=r)
