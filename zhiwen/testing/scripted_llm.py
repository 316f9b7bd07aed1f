"""A scripted OpenAI-compatible chat-completions server (a stand-in for vLLM serving a reasoning model).

Tests enqueue :class:`Script` objects on a :class:`ScriptedLLM`; each ``POST /v1/chat/completions``
consumes one (or the default when the queue is empty) and answers with exactly the scripted chunks,
delays and failures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import socket
import threading
import time
import uuid
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any

import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response, StreamingResponse

MODEL_ID = "scripted"


@dataclass
class Script:
    """What the server answers to one request."""

    text: str
    chunks: list[str] | None = None
    chunk_size: int = 3
    token_delay: float = 0.0
    first_token_delay: float = 0.0
    reasoning_content: str | None = None
    status: int = 200
    cut_after: int | None = None
    fail_times: int = 0
    retry_after: float | None = None  # sent as Retry-After with the fail_times 503s and with `status`
    finish_reason: str = "stop"  # "length": the answer was cut at max_tokens
    _failed: int = field(default=0, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.chunk_size < 1:
            raise ValueError("chunk_size must be >= 1")
        if self.chunks is not None and "".join(self.chunks) != self.text:
            raise ValueError("''.join(chunks) must equal text")

    def content_chunks(self) -> list[str]:
        if self.chunks is not None:
            return [c for c in self.chunks if c]
        return _split(self.text, self.chunk_size)

    def reasoning_chunks(self) -> list[str]:
        return _split(self.reasoning_content or "", self.chunk_size)


def _split(text: str, size: int) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)]


class ScriptedLLM:
    """A queue of scripts plus a record of what the server received."""

    def __init__(self, default: Script | None = None) -> None:
        self.default: Script = default if default is not None else Script(text="OK")
        self.requests: list[dict[str, Any]] = []
        self.headers: list[dict[str, str]] = []
        """The HTTP headers of each chat request, in order (lower-case names)."""
        self.peers: list[int] = []  # the client's TCP port per request: shows connection reuse
        self.cancelled: int = 0
        self._queue: deque[Script] = deque()
        self._lock = threading.Lock()

    def enqueue(self, *scripts: Script) -> None:
        with self._lock:
            self._queue.extend(scripts)

    @property
    def pending(self) -> int:
        with self._lock:
            return len(self._queue)

    def _take(self, body: dict[str, Any]) -> tuple[Script, bool]:
        """Record the request; return the script to play and whether to fail it with a 503."""
        with self._lock:
            self.requests.append(body)
            script = self._queue[0] if self._queue else self.default
            if script._failed < script.fail_times:
                script._failed += 1
                return script, True
            if self._queue:
                self._queue.popleft()
            return script, False

    def _count_cancel(self) -> None:
        with self._lock:
            self.cancelled += 1


def _error(status: int, message: str, retry_after: float | None = None) -> JSONResponse:
    kind = "server_error" if status >= 500 else "invalid_request_error"
    body = {"error": {"message": message, "type": kind, "param": None, "code": status}}
    headers = {"Retry-After": f"{retry_after:g}"} if retry_after is not None else None
    return JSONResponse(body, status_code=status, headers=headers)


def _usage(body: dict[str, Any], completion_tokens: int) -> dict[str, int]:
    chars = 0
    for message in body.get("messages") or []:
        content = message.get("content") if isinstance(message, dict) else None
        chars += len(content if isinstance(content, str) else json.dumps(content or "", ensure_ascii=False))
    prompt = max(1, chars // 4)
    total = prompt + completion_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion_tokens, "total_tokens": total}


def _frame(payload: dict[str, Any] | str) -> bytes:
    data = payload if isinstance(payload, str) else json.dumps(payload, ensure_ascii=False)
    return f"data: {data}\n\n".encode()


async def _stream(
    request: Request, llm: ScriptedLLM, script: Script, body: dict[str, Any]
) -> AsyncIterator[bytes]:
    base = {
        "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
        "object": "chat.completion.chunk",
        "created": int(time.time()),
        "model": str(body.get("model") or MODEL_ID),
    }

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}
        return _frame({**base, "choices": [choice]})

    deltas = [{"reasoning_content": r} for r in script.reasoning_chunks()]
    content = script.content_chunks()
    cut = script.cut_after is not None and script.cut_after < len(content)
    deltas += [{"content": c} for c in content[: script.cut_after]]
    finished = False
    try:
        yield chunk({"role": "assistant", "content": ""})
        for i, delta in enumerate(deltas):
            await asyncio.sleep(script.first_token_delay if i == 0 else script.token_delay)
            if await request.is_disconnected():
                return
            yield chunk(delta)
        if cut:
            finished = True
            return
        yield chunk({}, script.finish_reason)
        if (body.get("stream_options") or {}).get("include_usage"):
            yield _frame({**base, "choices": [], "usage": _usage(body, len(deltas))})
        finished = True
        yield _frame("[DONE]")
    finally:
        if not finished:
            llm._count_cancel()


def create_app(llm: ScriptedLLM) -> FastAPI:
    app = FastAPI(title="scripted-llm")

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/v1/models")
    async def models() -> dict[str, Any]:
        model = {"id": MODEL_ID, "object": "model", "created": 0, "owned_by": "zhiwen"}
        return {"object": "list", "data": [model]}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "request body is not valid JSON")
        if not isinstance(body, dict):
            return _error(400, "request body must be a JSON object")
        if request.client is not None:
            llm.peers.append(request.client.port)
        llm.headers.append(dict(request.headers))
        script, fail = llm._take(body)
        if fail:
            return _error(503, "scripted transient failure", script.retry_after)
        if script.status != 200:
            return _error(script.status, f"scripted error {script.status}", script.retry_after)
        if body.get("stream"):
            return StreamingResponse(
                _stream(request, llm, script, body),
                media_type="text/event-stream",
                headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
            )
        content, reasoning = script.content_chunks(), script.reasoning_chunks()
        n = len(content) + len(reasoning)
        await asyncio.sleep(script.first_token_delay + script.token_delay * max(0, n - 1))
        message: dict[str, Any] = {"role": "assistant", "content": script.text}
        if script.reasoning_content is not None:
            message["reasoning_content"] = script.reasoning_content
        return JSONResponse(
            {
                "id": f"chatcmpl-{uuid.uuid4().hex[:12]}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": str(body.get("model") or MODEL_ID),
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": script.finish_reason}
                ],
                "usage": _usage(body, n),
            }
        )

    return app


class ScriptedLLMServer:
    """Run a :class:`ScriptedLLM` app with uvicorn in a background thread on 127.0.0.1."""

    def __init__(
        self, llm: ScriptedLLM | None = None, *, port: int = 0, startup_timeout: float = 10.0
    ) -> None:
        self.llm: ScriptedLLM = llm if llm is not None else ScriptedLLM()
        self._requested_port = port
        self._startup_timeout = startup_timeout
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self.port: int = 0

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def start(self) -> ScriptedLLMServer:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self._requested_port))
        self.port = sock.getsockname()[1]
        config = uvicorn.Config(
            create_app(self.llm), log_level="warning", lifespan="off", timeout_graceful_shutdown=1
        )
        server = self._server = uvicorn.Server(config)
        self._thread = threading.Thread(
            target=server.run, kwargs={"sockets": [sock]}, name=f"scripted-llm-{self.port}", daemon=True
        )
        self._thread.start()
        deadline = time.monotonic() + self._startup_timeout
        while not server.started:
            if not self._thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("scripted LLM server failed to start")
            time.sleep(0.01)
        return self

    def stop(self, timeout: float = 5.0) -> None:
        if self._server is None or self._thread is None:
            return
        self._server.should_exit = True
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._server.force_exit = True
            self._thread.join(timeout)
        self._server = self._thread = None

    def __enter__(self) -> ScriptedLLMServer:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a fixed scripted OpenAI-compatible chat model.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8011)
    parser.add_argument("--text", default="<think>Let me think.</think>The answer is 42.")
    parser.add_argument("--reasoning-content", default=None)
    parser.add_argument("--chunk-size", type=int, default=3)
    parser.add_argument("--token-delay", type=float, default=0.0)
    parser.add_argument("--first-token-delay", type=float, default=0.0)
    args = parser.parse_args(argv)
    script = Script(
        text=args.text,
        chunk_size=args.chunk_size,
        token_delay=args.token_delay,
        first_token_delay=args.first_token_delay,
        reasoning_content=args.reasoning_content,
    )
    uvicorn.run(create_app(ScriptedLLM(default=script)), host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
