"""Build the turn graph. ``graph`` is compiled without a checkpointer: callers attach their own."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from zhiwen.graph.context import Context
from zhiwen.graph.routing import route_after_evaluate, route_intent
from zhiwen.graph.state import InputState, OutputState, State
from zhiwen.nodes.evaluate import evaluate
from zhiwen.nodes.generate import generate
from zhiwen.nodes.refuse import refuse
from zhiwen.nodes.retrieve import retrieve
from zhiwen.nodes.strip_think import strip_think
from zhiwen.nodes.track_intent import track_intent

__all__ = ["build", "graph"]


def build() -> StateGraph[State, Context, InputState, OutputState]:
    """The uncompiled graph: track_intent -> (retrieve ->) generate -> strip_think -> evaluate (-> retry)."""
    builder = StateGraph(State, context_schema=Context, input_schema=InputState, output_schema=OutputState)
    builder.add_node("track_intent", track_intent)
    builder.add_node("retrieve", retrieve)
    builder.add_node("generate", generate)
    builder.add_node("strip_think", strip_think)
    builder.add_node("evaluate", evaluate)
    builder.add_node("refuse", refuse)
    builder.add_edge(START, "track_intent")
    builder.add_conditional_edges("track_intent", route_intent)
    builder.add_edge("retrieve", "generate")
    builder.add_edge("generate", "strip_think")
    builder.add_edge("strip_think", "evaluate")
    builder.add_conditional_edges("evaluate", route_after_evaluate)
    builder.add_edge("refuse", END)
    return builder


graph: CompiledStateGraph[State, Context, InputState, OutputState] = build().compile(name="zhiwen")
