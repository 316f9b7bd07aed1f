"""The rerank stage through the real server: the reranker's order reaches the answer's sources, a failing
reranker leaves the fused order, and both are counted in /metrics."""

from __future__ import annotations

from typing import TYPE_CHECKING

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from zhiwen.server.app import create_app
from zhiwen.settings import get_settings
from zhiwen.testing.scripted_rerank import ScriptedReranker

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120), pytest.mark.usefixtures("no_blocking_calls")]


def _metric(text: str, name: str, **labels: str) -> float:
    return next(
        (s.value for f in text_string_to_metric_families(text) for s in f.samples
         if s.name == name and s.labels == labels),
        0.0,
    )  # fmt: skip


def test_the_rerankers_order_is_used_and_its_failure_falls_back(
    env: Env, llm: ScriptedLLM, kit: type[Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    with ScriptedReranker(favourite="business days") as reranker:
        monkeypatch.setenv("ZHIWEN_RERANK_BASE_URL", reranker.base_url)
        monkeypatch.setenv("ZHIWEN_RERANK_MODEL", "bge-reranker-v2-m3")
        get_settings.cache_clear()
        try:
            with kit.serve(create_app(kit.open_settings(gc_freeze=False), start_model=False)) as url:
                reranked = httpx.post(f"{url}/v1/chat/completions", json=kit.chat_body(), timeout=60).json()
                path, sent = reranker.requests[-1]
                assert path == "/v1/rerank" and sent["model"] == "bge-reranker-v2-m3"
                assert sent["query"] == kit.QUESTION and len(sent["documents"]) >= 2
                first = reranked["sources"][0]
                assert first["source"] == "wire.txt", "the reranker's favourite comes first"
                assert first["metadata"]["legs"]["rerank"]["rank"] == 1.0

                reranker.status = 500
                fused = httpx.post(f"{url}/v1/chat/completions", json=kit.chat_body(), timeout=60).json()
                assert fused["sources"][0]["source"] == "gold-card.md", "the fused order stands"
                assert "rerank" not in fused["sources"][0]["metadata"]["legs"]
                assert fused["quality"]["verdict"] == "pass"
                metrics = httpx.get(f"{url}/metrics", timeout=30).text
        finally:
            get_settings.cache_clear()
    assert _metric(metrics, "zhiwen_rerank_duration_seconds_count") == 2
    assert _metric(metrics, "zhiwen_rerank_fallbacks_total", kind="http_error") == 1
