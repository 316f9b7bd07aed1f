"""``context_of``: the settings a node runs with, whatever context its caller passed."""

from __future__ import annotations

from dataclasses import dataclass

from langgraph.runtime import Runtime

from zhiwen.graph.context import Context
from zhiwen.nodes._common import context_of


def test_a_parent_graphs_own_context_reaches_the_nodes() -> None:
    @dataclass
    class ParentContext:  # a parent graph's context_schema, with some fields zhiwen also has
        kb: str
        top_k: int
        tenant: str

    from_object = context_of(Runtime(context=ParentContext(kb="loans", top_k=3, tenant="acme")))  # type: ignore[arg-type]
    assert (from_object.kb, from_object.top_k) == ("loans", 3)
    from_dict = context_of(Runtime(context={"kb": "cards", "persona": "general", "tenant": "acme"}))  # type: ignore[arg-type]
    assert (from_dict.kb, from_dict.persona) == ("cards", "general")
    assert context_of(None) == Context() and context_of(Runtime(context=None)) == Context()
