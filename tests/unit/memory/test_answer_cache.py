"""The answer cache: what its key holds, the in-process LRU, and the SQL table replicas share."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from zhiwen.graph.context import Context
from zhiwen.memory.answer_cache import (
    _SCHEMA,
    MemoryAnswerCache,
    SqlAnswerCache,
    answer_cache_key,
    get_answer_cache,
    normalise_question,
)
from zhiwen.memory.small_store import open_sql
from zhiwen.settings import Settings


def key(
    ctx: Context | None = None, question: str = "金卡年费多少？", generation: int = 3, **kw: object
) -> str:
    settings = Settings(**kw)  # type: ignore[arg-type]
    return answer_cache_key(ctx or Context(kb="bank"), question, "zh", generation, ["95588"], settings)


def test_question_normalisation_folds_only_form() -> None:
    assert normalise_question("  金卡 年费多少？ ") == normalise_question("金卡 年费多少?") == "金卡 年费多少"
    assert normalise_question("ＡＢＣ  fee!") == "abc fee"
    assert normalise_question("金卡年费多少") != normalise_question("银卡年费多少")


def test_the_key_holds_everything_that_changes_an_answer() -> None:
    base = key()
    assert key(question="金卡年费多少") == base, "end punctuation does not matter"
    assert key(Context(kb="bank", stream_drafts=False, request_timeout=5)) == base, "delivery does not matter"
    for changed in (
        key(generation=4),  # an ingest or delete
        key(question="银卡年费多少？"),
        key(Context(kb="other")),
        key(Context(kb="bank", persona="general")),
        key(Context(kb="bank", model="qwen-7b")),
        key(Context(kb="bank", top_k=5)),
        key(Context(kb="bank", quality_gate=False)),
        key(llm_model="another-model"),  # what an unset Context.model falls back to
    ):
        assert changed != base
    settings = Settings()
    assert answer_cache_key(Context(kb="bank"), "金卡年费多少？", "zh", 3, [], settings) != base, "contacts"
    assert answer_cache_key(Context(kb="bank"), "金卡年费多少？", "en", 3, ["95588"], settings) != base


def test_every_context_field_is_in_the_key_or_named_as_not_changing_answers() -> None:
    from zhiwen.memory.answer_cache import _NOT_IN_KEY

    names = {f.name for f in dataclasses.fields(Context)}
    assert names >= _NOT_IN_KEY, "a field left out of the key that no longer exists"


def test_memory_cache_is_an_lru_with_a_time_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    cache = MemoryAnswerCache(size=2, ttl=60)
    cache.put("a", {"answer": "A"})
    cache.put("b", {"answer": "B"})
    assert cache.get("a") == {"answer": "A"}  # a is now the most recent
    cache.put("c", {"answer": "C"})
    assert cache.get("b") is None and cache.get("a") is not None and cache.get("c") is not None
    got = cache.get("a")
    assert got is not None
    got["answer"] = "changed by a caller"
    assert cache.get("a") == {"answer": "A"}, "callers get copies"
    now = time.monotonic()
    monkeypatch.setattr(time, "monotonic", lambda: now + 61)
    assert cache.get("a") is None, "expired"


def test_sql_cache_round_trip_and_expiry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sql = open_sql(tmp_path / "cache.sqlite", None, _SCHEMA, ("answer_cache",))
    cache = SqlAnswerCache(sql, ttl=60)
    value = {
        "answer": "年费三百元[1]。",
        "sources": [{"n": 1, "text": "金卡"}],
        "quality": {"verdict": "pass"},
    }
    cache.put("k", value)
    assert cache.get("k") == value
    cache.put("k", {**value, "answer": "new"})
    assert cache.get("k") is not None and cache.get("k")["answer"] == "new"  # type: ignore[index]
    other = SqlAnswerCache(open_sql(tmp_path / "cache.sqlite", None, _SCHEMA, ("answer_cache",)), ttl=60)
    assert other.get("k") is not None, "another process on the same store sees it"
    now = time.time()
    monkeypatch.setattr(time, "time", lambda: now + 61)
    assert cache.get("k") is None


def test_mode_selection(tmp_path: Path) -> None:
    assert get_answer_cache(Settings(home=tmp_path, answer_cache="off")) is None
    assert isinstance(get_answer_cache(Settings(home=tmp_path, answer_cache="auto")), MemoryAnswerCache)
    shared = get_answer_cache(Settings(home=tmp_path, answer_cache="shared"))
    assert isinstance(shared, SqlAnswerCache) and (tmp_path / "answer-cache.sqlite").exists()
    assert get_answer_cache(Settings(home=tmp_path, answer_cache="memory")) is get_answer_cache(
        Settings(home=tmp_path, answer_cache="memory")
    ), "one cache per process"


def test_remember_keeps_no_empty_answer_and_a_failing_cache_costs_no_turn(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """An empty passed answer was cached and served to the next asker; a cache that refused the text (a lone
    surrogate in the shared database) failed the turn whose answer was ready."""
    from zhiwen.nodes import recall

    stored: dict[str, object] = {}

    class Cache:
        def put(self, key: str, value: dict[str, object]) -> None:
            if "\ud800" in str(value["answer"]):
                raise UnicodeEncodeError("utf-8", "\ud800", 0, 1, "surrogates not allowed")
            stored[key] = value

    monkeypatch.setattr(recall, "get_answer_cache", lambda: Cache())
    recall.remember("k1", " [1] ", [], {})
    assert stored == {}
    recall.remember("k2", "bad \ud800", [], {})
    assert stored == {} and "could not store an answer" in caplog.text
    recall.remember("k3", "The fee is 300 yuan. [1]", [], {})
    assert list(stored) == ["k3"]
