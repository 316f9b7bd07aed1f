"""POST a streamed chat completion over aiohttp: the HTTP hot path of every answer.

Why not the openai SDK here: its client (httpx2 over anyio) builds each request through a recursive
transform and reads every SSE line through several layers of cancel scopes. For a 20-chunk answer that was
6-7 ms of CPU against 2.3 ms with aiohttp (same scripted upstream, 4 streams at a time), and the server
spends that per answer. Everything else still goes through the SDK (non-streamed calls, structured output).

Behaviour kept from the SDK, so callers see the same errors: up to ``max_retries`` retries before the first
byte of the body on a connection error, a timeout or HTTP 408/409/429/5xx, waiting as the SDK does (0.5 s
doubling to 8 s, less up to a quarter at random; ``Retry-After`` honoured up to 8 s); then
``openai.APIConnectionError``, ``openai.APITimeoutError`` or ``openai.APIStatusError`` ("Error code: 503 -
..."). Errors in the middle of a body raise ``openai.APIConnectionError`` too.
"""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx2
import openai
from opentelemetry.trace import SpanKind
from tenacity import (
    AsyncRetrying,
    RetryCallState,
    retry_if_exception,
    stop_after_attempt,
)

from zhiwen.tools.tracing import trace_headers, tracer

__all__ = ["CompletionStream", "StreamedResponse"]

_RETRY_STATUS = frozenset({408, 409, 429})
_MAX_BACKOFF = 8.0
_MAX_LINE = 1 << 22  # one SSE line (a chunk) may be this long


class _RetryableStatus(Exception):
    def __init__(self, status: int, body: bytes, retry_after: float | None) -> None:
        super().__init__(status)
        self.status, self.body, self.retry_after = status, body, retry_after


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        value = float(headers.get("retry-after", ""))
    except ValueError:
        return None
    return value if 0 <= value <= 60 else None


def _gen_ai_attributes(body: Mapping[str, Any], url: str) -> dict[str, Any]:
    parsed = urlsplit(url)
    attributes: dict[str, Any] = {
        "gen_ai.operation.name": "chat",
        "gen_ai.provider.name": "openai",
        "gen_ai.request.model": str(body.get("model", "")),
        "server.address": parsed.hostname or "",
        "server.port": parsed.port or (443 if parsed.scheme == "https" else 80),
    }
    for key, name in (
        ("max_tokens", "gen_ai.request.max_tokens"),
        ("temperature", "gen_ai.request.temperature"),
    ):
        if isinstance(body.get(key), int | float):
            attributes[name] = body[key]
    return attributes


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, (_RetryableStatus, aiohttp.ClientConnectionError, TimeoutError))


