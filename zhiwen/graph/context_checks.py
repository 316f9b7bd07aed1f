"""Checks of a ``Context``'s values, run when one is made: every value comes from a caller.

Studio, the LangGraph SDK and a parent graph hand ``Context`` whatever JSON or Python values they were given.
Unchecked, ``top_k: "three"`` failed mid-run with ``'<' not supported between 'str' and 'int'``, ``persona:
"pirate"`` ran the bank's prompt, ``quality_gate: "no"`` counted as true and ``max_retries: 1000000`` made
one run call the model 2,501 times before LangGraph's recursion limit stopped it. Each field is checked
against its annotation (``Literal`` values, ``bool`` not a string, ``int`` not a float) and the bounds
below, and the error names the field and what it may be.
"""

from __future__ import annotations

import math
import re
import types
from typing import Any, Literal, Union, get_args, get_origin

from zhiwen.errors import ZhiwenError
from zhiwen.settings import has_credentials

__all__ = ["BOUNDS", "ContextError", "check_context_values"]


class ContextError(ZhiwenError, ValueError):
    """A ``Context`` value of the wrong kind or out of its bounds (a builtin kind too, so LangGraph's API
    server passes its message on to Studio and SDK clients)."""


BOUNDS: dict[str, tuple[float, float]] = {
    "temperature": (0, 2),
    "max_tokens": (1, 8192),  # the chat API's bounds (server/schemas.py)
    "request_timeout": (0.1, 3600),
    "top_k": (1, 50),
    "source_chars": (50, 4000),
    "bm25_weight": (0, 100),
    "dense_weight": (0, 100),
    "rrf_k": (1, 10_000),
    "rerank_candidates": (1, 200),
    "grounding_threshold": (0, 1),
    "source_relevance_threshold": (0, 1),
    "max_retries": (0, 3),  # each retry is a model call; unbounded, one request could buy hours of compute
    "max_history_tokens": (0, 32_768),
}
"""Inclusive bounds of the numeric fields."""

_TEXT_LIMITS = {"kb": 128, "model": 256, "base_url": 2048, "local_model": 64, "rerank_base_url": 2048}
_URL_FIELDS = ("base_url", "rerank_base_url")


def _describe(hint: Any) -> str:
    origin = get_origin(hint)
    if origin is Literal:
        return "one of " + ", ".join(repr(v) for v in get_args(hint))
    if origin in (Union, types.UnionType):
        return " or ".join(_describe(a) for a in get_args(hint))
    return "null" if hint is type(None) else getattr(hint, "__name__", str(hint))


def _fits(value: Any, hint: Any) -> bool:
    origin = get_origin(hint)
    if origin is Literal:
        return any(value == v and type(value) is type(v) for v in get_args(hint))
    if origin in (Union, types.UnionType):
        return any(_fits(value, a) for a in get_args(hint))
    if hint is type(None):
        return value is None
    if hint is bool:
        return isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    return isinstance(value, hint)


def _problem(name: str, value: Any, hint: Any) -> str:
    if not _fits(value, hint):
        return f"must be {_describe(hint)}, not {value!r}"[:300]
    if name in BOUNDS:
        low, high = BOUNDS[name]
        if not low <= value <= high:
            return f"must be from {low:g} to {high:g}, not {value!r}"
    if isinstance(value, str):
        if name == "kb" and not value.strip():
            return "must name a knowledge base, not be empty"
        if name in _TEXT_LIMITS and len(value) > _TEXT_LIMITS[name]:
            return f"must be at most {_TEXT_LIMITS[name]} characters"
        if name in _URL_FIELDS:
            if not re.match(r"^https?://[^/?#\s]+", value, re.IGNORECASE):
                return f"must be an http(s) URL, not {value[:80]!r}"
            if has_credentials(value):
                return "must hold no user or password; give the endpoint's key as ZHIWEN_LLM_API_KEY"
    return ""


def check_context_values(values: dict[str, Any], hints: dict[str, Any]) -> None:
    """Raise ``ContextError`` naming every field of ``values`` that does not fit its ``hints`` entry."""
    problems = [f"{name} {p}" for name, hint in hints.items() if (p := _problem(name, values[name], hint))]
    if problems:
        raise ContextError("invalid run context: " + "; ".join(problems))
