"""zhiwen's knowledge bases as MCP tools, built with the official ``mcp`` SDK (``MCPServer``).

Three tools: ``list_knowledge_bases``, ``search_knowledge_base`` (hits with their sources, no LLM) and ``ask``
(the whole turn graph: answer, sources, quality verdict, and a thread id for follow-ups). The same server runs
two ways:

* ``zhiwen mcp``: over stdio, for a desktop client on the machine that holds the knowledge bases; the local
  user is the admin (they can read the files anyway).
* mounted at ``/mcp`` on ``zhiwen serve`` (streamable HTTP, stateless so any replica answers): behind the
  server's guard, so the caller's API key decides which knowledge bases it sees, its threads are its own,
  and its rate limits hold, exactly as for the chat API.
"""

from __future__ import annotations

import asyncio
import logging
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from langgraph.graph.state import CompiledStateGraph
from mcp.server.mcpserver import Context, MCPServer
from mcp.server.mcpserver.exceptions import ToolError

from zhiwen import __version__, service
from zhiwen.errors import KnowledgeBaseNotFound, ZhiwenError
from zhiwen.graph.context import context_from_settings
from zhiwen.memory.kb import list_kbs
from zhiwen.server.coordination import Coordinator
from zhiwen.server.guard import PRINCIPAL
from zhiwen.server.keyring import OPEN, Principal
from zhiwen.server.public import public_sources
from zhiwen.server.schemas import MAX_QUERY_CHARS
from zhiwen.settings import get_settings
from zhiwen.turns import stream_turn

__all__ = ["McpBackend", "build_mcp_server"]

_THREAD_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")

_INSTRUCTIONS = (
    "zhiwen answers questions strictly from an organisation's own documents (Chinese and English). Use "
    "list_knowledge_bases to see the knowledge bases, search_knowledge_base for passages, and ask for a checked, "
    "sourced answer; pass the returned thread_id to ask again to follow up. A refused answer (verdict 'refuse') "
    "means the documents do not support one: do not answer from elsewhere in its place. A quoted answer (verdict "
    "'quote') is the documents' closest sentence, word for word, not a composed answer."
)


@dataclass
class McpBackend:
    """What the tools run on: a graph with a checkpointer, the thread locks, and the default knowledge base."""

    graph: CompiledStateGraph[Any, Any, Any, Any]
    coordination: Coordinator
    default_kb: str
    local_model: str | None = None
    """The embedded model to answer with (``--local-model``); None: the settings' choice."""


def _caller(ctx: Context) -> Principal:
    """The HTTP caller the guard identified, or the local user (stdio: no HTTP request)."""
    request = ctx.request_context.request if ctx.request_context else None
    scope = getattr(request, "scope", None)
    if isinstance(scope, dict):
        found = scope.get("state", {}).get(PRINCIPAL)
        if isinstance(found, Principal):
            return found
    return OPEN


def _visible(caller: Principal) -> list[tuple[str, int, int]]:
    return [row for row in list_kbs(get_settings().kb_root) if caller.may_use(row[0])]


def _check_kb(caller: Principal, kb: str) -> None:
    """A knowledge base outside the caller's scope is reported as missing (its existence is not revealed)."""
    if not any(name == kb for name, _, _ in _visible(caller)):
        known = ", ".join(name for name, _, _ in _visible(caller)) or "none"
        raise ToolError(f"no knowledge base named {kb!r} (yours: {known})")


def _plain_log_lines() -> None:
    """Give the root logger a plain one-line handler unless the application configured one.

    ``MCPServer()`` calls ``logging.basicConfig`` with rich's handler, which wraps every record over several
    80-column lines with the time and source file in columns: unreadable in ``kubectl logs`` and split for
    ``grep``. ``basicConfig`` does nothing once the root logger has a handler, so this one, in the form of
    uvicorn's own lines, is what the server's and ``zhiwen mcp``'s records print through.
    """
    root = logging.getLogger()
    if not root.handlers:
        handler = logging.StreamHandler()  # standard error, as uvicorn's and rich's
        handler.setFormatter(logging.Formatter("%(levelname)s:  %(name)s: %(message)s"))
        root.addHandler(handler)
        root.setLevel(logging.INFO)


