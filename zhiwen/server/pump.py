"""Run a turn's events in a task of its own, so that a client leaving cancels the turn exactly once.

sse-starlette stops a stream by cancelling an anyio cancel scope, which cancels every later ``await`` in
that task too. LangGraph's clean-up after a cancellation awaits (it cancels the running node, and with
it the upstream LLM request); run in the response task it was itself cancelled at once, and the node
went on talking to the model. In its own task a single ``cancel()`` lets that clean-up finish.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncGenerator

import anyio

from zhiwen.turns import TurnEvent

__all__ = ["TurnPump"]


class TurnPump:
    """Drains ``events`` into a queue from a background task; ``next()`` reads it, ``close()`` stops it."""

    def __init__(
        self, events: AsyncGenerator[TurnEvent, None], cleanup_seconds: float = 10.0, kb: str = ""
    ) -> None:
        self.kb = kb
        """The knowledge base the turn answers from (metrics count turns per base)."""
        self._events = events
        self._queue: asyncio.Queue[TurnEvent | Exception | None] = asyncio.Queue()
        self._cleanup_seconds = cleanup_seconds
        self._held: TurnEvent | Exception | None = None
        self._holding = False
        self.task = asyncio.create_task(self._run())

    async def _run(self) -> None:
        try:
            async for event in self._events:
                self._queue.put_nowait(event)
        except Exception as exc:  # handed to the reader, who turns it into an HTTP error or error frame
            self._queue.put_nowait(exc)
            return
        finally:
            await self._events.aclose()
        self._queue.put_nowait(None)

    async def next(self) -> TurnEvent:
        """The next event; raises the turn's exception, or ``StopAsyncIteration`` after the last event."""
        if self._holding:
            item, self._held, self._holding = self._held, None, False
        else:
            item = await self._queue.get()
        if item is None:
            raise StopAsyncIteration
        if isinstance(item, Exception):
            raise item
        return item

    def ready(self) -> list[TurnEvent]:
        """The events already queued, without waiting; the end or an error is left for ``next()``."""
        out: list[TurnEvent] = []
        while not self._holding and not self._queue.empty():
            item = self._queue.get_nowait()
            if isinstance(item, TurnEvent):
                out.append(item)
            else:
                self._held, self._holding = item, True
        return out

    async def close(self) -> None:
        """Cancel the turn if it still runs and wait (shielded from the caller's cancellation) for it."""
        if self.task.done():
            return
        self.task.cancel()
        with anyio.CancelScope(shield=True):
            await asyncio.wait({self.task}, timeout=self._cleanup_seconds)
