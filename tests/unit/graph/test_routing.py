"""The conditional edges: which node follows track_intent and evaluate."""

from __future__ import annotations

from typing import Any, get_args, get_type_hints

import pytest

from zhiwen.graph.routing import route_after_evaluate, route_after_recall, route_intent
from zhiwen.graph.state import State


def _state(label: str = "question", **extra: Any) -> State:
    intent = {"label": label, "language": "en", "query": "q", "reason": "", "method": "rules"}
    return {"intent": intent, **extra}  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("greeting", "generate"),
        ("question", "recall"),
        ("followup", "recall"),
        ("chitchat", "recall"),
        ("unsafe", "refuse"),
        ("out_of_scope", "refuse"),
        ("empty", "refuse"),
    ],
)
def test_route_intent(label: str, expected: str) -> None:
    assert route_intent(_state(label)) == expected


@pytest.mark.parametrize(
    ("quality", "expected"),
    [
        ({"verdict": "retry"}, "retrieve"),
        ({"verdict": "pass"}, "__end__"),
        ({"verdict": "refuse"}, "__end__"),
        ({"verdict": "unchecked"}, "__end__"),
        ({}, "__end__"),
    ],
)
def test_route_after_evaluate(quality: dict[str, Any], expected: str) -> None:
    assert route_after_evaluate(_state(quality=quality)) == expected


def test_route_after_recall_ends_only_on_a_cached_answer() -> None:
    assert route_after_recall(_state(quality={"verdict": "pass", "cached": True})) == "__end__"
    assert route_after_recall(_state(quality={})) == "retrieve"
    assert route_after_recall(_state()) == "retrieve"


def test_route_after_evaluate_without_quality_ends() -> None:
    assert route_after_evaluate(_state()) == "__end__"


def test_routes_are_declared_in_the_signatures() -> None:
    """The Literal return types are what the graph drawing (and Studio) shows as edges."""
    assert set(get_args(get_type_hints(route_intent)["return"])) == {"recall", "generate", "refuse"}
    assert set(get_args(get_type_hints(route_after_recall)["return"])) == {"retrieve", "__end__"}
    assert set(get_args(get_type_hints(route_after_evaluate)["return"])) == {"retrieve", "__end__"}
