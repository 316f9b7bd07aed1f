"""What the app holds while it runs: the compiled graphs, settings and metrics (``app.state.zhiwen``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from fastapi import Request
from langgraph.graph.state import CompiledStateGraph

from zhiwen.server.metrics import Metrics
from zhiwen.server.pump import TurnPump
from zhiwen.server.settings import ServerSettings

__all__ = ["AppRuntime", "runtime_of"]


@dataclass
class AppRuntime:
    """``threaded`` has the checkpointer (conversations); ``stateless`` serves requests without a thread."""

    settings: ServerSettings
    metrics: Metrics
    threaded: CompiledStateGraph[Any, Any, Any, Any]
    stateless: CompiledStateGraph[Any, Any, Any, Any]
    checkpointer: Any
    model_ready: bool = False
    model_error: str = ""
    turns: dict[str, TurnPump] = field(default_factory=dict)
    """The latest turn started on each thread, to refuse a second one while it runs."""


def runtime_of(request: Request) -> AppRuntime:
    rt: AppRuntime = request.app.state.zhiwen
    return rt
