"""Answers the quality gate passed, kept for the same question asked again (FAQ traffic repeats itself).

An entry is found only by a key that holds everything that could change the answer: the knowledge base, its
catalog generation (any ingest or delete moves it, so an entry never outlives the documents it came from),
the answer rules' contacts (allow-list and hotline), the normalised standalone question, its language, and
every ``Context`` field that shapes an answer (persona, model, retrieval and gate settings). Only passed,
untruncated answers are stored.

In-process by default (an LRU with a time limit); in the shared PostgreSQL (``ZHIWEN_DATABASE_URL``) when
``ZHIWEN_ANSWER_CACHE`` is ``shared``, or ``auto`` with a database, so replicas answer from one cache.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import re
import threading
import time
import unicodedata
from collections import OrderedDict
from typing import Any, Protocol

from zhiwen.memory.small_store import Sql, open_sql
from zhiwen.settings import Settings, get_settings

__all__ = ["AnswerCache", "MemoryAnswerCache", "SqlAnswerCache", "answer_cache_key", "get_answer_cache"]

# Context fields that cannot change an answer's text: leaving them out lets, say, a streaming and a
# non-streaming client share an entry.
_NOT_IN_KEY = frozenset(
    {"kb", "request_timeout", "stream_drafts", "answer_cache", "max_history_tokens", "condense_with_llm"}
)
_TRAILING = re.compile(r"[\s?？!！.。,，;；:：~～]+$")


class AnswerCache(Protocol):
    """Blocking calls: from an event loop, call them in a worker thread."""

    def get(self, key: str) -> dict[str, Any] | None: ...

    def put(self, key: str, value: dict[str, Any]) -> None: ...


def normalise_question(question: str) -> str:
    """NFKC (full-width forms), case and runs of spaces folded, end punctuation dropped: "金卡年费？" and
    "金卡年费 ?" are one question; anything else is not."""
    text = unicodedata.normalize("NFKC", question).casefold()
    return _TRAILING.sub("", re.sub(r"\s+", " ", text).strip())


def answer_cache_key(
    context: Any, question: str, language: str, generation: int, contacts: list[str], settings: Settings
) -> str:
    """The key of an answer (see the module docstring); ``context`` is the run's ``Context``."""
    fields = {
        f.name: getattr(context, f.name) for f in dataclasses.fields(context) if f.name not in _NOT_IN_KEY
    }
    parts = {
        "kb": context.kb,
        "generation": generation,
        "contacts": sorted(contacts),
        "question": normalise_question(question),
        "language": language,
        "context": fields,
        # what an unset model or endpoint falls back to
        "endpoint": [
            settings.llm_base_url,
            settings.llm_model,
            settings.local_model,
            settings.rerank_base_url,
        ],
    }
    blob = json.dumps(parts, sort_keys=True, ensure_ascii=False, default=str)
    return hashlib.sha256(blob.encode()).hexdigest()


class MemoryAnswerCache:
    """An LRU of at most ``size`` entries, each kept ``ttl`` seconds."""

    def __init__(self, size: int, ttl: float) -> None:
        self._entries: OrderedDict[str, tuple[float, dict[str, Any]]] = OrderedDict()
        self._size, self._ttl = size, ttl
        self._lock = threading.Lock()

    def get(self, key: str) -> dict[str, Any] | None:
        with self._lock:
            found = self._entries.get(key)
            if found is None:
                return None
            if time.monotonic() - found[0] > self._ttl:
                del self._entries[key]
                return None
            self._entries.move_to_end(key)
            copy: dict[str, Any] = json.loads(
                json.dumps(found[1])
            )  # a caller's change must not reach the cache
            return copy

    def put(self, key: str, value: dict[str, Any]) -> None:
        with self._lock:
            self._entries[key] = (time.monotonic(), json.loads(json.dumps(value, default=str)))
            self._entries.move_to_end(key)
            while len(self._entries) > self._size:
                self._entries.popitem(last=False)


_SCHEMA = "CREATE TABLE IF NOT EXISTS answer_cache (key TEXT PRIMARY KEY, value TEXT NOT NULL, stored REAL NOT NULL)"


class SqlAnswerCache:
    """The cache in a table every replica reads (PostgreSQL), or in a SQLite file; entries expire after ``ttl``
    seconds (wall clock, shared by the replicas) and are swept by the replica that stores."""

    def __init__(self, sql: Sql, ttl: float) -> None:
        self._sql, self._ttl = sql, ttl

    def get(self, key: str) -> dict[str, Any] | None:
        rows = self._sql.rows(
            "SELECT value FROM answer_cache WHERE key = ? AND stored > ?", (key, time.time() - self._ttl)
        )
        if not rows:
            return None
        value: dict[str, Any] = json.loads(rows[0][0])
        return value

    def put(self, key: str, value: dict[str, Any]) -> None:
        now = time.time()
        blob = json.dumps(value, ensure_ascii=False, default=str)
        with self._sql.transaction("answer_cache") as tx:
            tx.rows("DELETE FROM answer_cache WHERE key = ? OR stored <= ?", (key, now - self._ttl))
            tx.rows("INSERT INTO answer_cache (key, value, stored) VALUES (?, ?, ?)", (key, blob, now))

    def close(self) -> None:
        """Close the store (a PostgreSQL pool's worker threads end here, not in its ``__del__``)."""
        self._sql.close()


_lock = threading.Lock()
_caches: dict[tuple[str, str, str], AnswerCache] = {}


def get_answer_cache(settings: Settings | None = None) -> AnswerCache | None:
    """The process's answer cache (None when ``ZHIWEN_ANSWER_CACHE`` is ``off``)."""
    settings = settings or get_settings()
    mode = settings.answer_cache
    if mode == "auto":
        mode = "shared" if settings.database_url else "memory"
    if mode == "off":
        return None
    ident = (mode, str(settings.home), settings.database_url or "")
    with _lock:
        if ident not in _caches:
            if mode == "shared":
                sql = open_sql(
                    settings.home / "answer-cache.sqlite", settings.database_url, _SCHEMA, ("answer_cache",)
                )
                _caches[ident] = SqlAnswerCache(sql, settings.answer_cache_ttl)
            else:
                _caches[ident] = MemoryAnswerCache(settings.answer_cache_size, settings.answer_cache_ttl)
        return _caches[ident]


def close_answer_caches() -> None:
    """Close and forget this process's answer caches (tests; a process about to exit)."""
    with _lock:
        for cache in _caches.values():
            if isinstance(cache, SqlAnswerCache):
                cache.close()
        _caches.clear()