def build_mcp_server(backend: Callable[[], McpBackend]) -> MCPServer:
    """The MCP server; ``backend`` is called per tool call (a server's runtime exists only once it started)."""
    _plain_log_lines()
    server: MCPServer = MCPServer(name="zhiwen", instructions=_INSTRUCTIONS, version=__version__)

    @server.tool()
    async def list_knowledge_bases(ctx: Context) -> list[dict[str, Any]]:
        """The knowledge bases this caller may use, with their numbers of documents and chunks."""
        rows = await asyncio.to_thread(_visible, _caller(ctx))
        return [{"name": name, "documents": docs, "chunks": chunks} for name, docs, chunks in rows]

    @server.tool()
    async def search_knowledge_base(
        query: str, ctx: Context, kb: str = "", top_k: int = 5
    ) -> list[dict[str, Any]]:
        """Passages of knowledge base ``kb`` (the server's default when empty) that match ``query`` (hybrid
        BM25 + dense retrieval, no LLM), best first, each with its text, score and source file."""
        if not 1 <= top_k <= 50:
            raise ToolError("top_k must be between 1 and 50")
        if len(query) > MAX_QUERY_CHARS:  # as /v1/kbs/{kb}/search: the time of a search grows with it
            raise ToolError(f"the query is longer than {MAX_QUERY_CHARS} characters")
        kb = kb or backend().default_kb
        await asyncio.to_thread(_check_kb, _caller(ctx), kb)
        try:
            hits = await asyncio.to_thread(service.search, kb, query, top_k)
        except ZhiwenError as exc:
            raise ToolError(str(exc)) from exc
        return public_sources(
            {"text": h.text, "score": round(h.score, 4), "source": h.metadata.get("source", ""), "id": h.id}
            for h in hits
        )

    @server.tool()
    async def ask(question: str, ctx: Context, kb: str = "", thread_id: str = "") -> dict[str, Any]:
        """A checked answer from knowledge base ``kb`` (the server's default when empty) with its numbered
        sources and the quality gate's verdict ('pass'; 'quote' when the answer quotes the source sentence
        closest to the question; 'refuse' when the documents do not support an answer). Pass the returned
        ``thread_id`` back to ask a follow-up in the same conversation."""
        if not question.strip():
            raise ToolError("the question is empty")
        if len(question) > MAX_QUERY_CHARS:
            raise ToolError(f"the question is longer than {MAX_QUERY_CHARS} characters")
        if thread_id and not _THREAD_ID.fullmatch(thread_id):  # as the HTTP API's thread ids
            raise ToolError("thread_id must be 1 to 128 letters, digits or . _ : -")
        caller, run = _caller(ctx), backend()
        name = kb or run.default_kb
        await asyncio.to_thread(_check_kb, caller, name)
        thread = thread_id or uuid.uuid4().hex
        stored = f"{caller.owner}:mcp:{thread}" if caller.owner else f"mcp:{thread}"
        lease = await run.coordination.lock_thread(stored)
        if lease is None:
            raise ToolError(f"thread {thread!r} has a turn running; ask again after it ends")
        try:
            context = context_from_settings(kb=name)
            context.stream_drafts = False  # a tool returns the checked answer only
            if run.local_model:
                context.local_model = run.local_model
            final: dict[str, Any] = {}
            async for event in stream_turn(run.graph, question, context, stored):
                if event.kind == "final":
                    final = event.state
        except KnowledgeBaseNotFound as exc:
            raise ToolError(str(exc)) from exc
        finally:
            await lease.release()
        quality = final.get("quality", {})
        return {
            "answer": final.get("answer", ""),
            "sources": public_sources(final.get("sources", [])),
            "verdict": quality.get("verdict", ""),
            "quality": quality,
            "thread_id": thread,
            "kb": name,
        }

    return server


def run_stdio(default_kb: str, local_model: str | None = None) -> None:
    """``zhiwen mcp``: serve over stdin/stdout until the client closes them. Threads are kept in the same
    checkpointer as ``zhiwen chat`` (``ZHIWEN_HOME``, or the shared database)."""
    from zhiwen.graph.builder import build
    from zhiwen.memory.checkpointer import open_checkpointer
    from zhiwen.server.coordination import LocalCoordinator
    from zhiwen.tools import llm_server

    async def serve() -> None:
        async with open_checkpointer() as saver:
            graph = build().compile(checkpointer=saver)
            backend = McpBackend(graph, LocalCoordinator(10**9, 10**9), default_kb, local_model)
            await build_mcp_server(lambda: backend).run_stdio_async()

    try:
        asyncio.run(serve())
    finally:
        llm_server.stop_all()
