"""Chat models that keep think text out of answers.

``ReasoningChatOpenAI(filter_think=True)`` is what the answer node calls for an endpoint: it yields only
answer chunks, with reasoning in ``additional_kwargs["reasoning_content"]``, so Studio, a parent graph
with ``subgraphs=True`` and the SSE server all see clean tokens. ``ThinkFilteringChatModel`` does the
same for any other chat model (the unit tests' fakes): it reads the inner model tagged ``nostream`` so
LangGraph does not surface the raw tokens.
"""

from __future__ import annotations

import re
import threading
from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_openai import ChatOpenAI
from pydantic import PrivateAttr, SecretStr

from zhiwen.tools.completion_http import CompletionStream
from zhiwen.tools.llm_server import LLMEndpoint
from zhiwen.tools.openai_stream import completion_chunks
from zhiwen.tools.think_tags import ThinkStreamFilter, split_reasoning_content, strip_think

INCOMPLETE = "incomplete"
"""The finish reason of a streamed answer whose stream ended without one."""

__all__ = [
    "INCOMPLETE",
    "ReasoningChatOpenAI",
    "ThinkFilteringChatModel",
    "make_chat_model",
    "message_text",
    "storable_text",
]


_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(text: str) -> str:
    """A model's text without NUL, and with lone surrogates as U+FFFD: PostgreSQL's checkpoint store refuses
    a NUL (the turn failed and its thread kept a question without an answer), and UTF-8 cannot encode a
    surrogate (a shared answer cache failed every turn on one)."""
    return (
        _UNSTORABLE.sub(lambda m: "" if m.group() == "\x00" else "\ufffd", text)
        if _UNSTORABLE.search(text)
        else text
    )


