"""Run one chat turn through the graph and turn LangGraph's streams into simple events.

The CLI, the server and the eval runner all go through ``stream_turn``: answer tokens come only from
the ``generate`` node, handed over through ``ANSWER_SINK`` (already think-filtered), a retry by the
quality gate is announced, and token usage reported by the endpoint for the answers is summed.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
import time
import uuid
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import BaseMessage, HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.graph.state import CompiledStateGraph

from zhiwen.graph.context import Context
from zhiwen.nodes.generate import ANSWER_SINK, AnswerDelta
from zhiwen.nodes.prompts import withdrawn_notice
from zhiwen.tools.grounding import cited_numbers

__all__ = ["Closing", "TurnEvent", "closing", "stream_turn", "withdrawn_citations"]


@dataclass
class TurnEvent:
    """kind: token (answer text), reasoning, retry (a new attempt starts; ``text`` is the notice, in the
    question's language, that the draft streamed so far is withdrawn), final (the output state)."""

    kind: Literal["token", "reasoning", "retry", "final"]
    text: str = ""
    state: dict[str, Any] = field(default_factory=dict)
    elapsed: float = 0.0
    usage: dict[str, int] = field(default_factory=dict)


async def stream_turn(
    graph: CompiledStateGraph[Any, Any, Any, Any],
    question: str | Sequence[BaseMessage],
    context: Context,
    thread_id: str | None = None,
) -> AsyncGenerator[TurnEvent, None]:
    """Stream one turn; with a checkpointer on ``graph``, ``thread_id`` selects the conversation.

    ``question`` is the new user message, or a list of messages (a stateless caller's whole history).
    With ``context.stream_drafts`` off, no token, reasoning or retry event is sent: the caller gets the
    checked answer from the final state only. Closing the generator early cancels the graph run, and with
    it the upstream model request.
    """
    messages = [HumanMessage(question)] if isinstance(question, str) else list(question)
    loop = asyncio.get_running_loop()
    owner = threading.get_ident()
    deltas: asyncio.Queue[AnswerDelta | None] = asyncio.Queue()

    def sink(delta: AnswerDelta) -> None:
        if threading.get_ident() == owner:
            deltas.put_nowait(delta)
        else:  # a node run in a worker thread
            loop.call_soon_threadsafe(deltas.put_nowait, delta)

    config: RunnableConfig = {"configurable": {"thread_id": thread_id or uuid.uuid4().hex, ANSWER_SINK: sink}}
    start = time.perf_counter()

    async def last_values() -> dict[str, Any]:
        # The whole state (stage timings and all), not just the output schema that ainvoke returns.
        last: dict[str, Any] = {}
        async for values in graph.astream(
            {"messages": messages}, config, context=context, stream_mode="values"
        ):
            last = values
        return last

    run = asyncio.ensure_future(last_values())
    run.add_done_callback(lambda _: deltas.put_nowait(None))
    attempt: int | None = None
    usage = {"prompt_tokens": 0, "completion_tokens": 0}
    try:
        while (delta := await deltas.get()) is not None:
            if delta.usage:
                usage["prompt_tokens"] += int(delta.usage.get("input_tokens", 0))
                usage["completion_tokens"] += int(delta.usage.get("output_tokens", 0))
            if not context.stream_drafts:
                continue
            if attempt != delta.attempt:
                if attempt is not None:  # the text is the notice that the draft shown so far is withdrawn
                    notice = withdrawn_notice(delta.language or "en")
                    yield TurnEvent("retry", notice, elapsed=time.perf_counter() - start)
                attempt = delta.attempt
            if delta.reasoning:
                yield TurnEvent("reasoning", delta.reasoning, elapsed=time.perf_counter() - start)
            if delta.text:
                yield TurnEvent("token", delta.text, elapsed=time.perf_counter() - start)
        final = dict(await run)  # raises the graph's error, if it failed
    finally:
        if not run.done():
            run.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await run
    yield TurnEvent("final", state=final, elapsed=time.perf_counter() - start, usage=usage)


@dataclass
class Closing:
    """What a reader of the streamed tokens still needs to see: a withdrawal notice and the real answer."""

    notice: str = ""
    answer: str = ""

    def text(self) -> str:
        """Both parts as one piece of text, a blank line apart."""
        return "\n\n".join(part for part in (self.notice, self.answer) if part)


def closing(state: dict[str, Any], streamed: str) -> Closing:
    """The end of a turn's display, given the final state and the answer text already streamed.

    Nothing when the stream already holds the answer; the whole answer when nothing was streamed
    (``stream_drafts`` off, or a reply that is not generated). When the quality gate refused a streamed
    draft, the reader has just seen text that is not the answer, so a notice in the question's language
    says the draft is withdrawn before the refusal; a draft that was itself the model declining needs no
    notice. ``streamed`` empty with ``Closing.answer`` set means: print the answer on its own.
    """
    answer = str(state.get("answer", ""))
    if not streamed:
        return Closing(answer=answer)
    quality = state.get("quality", {})
    language = str(state.get("intent", {}).get("language", "en"))
    if "</think>" in streamed:
        # Reasoning without its opening tag (a template that opens <think> in the prompt, and
        # expect_think_open_in_prompt off) streamed as answer; the answer itself was cleaned afterwards.
        return Closing(withdrawn_notice(language), answer)
    if quality.get("unsafe_dropped"):
        # The reader saw a sentence the bank's rules forbid (a request for a password, a foreign link):
        # the draft is withdrawn and the answer without it follows.
        return Closing(withdrawn_notice(language), answer)
    appendix = str(quality.get("policy_appendix") or "")
    # A refusal, or a quote of the closest source sentence (the gate's fall-back), replaces the draft.
    replaced = quality.get("verdict") in ("refuse", "quote")
    if not replaced and appendix and appendix not in streamed:
        return Closing(answer=appendix)  # the bank's risk reminder, added after the draft was streamed
    if not replaced or answer in streamed:
        return Closing()
    if quality.get("model_refused"):
        return Closing(answer=answer)
    return Closing(withdrawn_notice(language), answer)


def withdrawn_citations(state: dict[str, Any], streamed: str) -> list[int]:
    """The ``[n]`` markers the reader saw in a streamed draft that stands as the answer, which the checked
    answer no longer carries: the gate drops a marker that names no source, or a source that does not
    support the sentence citing it (``grounding.drop_bad_citations``). A reader who saw "[2]" and finds no
    source 2 listed should be told why. Empty when the answer was printed again after the stream (a
    refusal, a quote, a withdrawn draft), where the streamed markers went with the draft.
    """
    end = closing(state, streamed)
    appendix = str(state.get("quality", {}).get("policy_appendix") or "")
    if not streamed or end.notice or (end.answer and end.answer != appendix):
        return []
    return sorted(cited_numbers(streamed) - cited_numbers(str(state.get("answer", ""))))
