"""/metrics after real traffic: every series an operator's dashboard and alerts read is there and moved.

Parsed with prometheus_client's own text parser, as Prometheus would read it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from zhiwen.server.app import create_app

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.usefixtures("no_blocking_calls")]


def _samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def _value(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float], name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


def test_a_turns_quality_retrieval_tokens_failures_and_uploads_are_counted(
    env: Env, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    with kit.serve(create_app(kit.open_settings(gc_freeze=False), start_model=False)) as url:
        c = httpx.Client(base_url=url, timeout=60)
        assert c.post("/v1/chat/completions", json=kit.chat_body()).status_code == 200
        assert c.post("/v1/chat/completions", json=kit.chat_body(stream=True)).status_code == 200
        before = _samples(c.get("/metrics").text)
        unsafe = c.post("/v1/chat/completions", json=kit.chat_body("张三的身份证号是多少？"))
        assert unsafe.json()["quality"]["verdict"] == "refuse"
        assert unsafe.json()["usage"]["total_tokens"] == 0, "no model answered: no tokens were spent"
        after = _samples(c.get("/metrics").text)
        for tokens in ("zhiwen_prompt_tokens_total", "zhiwen_completion_tokens_total"):
            assert _value(after, tokens) == _value(before, tokens), tokens
        llm.default = kit.Script("Bananas are yellow and grow in Ecuador.")
        quoted = c.post("/v1/chat/completions", json=kit.chat_body())  # the fee's source sentence is quoted
        assert quoted.json()["quality"]["verdict"] == "quote"
        nothing_close = kit.chat_body("Which bank offers the cheapest mortgage in Ecuador?")
        assert c.post("/v1/chat/completions", json=nothing_close).json()["quality"]["verdict"] == "refuse"
        llm.default = kit.Script("never sent", status=500)
        assert c.post("/v1/chat/completions", json=kit.chat_body()).status_code == 502
        assert c.post("/v1/chat/completions", json=kit.chat_body(stream=True)).status_code == 502
        assert c.post("/v1/chat/completions", json={"model": kit.KB, "messages": "nope"}).status_code == 400
        assert c.get("/v1/threads/no-such-thread").status_code == 404
        assert c.get("/no/such/path").status_code == 404
        assert c.post("/v1/kbs", json={"name": "metrics-kb"}).status_code == 201
        upload = c.post("/v1/kbs/metrics-kb/documents?wait=true",
                        files=[("files", ("a.md", b"# A\n\nThe branch opens at nine.\n", "text/plain"))])  # fmt: skip
        assert upload.status_code == 201, upload.text
        metrics = c.get("/metrics")
        c.close()
    assert metrics.status_code == 200
    m = _samples(metrics.text)
    assert _value(m, "zhiwen_quality_verdicts_total", verdict="pass") == 2
    assert _value(m, "zhiwen_quality_verdicts_total", verdict="quote") == 1
    assert _value(m, "zhiwen_refusals_total", reason="unsafe") == 1
    assert sum(v for (name, labels), v in m.items() if name == "zhiwen_refusals_total") == 2
    assert _value(m, "zhiwen_upstream_errors_total", kind="server_error") == 2
    for leg in ("total", "embed", "bm25", "dense"):
        assert _value(m, "zhiwen_retrieval_duration_seconds_count", leg=leg) >= 3, leg
    assert _value(m, "zhiwen_completion_tokens_total") >= 2 * len(kit.ANSWER.split())
    assert _value(m, "zhiwen_prompt_tokens_total") > 0
    assert _value(m, "zhiwen_time_to_first_token_seconds_count") == 1
    assert _value(m, "zhiwen_request_duration_seconds_count", route="chat") >= 6
    # Every request is counted by what answered it, refused ones too, and a stream by its own route.
    assert _value(m, "zhiwen_requests_total", route="chat", status="502") == 1
    assert _value(m, "zhiwen_requests_total", route="chat_stream", status="502") == 1
    assert _value(m, "zhiwen_requests_total", route="chat_stream", status="200") == 1
    assert _value(m, "zhiwen_requests_total", route="chat", status="400") == 1
    assert _value(m, "zhiwen_requests_total", route="/v1/threads/{thread_id}", status="404") == 1
    assert _value(m, "zhiwen_requests_total", route="unmatched", status="404") == 1
    assert _value(m, "zhiwen_requests_total", route="/v1/kbs/{name}/documents", status="201") == 1
    assert _value(m, "zhiwen_requests_total", route="/metrics", status="200") == 2
    assert ("zhiwen_feedback_total", (("rating", "down"),)) in m, "started at zero"
    assert not any(
        labels == (("verdict", "retry"),) for name, labels in m if name.startswith("zhiwen_quality_v")
    )
    assert _value(m, "zhiwen_ingest_jobs_total", status="done") == 1
    assert _value(m, "zhiwen_ingest_queue_depth") == 0
    assert _value(m, "zhiwen_think_leaks_total") == 0
    assert any(name == "process_cpu_seconds_total" for name, _ in m), "process collector"
    assert any(name == "python_gc_collections_total" for name, _ in m), "GC collector"
    assert next(labels for name, labels in m if name == "zhiwen_worker_info")[0][0] == "pid"
