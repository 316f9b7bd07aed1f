"""``POST /v1/chat/completions`` (streaming and not) and ``GET /v1/models``: OpenAI-compatible."""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Header, Path, Request
from fastapi.responses import JSONResponse
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from sse_starlette import EventSourceResponse

from zhiwen.errors import EmbeddingModelMismatch, KnowledgeBaseNotFound, LLMUnavailable, ZhiwenError
from zhiwen.graph.context import context_from_settings
from zhiwen.memory.kb import list_kbs
from zhiwen.memory.registry import open_kb
from zhiwen.server.access import Caller, kb_not_found, principal_of
from zhiwen.server.chat_stream import ChatFrames, fill_usage, finish_reason
from zhiwen.server.coordination import ThreadLease
from zhiwen.server.errors import APIError, error_body, public_message
from zhiwen.server.keyring import Principal
from zhiwen.server.metrics import upstream_kind
from zhiwen.server.public import public_sources
from zhiwen.server.pump import TurnPump
from zhiwen.server.request_metrics import set_outcome
from zhiwen.server.runtime import AppRuntime, runtime_of, stored_thread
from zhiwen.server.schemas import ChatRequest, model_card
from zhiwen.settings import get_settings
from zhiwen.tools.llm_server import resolve_endpoint
from zhiwen.turns import TurnEvent, closing, stream_turn

__all__ = ["router"]

log = logging.getLogger("zhiwen.server")

router = APIRouter(tags=["chat"])
_THREAD_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


@router.get("/v1/models", summary="One model per knowledge base the key may use")
async def list_models(caller: Caller) -> dict[str, Any]:
    rows = await asyncio.to_thread(list_kbs, get_settings().kb_root)
    return {"object": "list", "data": [model_card(n, docs) for n, docs, _ in rows if caller.may_use(n)]}


@router.get(
    "/v1/models/{model}", summary="One model (a knowledge base), as OpenAI clients' models.retrieve asks"
)
async def retrieve_model(
    request: Request, caller: Caller, model: str = Path(min_length=1, max_length=200)
) -> dict[str, Any]:
    name = await asyncio.to_thread(_kb_for, model, runtime_of(request), caller)  # 404 as chat gives it
    rows = await asyncio.to_thread(list_kbs, get_settings().kb_root)
    return model_card(name, next((docs for n, docs, _ in rows if n == name), 0))


def _kb_for(model: str, rt: AppRuntime, caller: Principal) -> str:
    """The knowledge base a model name means: ``zhiwen:NAME`` or NAME; ``zhiwen`` and ``default`` are
    ``ZHIWEN_DEFAULT_KB``, except that a knowledge base really named ``default`` (the CLI's ``ingest``
    default, listed by /v1/models) is itself. One outside the caller's scope is answered as missing."""
    name = model.removeprefix("zhiwen:")
    if model == "zhiwen" or (model == "default" and not _exists(model)):
        name = rt.settings.default_kb
    try:
        if not caller.may_use(name):
            raise KnowledgeBaseNotFound(name)
        open_kb(name)
    except KnowledgeBaseNotFound as exc:
        visible = [n for n, _, _ in list_kbs(get_settings().kb_root) if caller.may_use(n)]
        message = f"model {model!r} not found: {kb_not_found(name, visible)}; see GET /v1/models"
        raise APIError(404, message, "model", "model_not_found") from exc
    return name


def _exists(kb: str) -> bool:
    return any(row[0] == kb for row in list_kbs(get_settings().kb_root))


def _to_messages(body: ChatRequest, threaded: bool, limit: int) -> list[BaseMessage]:
    for i, m in enumerate(body.messages):
        if len(m.text()) > limit:
            raise APIError(
                400, f"messages[{i}].content is longer than {limit} characters", f"messages.{i}.content"
            )
    last = body.messages[-1]
    if last.role != "user":
        raise APIError(
            400, "the last message must have role 'user'", f"messages.{len(body.messages) - 1}.role"
        )
    if not last.text().strip():
        raise APIError(400, "the last user message is empty", f"messages.{len(body.messages) - 1}.content")
    if threaded:
        return [HumanMessage(last.text())]
    out: list[BaseMessage] = []
    for m in body.messages:
        if m.role == "user":
            out.append(HumanMessage(m.text()))
        elif m.role == "assistant":
            out.append(AIMessage(m.text()))
        elif m.role in ("system", "developer"):
            out.append(SystemMessage(m.text()))
        # tool messages carry no conversation text for a knowledge-base answer
    return out