def _wait(state: RetryCallState) -> float:
    """The SDK's schedule: 0.5 s doubling to 8 s, less up to a quarter at random; Retry-After if sent."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, _RetryableStatus) and exc.retry_after is not None:
        return min(float(exc.retry_after), _MAX_BACKOFF)
    backoff: float = min(0.5 * 2 ** (int(state.attempt_number) - 1), _MAX_BACKOFF)
    return backoff * (1 - 0.25 * random.random())


class StreamedResponse:
    """The SSE lines of one response (``zhiwen.tools.openai_stream.StreamingResponse``)."""

    def __init__(self, response: aiohttp.ClientResponse, url: str) -> None:
        self._response, self._url = response, url

    @property
    def request(self) -> httpx2.Request:
        return httpx2.Request("POST", self._url)

    async def aiter_lines(self) -> AsyncIterator[str]:
        try:
            async for raw in self._response.content:
                yield raw.decode("utf-8", "replace").rstrip("\r\n")
        except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
            # The endpoint stalled after the stream began (vLLM under load): a timeout, counted as one. It was
            # reported as a broken connection. Not retried here: the reader may have part of the answer.
            raise openai.APITimeoutError(request=self.request) from exc
        except aiohttp.ClientError as exc:
            raise openai.APIConnectionError(
                message=f"Connection error: the stream broke: {exc!r}", request=self.request
            ) from exc


class CompletionStream:
    """Streams ``POST {base_url}/chat/completions`` with one aiohttp session per event loop.

    The session belongs to the loop that first used it (aiohttp connections are loop-bound); it is closed
    when that loop's ``asyncio.run`` ends (it is parked in an async generator, which the loop closes at
    shutdown) or when this object is dropped.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        timeout: float | None,
        max_retries: int,
    ) -> None:
        self.url = base_url.rstrip("/") + "/chat/completions"
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream", **headers}
        self.timeout = aiohttp.ClientTimeout(total=None, connect=timeout, sock_read=timeout)
        self.max_retries = max_retries
        self._session: aiohttp.ClientSession | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._keeper: AsyncGenerator[None, None] | None = None

    async def _current_session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        if self._session is None or self._loop is not loop or self._session.closed:
            connector = aiohttp.TCPConnector(limit=1000, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(connector=connector, timeout=self.timeout)
            self._loop = loop
            self._keeper = _close_at_loop_end(self._session)
            await anext(self._keeper)
        return self._session

    @asynccontextmanager
    async def stream(self, body: dict[str, Any]) -> AsyncIterator[StreamedResponse]:
        """The response whose status is 200, after retries; its body is read by the caller."""
        session = await self._current_session()
        data = json.dumps(body, ensure_ascii=False).encode("utf-8")
        # One span for the whole request and its stream, with OpenTelemetry's GenAI semantic conventions
        # (beside the llm.* attributes OpenInference puts on LangChain's spans).
        with tracer().start_as_current_span(f"chat {body.get('model', '')}", kind=SpanKind.CLIENT) as span:
            span.set_attributes(_gen_ai_attributes(body, self.url))
            response = await self._send(session, data)
            span.set_attribute("http.response.status_code", response.status)
            try:
                yield StreamedResponse(response, self.url)
            finally:
                response.release() if response.content.at_eof() else response.close()

    async def _send(self, session: aiohttp.ClientSession, data: bytes) -> aiohttp.ClientResponse:
        """POST with retries; the response whose status is 200, or the SDK's error."""
        response: aiohttp.ClientResponse | None = None
        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception(_retryable),
                stop=stop_after_attempt(self.max_retries + 1),
                wait=_wait,
                reraise=True,
            ):
                with attempt:
                    response = await self._post(session, data)
        except _RetryableStatus as exc:
            raise self._status_error(exc.status, exc.body) from None
        except TimeoutError as exc:
            raise openai.APITimeoutError(request=httpx2.Request("POST", self.url)) from exc
        except aiohttp.ClientError as exc:
            raise openai.APIConnectionError(
                message=f"Connection error: {exc}", request=httpx2.Request("POST", self.url)
            ) from exc
        assert response is not None
        return response

    async def _post(self, session: aiohttp.ClientSession, data: bytes) -> aiohttp.ClientResponse:
        headers = {**self.headers, **trace_headers()}  # vLLM joins the trace of the turn that asked
        response = await session.post(self.url, data=data, headers=headers, read_bufsize=_MAX_LINE)
        if response.status == 200:
            return response
        try:
            body = await response.read()
        finally:
            response.release()
        if response.status in _RETRY_STATUS or response.status >= 500:
            raise _RetryableStatus(response.status, body, _retry_after(response.headers))
        raise self._status_error(response.status, body)

    def _status_error(self, status: int, body: bytes) -> openai.APIStatusError:
        text = body.decode("utf-8", "replace")
        try:
            parsed: Any = json.loads(text)
        except ValueError:
            parsed = text
        error = parsed.get("error", parsed) if isinstance(parsed, dict) else parsed
        response = httpx2.Response(status, request=httpx2.Request("POST", self.url), content=body)
        return openai.APIStatusError(f"Error code: {status} - {parsed}", response=response, body=error)


async def _close_at_loop_end(session: aiohttp.ClientSession) -> AsyncGenerator[None, None]:
    """Parked after its first step; the loop's ``shutdown_asyncgens`` (or garbage collection) resumes
    it at ``finally``, inside the loop, where the session can still be closed properly."""
    try:
        yield
    finally:
        await session.close()
