"""Read the ``chat.completion.chunk`` objects of a streamed chat completion as plain dicts.

Why not the openai SDK's own stream: it builds a pydantic object for every chunk (``construct_type``)
and langchain-openai then dumps it back to a dict, which was about a fifth of the server's CPU per
streamed answer (benchmarks/serve.py). Here each SSE ``data:`` payload goes straight through
``json.loads``; requests, retries and HTTP status errors still go through the SDK.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncGenerator, AsyncIterator
from typing import Any, Protocol

import openai

__all__ = ["ChunkStallError", "StreamingResponse", "completion_chunks"]


class ChunkStallError(asyncio.TimeoutError):
    """The endpoint sent no data line for ``stall_seconds`` (keep-alive comments do not count)."""


class StreamingResponse(Protocol):
    """An httpx (or the openai SDK's httpx2) response being streamed."""

    @property
    def request(self) -> Any: ...

    def aiter_lines(self) -> AsyncIterator[str]: ...


async def _data_payloads(lines: AsyncIterator[str]) -> AsyncGenerator[str, None]:
    """The ``data`` of each server-sent event (multi-line data joined with newlines)."""
    data: list[str] = []
    async for line in lines:
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith("data:"):
            data.append(line[6:] if line.startswith("data: ") else line[5:])
        # comments (":" keep-alives) and event/id/retry fields carry nothing a chat chunk needs
    if data:
        yield "\n".join(data)


async def completion_chunks(
    response: StreamingResponse, stall_seconds: float | None
) -> AsyncIterator[dict[str, Any]]:
    """Chunk dicts until ``[DONE]``; an ``error`` object in the stream raises ``openai.APIError``.

    ``stall_seconds`` bounds the wait for each data line with one rescheduled deadline (no task per
    chunk, unlike ``asyncio.wait_for``); None or 0 waits as long as the HTTP read timeout allows.
    """
    payloads = _data_payloads(response.aiter_lines())
    loop = asyncio.get_running_loop()
    try:
        async with asyncio.timeout(None) as deadline:
            while True:
                if stall_seconds:
                    deadline.reschedule(loop.time() + stall_seconds)
                try:
                    data = await anext(payloads)
                except StopAsyncIteration:
                    return
                # No deadline while the consumer holds the chunk: it would cancel the consumer's await.
                deadline.reschedule(None)
                if data.startswith("[DONE]"):
                    # Read to the end of the body, or the connection is dropped instead of reused.
                    async for _ in payloads:
                        pass
                    return
                chunk = json.loads(data)
                if isinstance(chunk, dict) and chunk.get("error"):
                    error = chunk["error"]
                    message = error.get("message") if isinstance(error, dict) else str(error)
                    raise openai.APIError(
                        message=str(message or "the endpoint sent an error in the stream"),
                        request=response.request,
                        body=error,
                    )
                if isinstance(chunk, dict):
                    yield chunk
    except TimeoutError as exc:
        raise ChunkStallError(
            f"the chat endpoint sent nothing for {stall_seconds} s in the middle of a stream"
        ) from exc
    finally:
        await payloads.aclose()
