"""Write the answer with the chat model, streaming; think text is filtered inside the model wrapper."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import httpx
import httpx2
import openai
from langchain_core.messages import BaseMessage, HumanMessage, SystemMessage
from langchain_core.messages.ai import UsageMetadata
from langgraph.config import get_config
from langgraph.constants import TAG_NOSTREAM
from langgraph.runtime import Runtime

from zhiwen.errors import LLMUnavailable
from zhiwen.graph.context import Context
from zhiwen.graph.state import State
from zhiwen.nodes._common import achat_model, approx_tokens, context_of, history
from zhiwen.nodes.prompts import (
    SYSTEM,
    chitchat_prompt,
    context_block,
    system_prompt,
    unrefusing_system_prompt,
)
from zhiwen.tools.fence import inert_control_tokens
from zhiwen.tools.llm import message_text, storable_text
from zhiwen.tools.openai_stream import ChunkStallError

__all__ = ["ANSWER_SINK", "AnswerDelta", "build_messages", "generate"]

# A ``configurable`` key: a callable that receives every AnswerDelta of the run.
# ``stream_turn`` sets it. LangGraph's own ``custom`` stream wakes the loop through its self-pipe
# (call_soon_threadsafe) for every write, which cost about as much per token as the ``messages`` mode;
# a direct call costs a queue put. The "__" prefix keeps it out of checkpoint and trace metadata.
ANSWER_SINK = "__zhiwen_answer_sink"


class AnswerDelta(NamedTuple):
    """One answer chunk from ``generate``, for ``stream_turn`` (through ``ANSWER_SINK``) or, without a sink,
    on the graph's ``custom`` stream.

    The same tokens (already think-filtered) are on the ``messages`` stream for LangGraph Studio and
    parent graphs. ``attempt`` rises when the quality gate retries.
    """

    attempt: int
    text: str
    reasoning: str
    usage: UsageMetadata | None
    language: str = ""  # the question's, for what a reader is told when an attempt is withdrawn


def build_messages(state: State, ctx: Context) -> list[BaseMessage]:
    """System prompt first (cacheable), then trimmed history, then numbered context and the question."""
    intent = state["intent"]
    lang = intent["language"] if intent["language"] in SYSTEM else "en"
    if intent["label"] == "greeting":
        # Without the history: small talk needs none, and the small model answered "谢谢" in English after
        # English turns, following the history's language rather than the prompt's.
        return [
            SystemMessage(chitchat_prompt(lang, ctx.persona)),
            HumanMessage(inert_control_tokens(intent["query"])),
        ]
    past = history(state.get("messages", []), ctx.max_history_tokens)
    # A retry after the model's own "not in the sources" is asked without that way out (see the prompt).
    after_own_refusal = state.get("attempt", 0) > 0 and bool(state.get("quality", {}).get("model_refused"))
    answering = unrefusing_system_prompt if after_own_refusal else system_prompt
    return [
        SystemMessage(answering(lang, ctx.persona, ctx.fence_instruction)),
        *past,
        HumanMessage(context_block(intent["query"], state.get("sources", []), lang, ctx.source_chars)),
    ]


def _answer_sink() -> Callable[[AnswerDelta], None] | None:
    try:
        config = get_config()
    except RuntimeError:  # called outside a graph run (unit tests)
        return None
    sink: Callable[[AnswerDelta], None] | None = (config.get("configurable") or {}).get(ANSWER_SINK)
    return sink


def _summary(exc: BaseException) -> str:
    """What went wrong upstream, without the upstream's own words (its body can hold anything)."""
    if isinstance(exc, openai.APIStatusError):
        return f"HTTP {exc.status_code}"
    if isinstance(exc, (openai.APITimeoutError, ChunkStallError)):
        return "timed out"
    if isinstance(exc, (openai.APIConnectionError, httpx.HTTPError, httpx2.HTTPError)):
        return "connection failed"
    return type(exc).__name__


async def generate(state: State, runtime: Runtime[Context]) -> dict[str, Any]:
    start = time.perf_counter()
    ctx = context_of(runtime)
    model = await achat_model(ctx)
    sink = _answer_sink()
    write: Callable[[AnswerDelta], None] | None = sink
    if write is None and runtime is not None:
        write = runtime.stream_writer
    # stream_drafts off, for Studio, the SDK and parent graphs (stream_turn holds back what its sink gets):
    # no token on the messages stream (LangGraph skips a model run tagged nostream) nor on the custom one,
    # so only the checked answer, evaluate's message, is sent.
    held = not ctx.stream_drafts and sink is None
    if held:
        write = None
    attempt = state.get("attempt", 0)
    language = state.get("intent", {}).get("language", "")
    texts: list[str] = []
    reasoning: list[str] = []
    finish = ""
    reported = False
    prompt = build_messages(state, ctx)
    try:
        async for chunk in model.astream(prompt, {"tags": [TAG_NOSTREAM]} if held else None):
            reported = reported or bool(chunk.usage_metadata)
            text = storable_text(chunk.content if isinstance(chunk.content, str) else message_text(chunk))
            thought = storable_text(str(chunk.additional_kwargs.get("reasoning_content") or ""))
            if text:
                texts.append(text)
            if thought:
                reasoning.append(thought)
            finish = str(chunk.response_metadata.get("finish_reason") or finish)
            if write is not None and (text or thought or chunk.usage_metadata):
                write(AnswerDelta(attempt, text, thought, chunk.usage_metadata, language))
    # The openai SDK talks through httpx2; a stream cut mid-way raises its transport errors as they are.
    except (openai.APIError, httpx.HTTPError, httpx2.HTTPError, ChunkStallError) as exc:
        raise LLMUnavailable(
            f"the chat model endpoint failed: {type(exc).__name__}: {exc}",
            public=f"the chat model endpoint failed: {_summary(exc)}",
        ) from exc
    if write is not None and not reported:
        # llama.cpp's stream reports no usage: an estimate from what was sent and written, here where the
        # prompt (the numbered sources and all) is known. The server counted the question alone before.
        sent = sum(approx_tokens(message_text(m)) for m in prompt)
        written = approx_tokens("".join(texts) + "".join(reasoning))
        usage = UsageMetadata(input_tokens=sent, output_tokens=written, total_tokens=sent + written)
        write(AnswerDelta(attempt, "", "", usage, language))
    return {
        "draft": "".join(texts).strip(),
        "draft_finish": finish,
        "model_reasoning": "".join(reasoning),
        "timings": {"generation": time.perf_counter() - start},
    }