def _thread(body: ChatRequest, header: str | None, from_user: bool) -> str | None:
    if body.thread_id:
        return body.thread_id
    if header:
        if not _THREAD_ID.fullmatch(header):  # the same ids as the body's thread_id and /v1/threads/{id}
            raise APIError(
                400, "X-Thread-Id must be 1-128 ASCII letters, digits, '.', '_', ':' or '-'", "thread_id"
            )
        return header
    # Chat UIs send `user` with every chat of a person, and the whole history with it: only when asked
    # (ZHIWEN_THREAD_FROM_USER) does it pick a thread. Any string may be a `user`; hashed, the threads
    # API can address it.
    if not (from_user and body.user):
        return None
    return "user-" + hashlib.sha256(body.user.encode()).hexdigest()[:32]


def _extras(state: dict[str, Any], thread: str | None) -> dict[str, Any]:
    return {
        "sources": public_sources(state.get("sources", [])),
        "quality": state.get("quality", {}),
        "cached": bool(state.get("quality", {}).get("cached")),
        "intent": state.get("intent", {}),
        "answer": state.get("answer", ""),
        "thread_id": thread,
    }


@router.post(
    "/v1/chat/completions", summary="Chat with a knowledge base (OpenAI-compatible)", response_model=None
)
async def chat_completions(
    body: ChatRequest, request: Request, x_thread_id: str | None = Header(default=None)
) -> JSONResponse | EventSourceResponse:
    rt = runtime_of(request)
    set_outcome(request.state, route="chat_stream" if body.stream else "chat")
    kb = await asyncio.to_thread(_kb_for, body.model, rt, principal_of(request))  # may read the store
    thread = _thread(body, x_thread_id, rt.settings.thread_from_user)
    stored = stored_thread(request, thread) if thread is not None else None
    messages = _to_messages(body, thread is not None, rt.settings.max_message_chars)
    if stored is not None:  # a new thread counts against its key's limit
        await asyncio.to_thread(rt.quotas.claim, "thread", principal_of(request).id, stored)
    await _reach_model()
    # Two turns forked from one checkpoint: the one that ends last would drop the other's messages. The lease
    # is held (in this process, or in the shared database across replicas) until the turn's task ends.
    lease = await rt.coordination.lock_thread(stored) if stored is not None else None
    if stored is not None and lease is None:
        raise APIError(
            409, f"thread {thread!r} has a turn running; send the next message after it ends",
            "thread_id", "thread_busy",
        )  # fmt: skip
    try:
        pump = _start_turn(rt, body, kb, messages, thread, stored)
    except BaseException:
        if lease is not None:
            await lease.release()
        raise
    if lease is not None:
        pump.task.add_done_callback(lambda _: _release_later(lease))
    started = time.perf_counter()
    first = asyncio.ensure_future(pump.next())
    gone = asyncio.ensure_future(_disconnected(request))
    try:
        done, _ = await asyncio.wait({first, gone}, timeout=rt.settings.error_window_seconds,
                                     return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
        if first in done and first.exception() is not None:
            await pump.close()
            raise _turn_error(rt, first.exception(), "before any output")
        if not body.stream:
            work = asyncio.ensure_future(
                _complete(rt, body.model, pump, first, thread, body.include_reasoning)
            )
            try:
                await asyncio.wait({work, gone}, return_when=asyncio.FIRST_COMPLETED)
                if not work.done():  # the client left: stop the turn (and its upstream request) now
                    rt.metrics.cancelled.inc()
                    work.cancel()
                    return JSONResponse(error_body(499, "the client closed the request"), status_code=499)
                if (exc := work.exception()) is not None:
                    raise _turn_error(rt, exc, "while answering") from exc
                return work.result()
            finally:
                await pump.close()
    finally:
        gone.cancel()  # from here on sse-starlette listens for the disconnect itself
    if gone.done() and not gone.cancelled():
        first.cancel()
        await pump.close()
        rt.metrics.cancelled.inc()
        return JSONResponse(error_body(499, "the client closed the request"), status_code=499)
    frames = _stream(rt, body, pump, first, thread, started, request.state)
    return EventSourceResponse(frames, ping=rt.settings.ping_seconds, sep="\n")


_releasing: set[asyncio.Task[None]] = set()


def _release_later(lease: ThreadLease) -> None:
    """Release ``lease`` from a done-callback (a reference is kept until the release has run)."""
    task = asyncio.ensure_future(lease.release())
    _releasing.add(task)
    task.add_done_callback(_releasing.discard)


def _start_turn(
    rt: AppRuntime,
    body: ChatRequest,
    kb: str,
    messages: list[BaseMessage],
    thread: str | None,
    stored: str | None,
) -> TurnPump:
    """The turn's events, running in a task of their own."""
    ctx = context_from_settings(kb=kb)
    ctx.stream_drafts = rt.settings.stream_drafts if body.stream_drafts is None else body.stream_drafts
    if body.temperature is not None:
        ctx.temperature = body.temperature
    if body.max_completion_tokens or body.max_tokens:
        ctx.max_tokens = body.max_completion_tokens or body.max_tokens or ctx.max_tokens
    graph = rt.threaded if thread else rt.stateless
    return TurnPump(stream_turn(graph, messages, ctx, stored), kb=kb)


_STATUS = (
    (LLMUnavailable, 502),
    (KnowledgeBaseNotFound, 404),
    (EmbeddingModelMismatch, 409),
    (ZhiwenError, 400),
)


def _turn_error(rt: AppRuntime, exc: BaseException | None, when: str) -> Exception:
    """A turn's failure as the HTTP error it deserves: ZhiwenErrors go to their handlers, the rest is 502."""
    status = next((code for kind, code in _STATUS if isinstance(exc, kind)), 502)
    if status == 502:
        rt.metrics.upstream_errors.labels(upstream_kind(exc)).inc()
    if isinstance(exc, ZhiwenError):
        return exc
    log.warning("chat turn failed %s: %r", when, exc)
    detail = public_message(exc) if exc is not None else "no answer"
    return APIError(502, f"the turn failed {when}: {detail}", code="upstream_error")


async def _disconnected(request: Request) -> None:
    """Returns when the client goes away (the body is read by now, so receive() waits for that)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass


async def _reach_model() -> None:
    """Start, or restart after a crash, the embedded model server in a worker thread.

    The nodes resolve the endpoint synchronously; with the server up that is a dictionary look-up, but a
    start (up to two minutes) on the event loop would freeze every other stream and /live meanwhile.
    """
    settings = get_settings()
    if not settings.llm_base_url:
        await asyncio.to_thread(resolve_endpoint, settings)


async def _complete(
    rt: AppRuntime, model: str, pump: TurnPump, first: asyncio.Future[TurnEvent],
    thread: str | None, include_reasoning: bool,
) -> JSONResponse:  # fmt: skip
    event = await first
    while event.kind != "final":
        event = await pump.next()
    state = event.state
    answer = str(state.get("answer", ""))
    usage = fill_usage(event.usage)
    reasoning = str(state.get("reasoning", "")) if include_reasoning else None
    rt.metrics.turn_finished(state, usage, pump.kb)
    body = ChatFrames(model).completion(
        answer, usage, reasoning, finish_reason(state), **_extras(state, thread)
    )
    return JSONResponse(body)


def _closing(
    rt: AppRuntime, body: ChatRequest, frames: ChatFrames, event: TurnEvent, streamed: list[str],
    thread: str | None, reasoning_sent: bool, kb: str,
) -> list[str]:  # fmt: skip
    """The last events: a reply not streamed token by token, the stop frame with extras, usage, [DONE]."""
    state = event.state
    out = []
    end = closing(state, "".join(streamed))
    rest = end.text()
    if rest:
        # Refusals, non-generated replies and held answers (stream_drafts off) were not streamed: send them
        # now, after a withdrawal notice when the gate refused the draft the client has just shown.
        reasoning = str(state.get("reasoning", ""))
        if not streamed and not reasoning_sent and body.include_reasoning and reasoning:
            out.append(_data(frames.chunk({"reasoning_content": reasoning})))
        text = ("\n\n" if streamed else "") + rest
        streamed.append(text)
        withdrawn = {"withdrawn": end.notice} if end.notice else {}  # the page replaces the draft shown
        out.append(_data(frames.chunk({"content": text}, **withdrawn)))
    out.append(_data(frames.chunk({}, finish_reason(state), **_extras(state, thread))))
    usage = fill_usage(event.usage)
    if body.stream_options and body.stream_options.include_usage:
        out.append(_data(frames.usage_chunk(usage)))
    rt.metrics.turn_finished(state, usage, kb)
    out.append(_data("[DONE]"))
    return out


def _data(payload: dict[str, Any] | str) -> str:
    """One SSE event; JSON escapes newlines, so the payload is always a single ``data:`` line."""
    text = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {text}\n\n"


def _merged(events: list[TurnEvent]) -> list[tuple[TurnEvent, int]]:
    """Consecutive token (or reasoning) events joined into one, with how many were joined."""
    out: list[tuple[TurnEvent, int]] = []
    for event in events:
        if out and event.kind in ("token", "reasoning") and out[-1][0].kind == event.kind:
            last, n = out[-1]
            out[-1] = (TurnEvent(event.kind, last.text + event.text, elapsed=event.elapsed), n + 1)
        else:
            out.append((event, 1))
    return out


async def _stream(
    rt: AppRuntime, body: ChatRequest, pump: TurnPump, first: asyncio.Future[TurnEvent],
    thread: str | None, started: float, outcome: Any,
) -> AsyncIterator[bytes]:  # fmt: skip
    """The SSE body, one socket write per batch of events.

    Events that are already queued when the writer wakes up (a fast model, or a busy server) go out
    together, consecutive tokens as one delta: each write on a local socket costs about as much CPU as
    the rest of a frame's path, so batching is what keeps a loaded server's latency flat.
    """
    frames = ChatFrames(body.model)
    streamed: list[str] = []
    finished = reasoning_sent = False
    out = [_data(frames.chunk({"role": "assistant", "content": ""}))]
    try:
        events = [await first]
        while not finished:
            for event, _ in _merged(events + pump.ready()):
                if event.kind == "token":
                    if not streamed:
                        rt.metrics.ttft.observe(time.perf_counter() - started)
                    streamed.append(event.text)
                    out.append(_data(frames.chunk({"content": event.text})))
                elif event.kind == "reasoning" and body.include_reasoning:
                    reasoning_sent = True
                    out.append(_data(frames.chunk({"reasoning_content": event.text})))
                elif event.kind == "retry" and streamed:  # the draft shown is withdrawn; the next follows
                    streamed.append(f"\n\n{event.text}\n\n")
                    out.append(_data(frames.chunk({"content": streamed[-1]}, withdrawn=event.text)))
                elif event.kind == "final":
                    out += _closing(rt, body, frames, event, streamed, thread, reasoning_sent, pump.kb)
                    finished = True
                    break
            yield "".join(out).encode()
            out = []
            if not finished:
                events = [await pump.next()]
    except asyncio.CancelledError:
        rt.metrics.cancelled.inc()
        set_outcome(outcome, status=499)  # the client left; counted as nginx counts it
        raise
    except Exception as exc:  # after the first byte an error can only travel inside the stream
        status = 502 if isinstance(exc, LLMUnavailable) else 500
        set_outcome(outcome, status=status)
        if status == 502:
            rt.metrics.upstream_errors.labels(upstream_kind(exc)).inc()
            log.warning("chat turn failed while streaming: %s", getattr(exc, "detail", None) or repr(exc))
        else:
            log.error("chat turn failed while streaming", exc_info=exc)
        message = public_message(exc)
        error = error_body(status, f"the turn failed while streaming: {message}")
        yield (_data(error) + _data("[DONE]")).encode()
    finally:
        if not finished:
            first.cancel()
            await pump.close()
