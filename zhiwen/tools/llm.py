"""Chat models: ChatOpenAI against the configured endpoint, and a wrapper that keeps think text out.

``ThinkFilteringChatModel`` is the model the answer node calls. It reads the real model (tagged
``nostream`` so LangGraph does not surface its raw tokens) and yields only filtered answer chunks, with
reasoning in ``additional_kwargs["reasoning_content"]``; so Studio, a parent graph with
``subgraphs=True`` and the SSE server all see clean tokens.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from typing import Any

import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import RunnableConfig
from langchain_openai import ChatOpenAI

from zhiwen.tools.llm_server import LLMEndpoint
from zhiwen.tools.think_tags import ThinkStreamFilter, split_reasoning_content, strip_think

__all__ = ["ReasoningChatOpenAI", "ThinkFilteringChatModel", "make_chat_model", "message_text"]


def message_text(message: BaseMessage) -> str:
    """The text of a message whose content may be a string or a list of blocks."""
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(b if isinstance(b, str) else str(b.get("text", "")) for b in content)


class ReasoningChatOpenAI(ChatOpenAI):
    """ChatOpenAI that keeps ``reasoning_content`` (vLLM reasoning parsers), which the base class drops."""

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
        return result


def make_chat_model(
    endpoint: LLMEndpoint,
    max_tokens: int,
    temperature: float = 0.0,
    timeout: float = 120.0,
    max_retries: int = 2,
) -> ReasoningChatOpenAI:
    """A streaming ChatOpenAI for ``endpoint``; ``max_tokens`` is sent in both spellings.

    langchain-openai sends ``max_completion_tokens``, which llama.cpp's server ignores; vLLM honours both.
    Each model gets its own async HTTP client: langchain-openai otherwise shares one per (URL, timeout)
    process-wide, whose connections belong to the first event loop, so a second ``asyncio.run`` in the
    same process failed with "Event loop is closed" (langchain-ai/langchain#35783).
    """
    return ReasoningChatOpenAI(
        base_url=endpoint.base_url,
        http_async_client=openai.DefaultAsyncHttpxClient(),
        api_key=endpoint.api_key,
        model=endpoint.model,
        temperature=temperature,
        max_tokens=max_tokens,
        extra_body={"max_tokens": max_tokens},
        timeout=timeout,
        max_retries=max_retries,
        streaming=True,
        stream_usage=True,
    )


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

    def _result(self, raw: BaseMessage) -> ChatResult:
        split = strip_think(message_text(raw), self.expect_open_in_prompt)
        reasoning = "\n".join(
            r for r in (split_reasoning_content(raw.additional_kwargs), split.reasoning) if r
        )
        msg = AIMessage(
            content=split.answer,
            additional_kwargs={"reasoning_content": reasoning} if reasoning else {},
            usage_metadata=getattr(raw, "usage_metadata", None),
            response_metadata=raw.response_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raw = self.inner.invoke(messages, self._inner_config(run_manager), stop=stop, **kwargs)
        split = strip_think(message_text(raw), self.expect_open_in_prompt)
        reasoning = "\n".join(
            r for r in (split_reasoning_content(raw.additional_kwargs), split.reasoning) if r
        )
        msg = AIMessage(
            content=split.answer,
            additional_kwargs={"reasoning_content": reasoning} if reasoning else {},
            usage_metadata=getattr(raw, "usage_metadata", None),
            response_metadata=raw.response_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=msg)])

    def _filtered(self, f: ThinkStreamFilter, raw: BaseMessage | None) -> ChatGenerationChunk | None:
        if raw is None:
            part = f.finish()
            extra, usage = "", None
        else:
            part = f.feed(message_text(raw))
            extra, usage = (
                split_reasoning_content(raw.additional_kwargs),
                getattr(raw, "usage_metadata", None),
            )
        reasoning = extra + part.reasoning
        if not part.answer and not reasoning and usage is None:
            return None
        return ChatGenerationChunk(
            message=AIMessageChunk(
                content=part.answer,
                additional_kwargs={"reasoning_content": reasoning} if reasoning else {},
                usage_metadata=usage,
            )
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
            if (gen := self._filtered(f, raw)) is not None:
                yield gen
        if (gen := self._filtered(f, None)) is not None:
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
            if (gen := self._filtered(f, raw)) is not None:
                yield gen
        if (gen := self._filtered(f, None)) is not None:
            yield gen
