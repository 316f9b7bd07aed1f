"""The answer cache on a real server: a question asked again is answered without the model, marked cached,
counted in /metrics, and asked afresh once the knowledge base changes. The official OpenAI client reads it."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import httpx
import pytest
from openai import OpenAI
from prometheus_client.parser import text_string_to_metric_families

from zhiwen.memory.answer_cache import _SCHEMA, SqlAnswerCache, close_answer_caches, get_answer_cache
from zhiwen.memory.small_store import open_sql
from zhiwen.server.app import create_app
from zhiwen.server.settings import get_server_settings
from zhiwen.settings import Settings, get_settings
from zhiwen.testing.scripted_llm import Script

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180), pytest.mark.usefixtures("no_blocking_calls")]


@pytest.fixture
def cached_url(env: Env, kit: type[Kit], monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.setenv("ZHIWEN_ANSWER_CACHE", "memory")
    get_settings.cache_clear()
    get_server_settings.cache_clear()
    try:
        with kit.serve(create_app(kit.open_settings(gc_freeze=False), start_model=False)) as url:
            yield url
    finally:
        monkeypatch.delenv("ZHIWEN_ANSWER_CACHE")
        get_settings.cache_clear()
        get_server_settings.cache_clear()


def _counts(text: str) -> dict[str, float]:
    return {
        s.labels["result"]: s.value
        for family in text_string_to_metric_families(text)
        if family.name == "zhiwen_answer_cache"
        for s in family.samples
        if s.name == "zhiwen_answer_cache_total"
    }


def test_a_repeated_question_comes_from_the_cache_until_the_knowledge_base_changes(
    cached_url: str, llm: ScriptedLLM, kit: type[Kit]
) -> None:
    c = httpx.Client(base_url=cached_url, timeout=60)
    first = c.post("/v1/chat/completions", json=kit.chat_body()).json()
    assert first["cached"] is False and first["quality"]["verdict"] == "pass"
    assert len(llm.requests) == 1

    again = c.post("/v1/chat/completions", json=kit.chat_body(kit.QUESTION.lower().rstrip("?") + " ?")).json()
    assert again["cached"] is True and again["quality"]["cached"] is True
    assert again["choices"][0]["message"]["content"] == first["choices"][0]["message"]["content"]
    assert again["sources"] == first["sources"]
    assert len(llm.requests) == 1, "no model call for a cached answer"

    client = OpenAI(base_url=f"{cached_url}/v1", api_key="unused", max_retries=0)
    stream = client.chat.completions.create(
        model=kit.KB, messages=[{"role": "user", "content": kit.QUESTION}], stream=True
    )
    chunks = list(stream)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == first["choices"][0]["message"]["content"]
    assert any((ch.model_extra or {}).get("cached") is True for ch in chunks), "the last frame says cached"
    assert len(llm.requests) == 1

    upload = c.post(
        f"/v1/kbs/{kit.KB}/documents?wait=true",
        files=[("files", ("branch.md", b"# Branches\n\nBranches open at nine.\n", "text/markdown"))],
    )
    assert upload.status_code in (200, 201), upload.text
    after = c.post("/v1/chat/completions", json=kit.chat_body()).json()
    assert after["cached"] is False and len(llm.requests) == 2, "an ingest moved the generation: asked afresh"

    counts = _counts(c.get("/metrics").text)
    assert counts == {"hit": 2.0, "miss": 2.0}


def test_refused_answers_are_not_cached(cached_url: str, llm: ScriptedLLM, kit: type[Kit]) -> None:
    c = httpx.Client(base_url=cached_url, timeout=60)
    for attempt in (1, 2):
        for _ in range(3):
            llm.enqueue(Script("The gold card is made of pure titanium and gives free flights to Mars."))
        body = c.post("/v1/chat/completions", json=kit.chat_body("What is the gold card made of?")).json()
        assert body["quality"]["verdict"] == "refuse" and body["cached"] is False, attempt
    assert len(llm.requests) >= 2, "the second ask went to the model again"


def test_replicas_share_the_cache_in_postgresql(postgres_url: str, tmp_path: Path) -> None:
    """With the shared database, one replica's passed answer is another's hit, and entries expire by time."""
    import psycopg

    one = get_answer_cache(Settings(home=tmp_path / "a", database_url=postgres_url, answer_cache="auto"))
    other = SqlAnswerCache(open_sql(tmp_path / "b.sqlite", postgres_url, _SCHEMA, ("answer_cache",)), ttl=1.0)
    # Both pools are closed here: a pool left to the garbage collector joins its threads in __del__, which
    # pytest reported as an unraisable exception in whichever later test the collection happened to fall.
    try:
        assert isinstance(one, SqlAnswerCache)
        value = {
            "answer": "年费三百元[1]。",
            "sources": [{"n": 1, "text": "金卡"}],
            "quality": {"verdict": "pass"},
        }
        one.put("shared-key", value)
        assert other.get("shared-key") == value, "the other replica reads it"
        with psycopg.connect(postgres_url) as conn:
            assert conn.execute("SELECT count(*) FROM zhiwen_answer_cache").fetchone() == (1,)
        time.sleep(1.2)
        assert other.get("shared-key") is None, "past its time limit"
    finally:
        other.close()
        close_answer_caches()
