"""Conditional edges; each returns a Literal so the routes show in the signature and the drawing.

They are async only so LangGraph runs them on the event loop: a sync edge costs a thread-pool hop
(about 1 ms each per turn, measured in benchmarks/turn.py)."""

from __future__ import annotations

from typing import Literal

from zhiwen.graph.state import State

__all__ = ["route_after_evaluate", "route_intent"]


async def route_intent(state: State) -> Literal["retrieve", "generate", "refuse"]:
    """Small talk goes straight to the model; unsafe, out-of-scope and empty messages are refused."""
    label = state["intent"]["label"]
    if label == "greeting":
        return "generate"
    if label in ("unsafe", "out_of_scope", "empty"):
        return "refuse"
    return "retrieve"


async def route_after_evaluate(state: State) -> Literal["retrieve", "__end__"]:
    """A retry verdict sends the turn back to retrieval with a changed strategy."""
    return "retrieve" if state.get("quality", {}).get("verdict") == "retry" else "__end__"
