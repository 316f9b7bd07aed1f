"""Conditional edges; each returns a Literal so the routes show in the signature and the drawing.

Pure functions; ``builder`` wraps them with ``sync_bridge.dual_route`` so async runs keep them on the loop."""

from __future__ import annotations

from typing import Literal

from zhiwen.graph.state import State

__all__ = ["route_after_evaluate", "route_after_recall", "route_intent"]


def route_intent(state: State) -> Literal["recall", "generate", "refuse"]:
    """Small talk goes straight to the model; unsafe, out-of-scope and empty messages are refused; questions
    are first looked up in the answer cache."""
    label = state["intent"]["label"]
    if label == "greeting":
        return "generate"
    if label in ("unsafe", "out_of_scope", "empty"):
        return "refuse"
    return "recall"


def route_after_recall(state: State) -> Literal["retrieve", "__end__"]:
    """A cached answer ends the turn; otherwise the question goes to retrieval."""
    return "__end__" if state.get("quality", {}).get("cached") else "retrieve"


def route_after_evaluate(state: State) -> Literal["retrieve", "__end__"]:
    """A retry verdict sends the turn back to retrieval with a changed strategy."""
    return "retrieve" if state.get("quality", {}).get("verdict") == "retry" else "__end__"
