"""Build the turn graph. ``graph`` is compiled without a checkpointer: callers attach their own.

Its nodes are async, and each also runs in a sync parent graph (``sync_bridge``)."""

from __future__ import annotations

from langgraph.graph import END, START, StateGraph
from langgraph.graph.state import CompiledStateGraph

from zhiwen.graph.context import Context
from zhiwen.graph.routing import route_after_evaluate, route_after_recall, route_intent
from zhiwen.graph.state import InputState, OutputState, State
from zhiwen.graph.sync_bridge import dual_node, dual_route
from zhiwen.nodes.evaluate import evaluate
from zhiwen.nodes.generate import generate
from zhiwen.nodes.recall import recall
from zhiwen.nodes.refuse import refuse
from zhiwen.nodes.retrieve import retrieve
from zhiwen.nodes.strip_think import strip_think
from zhiwen.nodes.track_intent import track_intent

__all__ = ["build", "graph"]


def build() -> StateGraph[State, Context, InputState, OutputState]:
    """The uncompiled graph: track_intent -> (recall -> retrieve ->) generate -> strip_think -> evaluate
    (-> retry); a question answered before ends at recall."""
    builder = StateGraph(State, context_schema=Context, input_schema=InputState, output_schema=OutputState)
    builder.add_node("track_intent", dual_node(track_intent))
    builder.add_node("recall", dual_node(recall))
    builder.add_node("retrieve", dual_node(retrieve))
    builder.add_node("generate", dual_node(generate))
    builder.add_node("strip_think", dual_node(strip_think))
    builder.add_node("evaluate", dual_node(evaluate))
    builder.add_node("refuse", dual_node(refuse))
    builder.add_edge(START, "track_intent")
    builder.add_conditional_edges("track_intent", dual_route(route_intent))
    builder.add_conditional_edges("recall", dual_route(route_after_recall))
    builder.add_edge("retrieve", "generate")
    builder.add_edge("generate", "strip_think")
    builder.add_edge("strip_think", "evaluate")
    builder.add_conditional_edges("evaluate", dual_route(route_after_evaluate))
    builder.add_edge("refuse", END)
    return builder


graph: CompiledStateGraph[State, Context, InputState, OutputState] = build().compile(name="zhiwen")
