"""Labelled counters start at 0 for every known label value, so the first event shows in rate()/increase()."""

from __future__ import annotations

from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families

from zhiwen.server.metrics import Metrics, refusal_reason, upstream_kind


def _samples(metrics: Metrics) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = generate_latest(metrics.registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_the_alerted_counters_are_exported_at_zero_before_any_event() -> None:
    m = _samples(Metrics())
    for name, label, values in (
        ("zhiwen_quality_verdicts_total", "verdict", ("pass", "quote", "refuse")),
        ("zhiwen_feedback_total", "rating", ("up", "down")),
        ("zhiwen_refusals_total", "reason", ("unsafe", "out_of_scope", "no_sources", "ungrounded", "other")),
        ("zhiwen_upstream_errors_total", "kind", ("timeout", "connection", "server_error", "rate_limited")),
        ("zhiwen_ingest_jobs_total", "status", ("done", "failed")),
    ):
        for value in values:
            assert m.get((name, ((label, value),))) == 0, (name, value)
    assert m.get(("zhiwen_quality_retries_total", ())) == 0
    for route, status in (("chat", "502"), ("chat_stream", "502"), ("chat", "429")):  # the 5xx and 429 alerts
        assert m.get(("zhiwen_requests_total", (("route", route), ("status", status)))) == 0, (route, status)


def test_every_label_the_helpers_can_return_is_one_started_at_zero() -> None:
    m = _samples(Metrics())
    reasons = {dict(labels)["reason"] for name, labels in m if name == "zhiwen_refusals_total"}
    kinds = {dict(labels)["kind"] for name, labels in m if name == "zhiwen_upstream_errors_total"}
    assert refusal_reason({}, {"label": "empty"}) in reasons
    assert refusal_reason({"reasons": ["the LLM judge vetoed it"]}, {}) in reasons
    assert refusal_reason({"unsafe_dropped": True}, {}) in reasons
    assert upstream_kind(TimeoutError()) in kinds and upstream_kind(ConnectionError()) in kinds
    assert upstream_kind(ValueError()) in kinds
