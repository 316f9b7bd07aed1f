"""``Context`` checks every value when it is made: Studio, the SDK and parent graphs pass what they were given."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest

from zhiwen.graph.context import Context
from zhiwen.graph.context_checks import BOUNDS, ContextError


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"top_k": "three"}, "top_k must be int, not 'three'"),
        ({"top_k": 2.7}, "top_k must be int, not 2.7"),
        ({"top_k": True}, "top_k must be int, not True"),
        ({"top_k": 0}, "top_k must be from 1 to 50, not 0"),
        ({"source_chars": "x"}, "source_chars must be int"),
        ({"kb": None}, "kb must be str, not None"),
        ({"kb": 5}, "kb must be str, not 5"),
        ({"kb": "  "}, "kb must name a knowledge base"),
        ({"persona": "pirate"}, "persona must be one of 'bank', 'general', not 'pirate'"),
        ({"language": "fr"}, "language must be one of 'auto', 'zh', 'en'"),
        ({"retrieval_mode": "bm-25"}, "retrieval_mode must be one of 'hybrid', 'bm25', 'dense'"),
        ({"fusion": "bogus"}, "fusion must be one of 'rrf'"),
        ({"quality_gate": "no"}, "quality_gate must be bool, not 'no'"),
        ({"quality_gate": 0}, "quality_gate must be bool, not 0"),
        ({"max_tokens": -5}, "max_tokens must be from 1 to 8192"),
        ({"temperature": 5.0}, "temperature must be from 0 to 2"),
        ({"temperature": math.nan}, "temperature must be float"),
        ({"grounding_threshold": 5}, "grounding_threshold must be from 0 to 1"),
        ({"bm25_weight": -5}, "bm25_weight must be from 0 to 100"),
        ({"rrf_k": -1}, "rrf_k must be from 1 to 10000"),
        ({"rerank_candidates": -1}, "rerank_candidates must be from 1 to 200"),
        ({"max_retries": 1_000_000}, "max_retries must be from 0 to 3"),
        ({"request_timeout": 0}, "request_timeout must be from 0.1 to 3600"),
        ({"base_url": "http://u:p@host/v1"}, "base_url must hold no user or password"),
        ({"base_url": "file:///etc/passwd"}, "base_url must be an http(s) URL"),
        ({"rerank_base_url": "ftp://x"}, "rerank_base_url must be an http(s) URL"),
        ({"model": "m" * 300}, "model must be at most 256 characters"),
    ],
)
def test_a_value_that_does_not_fit_is_refused_by_name(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ContextError, match="invalid run context") as caught:
        Context(**fields)
    assert message in str(caught.value), str(caught.value)
    assert isinstance(caught.value, ValueError), "a builtin kind: LangGraph's API server shows its message"


def test_every_problem_is_named_at_once() -> None:
    with pytest.raises(ContextError) as caught:
        Context(top_k=0, persona="pirate", max_retries=9)  # type: ignore[arg-type]
    assert [p.split()[0] for p in str(caught.value).split(": ", 1)[1].split("; ")] == [
        "persona", "top_k", "max_retries"]  # fmt: skip


def test_values_that_fit_are_taken() -> None:
    context = Context(temperature=1, request_timeout=30, grounding_threshold=1, top_k=50, max_retries=0,
                      base_url="https://llm.internal.example/v1", model=None, kb="年费")  # fmt: skip
    assert context.temperature == 1 and context.top_k == 50
    assert Context() == Context(**{f.name: f.default for f in dataclasses.fields(Context)})


def test_every_default_is_within_its_bounds() -> None:
    for name, (low, high) in BOUNDS.items():
        default = next(f.default for f in dataclasses.fields(Context) if f.name == name)
        assert isinstance(default, (int, float)) and low <= default <= high, name
