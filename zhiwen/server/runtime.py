"""What the app holds while it runs: the compiled graphs, settings and metrics (``app.state.zhiwen``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from fastapi import Request
from langgraph.graph.state import CompiledStateGraph

from zhiwen.memory.feedback import FeedbackStore
from zhiwen.server.coordination import Coordinator
from zhiwen.server.guard import OWNER
from zhiwen.server.jobs import IngestWorker
from zhiwen.server.metrics import Metrics
from zhiwen.server.quotas import Ledger
from zhiwen.server.settings import ServerSettings

__all__ = ["AppRuntime", "runtime_of", "stored_thread"]


@dataclass
class AppRuntime:
    """``threaded`` has the checkpointer (conversations); ``stateless`` serves requests without a thread."""

    settings: ServerSettings
    metrics: Metrics
    threaded: CompiledStateGraph[Any, Any, Any, Any]
    stateless: CompiledStateGraph[Any, Any, Any, Any]
    checkpointer: Any
    jobs: IngestWorker
    quotas: Ledger
    coordination: Coordinator
    feedback: FeedbackStore
    """Rate and concurrency limits and thread locks: this process's, or shared through the database."""
    model_ready: bool = False
    model_error: str = ""


def runtime_of(request: Request) -> AppRuntime:
    rt: AppRuntime = request.app.state.zhiwen
    return rt


def stored_thread(request: Request, thread_id: str) -> str:
    """The checkpointer's id for a client's thread: with API keys, each key has threads of its own.

    Another key's client that knows (or guesses) a thread id reads, deletes or continues its own thread of
    that name, never the other one. An open server (no keys) stores the id as it is.
    """
    owner = str(request.scope.get("state", {}).get(OWNER, ""))
    return f"{owner}:{thread_id}" if owner else thread_id