def message_text(message: BaseMessage) -> str:
    """The text of a message whose content may be a string or a list of blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)


def _filtered_chunk(
    f: ThinkStreamFilter, raw: BaseMessage | None, generation_info: dict[str, Any] | None = None
) -> ChatGenerationChunk | None:
    """Feed one raw chunk (None: the end of the stream) through ``f``; None when nothing is left."""
    if raw is None:
        part = f.finish()
        extra, usage = "", None
    else:
        part = f.feed(message_text(raw))
        extra, usage = split_reasoning_content(raw.additional_kwargs), getattr(raw, "usage_metadata", None)
    reasoning = extra + part.reasoning
    if not part.answer and not reasoning and usage is None and not generation_info:
        return None
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content=part.answer,
            additional_kwargs={"reasoning_content": reasoning} if reasoning else {},
            usage_metadata=usage,
        ),
        generation_info=generation_info or None,
    )


def _filtered_result(raw: BaseMessage, expect_open_in_prompt: bool) -> AIMessage:
    """A whole reply with its think text moved to ``reasoning_content``."""
    split = strip_think(message_text(raw), expect_open_in_prompt)
    reasoning = "\n".join(r for r in (split_reasoning_content(raw.additional_kwargs), split.reasoning) if r)
    return AIMessage(
        content=split.answer,
        additional_kwargs={"reasoning_content": reasoning} if reasoning else {},
        usage_metadata=getattr(raw, "usage_metadata", None),
        response_metadata=raw.response_metadata,
    )


class ReasoningChatOpenAI(ChatOpenAI):
    """ChatOpenAI that keeps ``reasoning_content`` and, with ``filter_think``, strips ``<think>`` text.

    The base class drops ``reasoning_content`` (vLLM reasoning parsers); here it is kept in
    ``additional_kwargs``. With ``filter_think`` the model itself yields only answer text (reasoning
    moves to ``reasoning_content``), so its callbacks, LangGraph's message stream and Studio never see
    think text, and no wrapper model adds a second run per call. Async streams are read from the raw
    SSE lines (``openai_stream``) of a request sent with aiohttp (``completion_http``): the SDK's
    client and pydantic chunk objects were most of a streamed answer's CPU otherwise.
    """

    filter_think: bool = False
    expect_open_in_prompt: bool = False
    _http: CompletionStream | None = PrivateAttr(default=None)

    def _completion_stream(self) -> CompletionStream | None:
        """None when the API key is a callable (resolved per request by the SDK): the SDK streams then."""
        if self._http is None:
            headers = dict(self.default_headers or {})
            if isinstance(self.openai_api_key, SecretStr):
                headers["Authorization"] = f"Bearer {self.openai_api_key.get_secret_value()}"
            elif self.openai_api_key is not None:
                return None
            timeout = self.request_timeout if isinstance(self.request_timeout, (int, float)) else None
            base_url = self.openai_api_base or "https://api.openai.com/v1"
            self._http = _shared_stream(base_url, headers, timeout, self.max_retries or 0)
        return self._http

    def _convert_chunk_to_generation_chunk(
        self, chunk: dict[str, Any], default_chunk_class: type, base_generation_info: dict[str, Any] | None
    ) -> ChatGenerationChunk | None:
        gen = super()._convert_chunk_to_generation_chunk(chunk, default_chunk_class, base_generation_info)
        choices = chunk.get("choices") or []
        if gen is not None and choices:
            reasoning = split_reasoning_content(choices[0].get("delta") or {})
            if reasoning:
                gen.message.additional_kwargs["reasoning_content"] = reasoning
        return gen

    def _create_chat_result(self, response: Any, generation_info: dict[str, Any] | None = None) -> ChatResult:
        result = super()._create_chat_result(response, generation_info)
        raw = response if isinstance(response, dict) else response.model_dump()
        choices = raw.get("choices") or []
        if choices and result.generations:
            reasoning = split_reasoning_content(choices[0].get("message") or {})
            if reasoning:
                result.generations[0].message.additional_kwargs["reasoning_content"] = reasoning
        if self.filter_think:
            for gen in result.generations:
                gen.message = _filtered_result(gen.message, self.expect_open_in_prompt)
        return result

    def _filter(self, chunks: Iterator[ChatGenerationChunk]) -> Iterator[ChatGenerationChunk]:
        if not self.filter_think:
            yield from chunks
            return
        f = ThinkStreamFilter(expect_open_in_prompt=self.expect_open_in_prompt)
        for gen in chunks:
            if (out := _filtered_chunk(f, gen.message, gen.generation_info)) is not None:
                yield out
        if (out := _filtered_chunk(f, None)) is not None:
            yield out

    def _stream(self, *args: Any, **kwargs: Any) -> Iterator[ChatGenerationChunk]:
        yield from self._filter(super()._stream(*args, **kwargs))

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        f = ThinkStreamFilter(expect_open_in_prompt=self.expect_open_in_prompt) if self.filter_think else None
        async for gen in self._astream_raw(messages, stop, run_manager, **kwargs):
            if f is None:
                yield gen
            elif (out := _filtered_chunk(f, gen.message, gen.generation_info)) is not None:
                yield out
        if f is not None and (out := _filtered_chunk(f, None)) is not None:
            yield out

    async def _astream_raw(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        kwargs["stream"] = True
        if self._should_stream_usage(kwargs.pop("stream_usage", None), **kwargs):
            kwargs["stream_options"] = {"include_usage": True}
        payload = self._get_request_payload(messages, stop=stop, **kwargs)
        http = self._completion_stream()
        if (
            http is None
            or "response_format" in payload
            or self._use_responses_api(payload)
            or self.include_response_headers
        ):
            async for gen in super()._astream(messages, stop, run_manager, **kwargs):
                yield gen
            return
        chunk_class: type = AIMessageChunk
        finished = False
        async with http.stream(_http_body(payload)) as response:
            async for chunk in completion_chunks(response, self.stream_chunk_timeout):
                converted = self._convert_chunk_to_generation_chunk(chunk, chunk_class, None)
                if converted is not None:
                    chunk_class = converted.message.__class__
                    finished = finished or bool((converted.generation_info or {}).get("finish_reason"))
                    yield converted
        if not finished:
            # The body ended and no choice said why it stopped (no [DONE] either, or a proxy cut it): the
            # answer may be cut short anywhere, so it is marked, and the quality gate does not pass it.
            yield ChatGenerationChunk(
                message=AIMessageChunk(content=""), generation_info={"finish_reason": INCOMPLETE}
            )


def _http_body(payload: dict[str, Any]) -> dict[str, Any]:
    """The JSON body the SDK would send for ``payload``: ``extra_body`` merged in, SDK-only keys dropped."""
    body = {
        k: v for k, v in payload.items() if k not in ("extra_body", "extra_headers", "extra_query", "timeout")
    }
    body.update(payload.get("extra_body") or {})
    return body


def make_chat_model(
    endpoint: LLMEndpoint,
    max_tokens: int,
    temperature: float = 0.0,
    timeout: float = 120.0,
    max_retries: int = 2,
    filter_think: bool = False,
    expect_open_in_prompt: bool = False,
    http_client: openai.DefaultAsyncHttpxClient | None = None,
) -> ReasoningChatOpenAI:
    """A streaming ChatOpenAI for ``endpoint``; ``max_tokens`` is sent in both spellings.

    ``filter_think`` makes the model return and stream answers only (see ``ReasoningChatOpenAI``).

    langchain-openai sends ``max_completion_tokens``, which llama.cpp's server ignores; vLLM honours both.
    Each model gets its own async HTTP client: langchain-openai otherwise shares one per (URL, timeout)
    process-wide, whose connections belong to the first event loop, so a second ``asyncio.run`` in the
    same process failed with "Event loop is closed" (langchain-ai/langchain#35783). Pass ``http_client``
    to share one (and its connection pool) between models of the same loop.
    """
    return ReasoningChatOpenAI(
        base_url=endpoint.base_url,
        http_async_client=http_client or openai.DefaultAsyncHttpxClient(),
        api_key=endpoint.api_key,
        model=endpoint.model,
        temperature=temperature,
        max_tokens=max_tokens,
        extra_body={"max_tokens": max_tokens},
        timeout=timeout,
        max_retries=max_retries,
        streaming=True,
        stream_usage=True,
        filter_think=filter_think,
        expect_open_in_prompt=expect_open_in_prompt,
    )


_streams: dict[tuple[object, ...], CompletionStream] = {}
_streams_lock = threading.Lock()


def _shared_stream(
    base_url: str, headers: dict[str, str], timeout: float | None, max_retries: int
) -> CompletionStream:
    """One streaming client (and connection pool) per endpoint, shared by every model that talks to it.

    Models differ by temperature and max_tokens, which a server's clients choose per request; with a pool
    each, every new combination opened connections that lived until the event loop ended.
    """
    key = (base_url, tuple(sorted(headers.items())), timeout, max_retries)
    with _streams_lock:
        if key not in _streams:
            _streams[key] = CompletionStream(base_url, headers, timeout, max_retries)
        return _streams[key]


class ThinkFilteringChatModel(BaseChatModel):
    """Wraps a chat model and removes ``<think>`` reasoning from everything it returns or streams."""

    inner: BaseChatModel
    expect_open_in_prompt: bool = False

    @property
    def _llm_type(self) -> str:
        return "zhiwen-think-filter"

    def _inner_config(self, run_manager: Any) -> RunnableConfig:
        # The inner run inherits the caller's callbacks (tracing sees it) but is tagged nostream, so
        # LangGraph's message stream shows only this wrapper's filtered tokens.
        return {"tags": ["nostream"]}

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raw = self.inner.invoke(messages, self._inner_config(run_manager), stop=stop, **kwargs)
        return ChatResult(
            generations=[ChatGeneration(message=_filtered_result(raw, self.expect_open_in_prompt))]
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        f = ThinkStreamFilter(expect_open_in_prompt=self.expect_open_in_prompt)
        for raw in self.inner.stream(messages, self._inner_config(run_manager), stop=stop, **kwargs):
            if (gen := _filtered_chunk(f, raw)) is not None:
                yield gen
        if (gen := _filtered_chunk(f, None)) is not None:
            yield gen

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        f = ThinkStreamFilter(expect_open_in_prompt=self.expect_open_in_prompt)
        async for raw in self.inner.astream(messages, self._inner_config(run_manager), stop=stop, **kwargs):
            if (gen := _filtered_chunk(f, raw)) is not None:
                yield gen
        if (gen := _filtered_chunk(f, None)) is not None:
            yield gen
