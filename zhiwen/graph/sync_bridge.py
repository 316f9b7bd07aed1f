"""Async nodes and routes that also run in a sync parent graph (``invoke``, ``stream``).

The nodes are written once, async (the server, Studio and async parents await them). LangGraph calls a node's
sync function in a sync run, and a node without one fails there ("No synchronous function provided"). Here
the sync side drives the same coroutine on one private event loop in a background thread, in the caller's
context, so LangGraph's config, callbacks and stream writer (and so token streaming through
``stream_mode="messages"`` with ``subgraphs=True``) reach the node as in an async run. One lasting loop, not
``asyncio.run`` per call: chat models and their connection pools belong to a loop and are reused across
nodes and turns.
"""

from __future__ import annotations

import asyncio
import atexit
import concurrent.futures
import contextvars
import functools
import threading
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, TypeVar

from langgraph._internal._runnable import RunnableCallable

__all__ = ["dual_node", "dual_route", "run_sync"]

T = TypeVar("T")
_loop: asyncio.AbstractEventLoop | None = None
_lock = threading.Lock()


def _bridge_loop() -> asyncio.AbstractEventLoop:
    global _loop
    with _lock:
        if _loop is None or _loop.is_closed():
            loop = asyncio.new_event_loop()
            threading.Thread(target=loop.run_forever, name="zhiwen-sync-bridge", daemon=True).start()
            atexit.register(_close, loop)
            _loop = loop
        return _loop


def _close(loop: asyncio.AbstractEventLoop) -> None:
    """At exit: let the loop close what it parked (HTTP sessions close in async generators), then stop."""
    if loop.is_closed() or not loop.is_running():
        return
    try:
        asyncio.run_coroutine_threadsafe(loop.shutdown_asyncgens(), loop).result(timeout=5)
    except (concurrent.futures.TimeoutError, RuntimeError):
        pass
    loop.call_soon_threadsafe(loop.stop)


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run ``coro`` to completion from sync code, with the caller's context variables.

    Works whether or not the calling thread runs an event loop of its own (a notebook calling ``invoke``).
    An interrupt (Ctrl-C) cancels the coroutine before it propagates.
    """
    loop = _bridge_loop()
    context = contextvars.copy_context()

    async def in_callers_context() -> T:
        return await loop.create_task(coro, context=context)

    future = asyncio.run_coroutine_threadsafe(in_callers_context(), loop)
    try:
        return future.result()
    except BaseException:
        future.cancel()
        raise


def dual_node(afunc: Callable[..., Awaitable[T]]) -> RunnableCallable:
    """``afunc`` as a node LangGraph can run both ways; its signature (``runtime``...) is kept for injection."""

    @functools.wraps(afunc)
    def func(*args: Any, **kwargs: Any) -> T:
        return run_sync(afunc(*args, **kwargs))  # type: ignore[arg-type]

    return RunnableCallable(func, afunc, name=afunc.__name__, trace=False)


def dual_route(func: Callable[..., T]) -> RunnableCallable:
    """A pure routing function as a conditional edge that runs on the event loop in async runs (a sync edge
    costs an async run a thread-pool hop, about 1 ms per turn in benchmarks/turn.py) and directly in sync
    runs. LangGraph reads the routes (the drawing) from ``func``'s ``Literal`` return type."""

    async def afunc(*args: Any, **kwargs: Any) -> T:
        return func(*args, **kwargs)

    return RunnableCallable(func, afunc, name=func.__name__, trace=True)
