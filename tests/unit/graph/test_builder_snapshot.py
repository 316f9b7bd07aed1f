"""The graph's shape, pinned by a snapshot of its Mermaid drawing (``UPDATE_SNAPSHOTS=1`` rewrites it)."""

from __future__ import annotations

import os
from pathlib import Path

from zhiwen.graph.builder import build, graph

SNAPSHOT = Path(__file__).parent / "snapshots" / "graph.mmd"


def test_drawing_matches_snapshot() -> None:
    drawing = graph.get_graph().draw_mermaid()
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.parent.mkdir(parents=True, exist_ok=True)
        SNAPSHOT.write_text(drawing, encoding="utf-8")
    assert SNAPSHOT.exists(), f"no snapshot yet: run with UPDATE_SNAPSHOTS=1 to write {SNAPSHOT}"
    assert drawing == SNAPSHOT.read_text(encoding="utf-8"), (
        "the graph changed; if on purpose, rerun with UPDATE_SNAPSHOTS=1 and review the diff"
    )


def test_nodes_and_edges() -> None:
    drawn = graph.get_graph()
    assert set(drawn.nodes) == {
        "__start__",
        "track_intent",
        "recall",
        "retrieve",
        "generate",
        "strip_think",
        "evaluate",
        "refuse",
        "__end__",
    }
    edges = {(e.source, e.target, e.conditional) for e in drawn.edges}
    assert {
        ("__start__", "track_intent", False),
        ("track_intent", "recall", True),
        ("recall", "retrieve", True),
        ("recall", "__end__", True),
        ("track_intent", "generate", True),
        ("track_intent", "refuse", True),
        ("retrieve", "generate", False),
        ("generate", "strip_think", False),
        ("strip_think", "evaluate", False),
        ("evaluate", "retrieve", True),
        ("evaluate", "__end__", True),
        ("refuse", "__end__", False),
    } == edges


def test_compiled_graph_has_no_checkpointer_and_a_fresh_build_compiles() -> None:
    """Callers (server, Studio, a parent graph) attach their own checkpointer."""
    assert graph.checkpointer is None
    assert graph.name == "zhiwen"
    assert build().compile().get_graph().draw_mermaid() == graph.get_graph().draw_mermaid()
