"""The chat-model cache: bounded, whatever temperatures and token limits a server's clients send."""

from __future__ import annotations

import asyncio

import pytest

from zhiwen.graph.context import Context
from zhiwen.nodes import _common
from zhiwen.nodes._common import chat_model
from zhiwen.testing.scripted_llm import Script, ScriptedLLM, ScriptedLLMServer


def test_models_are_bounded_and_share_one_http_client_per_endpoint() -> None:
    async def many() -> list[object]:
        models = []
        for i in range(3 * _common._MAX_MODELS):
            ctx = Context(base_url="http://127.0.0.1:9/v1", temperature=i / 1000, max_tokens=100 + i)
            models.append(chat_model(ctx))
        again = chat_model(Context(base_url="http://127.0.0.1:9/v1", temperature=0.0, max_tokens=100))
        assert again is not models[0]  # the first was evicted long ago
        newest = Context(base_url="http://127.0.0.1:9/v1", temperature=(len(models) - 1) / 1000,
                         max_tokens=100 + len(models) - 1)  # fmt: skip
        assert chat_model(newest) is models[-1]  # a recent one is reused
        return models

    models = asyncio.run(many())
    assert len(_common._models) == _common._MAX_MODELS
    clients = {id(m.http_async_client) for m in models}  # type: ignore[attr-defined]
    assert len(clients) == 1


def test_a_local_endpoint_is_reached_directly_despite_an_http_proxy(monkeypatch: pytest.MonkeyPatch) -> None:
    with ScriptedLLMServer(ScriptedLLM(default=Script("pong"))) as server:
        for var in ("HTTP_PROXY", "http_proxy", "ALL_PROXY", "all_proxy"):
            monkeypatch.setenv(var, "http://127.0.0.1:9")  # a proxy nobody answers on
        monkeypatch.delenv("NO_PROXY", raising=False)
        monkeypatch.delenv("no_proxy", raising=False)

        async def ask() -> tuple[str, int]:
            model = chat_model(Context(base_url=server.base_url), filtered=False)
            answer = str((await model.ainvoke("ping")).content)
            # The SDK's own client too (non-streamed and structured calls go through it).
            models = await model.http_async_client.get(f"{server.base_url}/models")  # type: ignore[attr-defined]
            return answer, models.status_code

        assert asyncio.run(ask()) == ("pong", 200)


def test_models_of_one_endpoint_stream_through_one_connection_pool() -> None:
    async def streams() -> set[int]:
        models = [
            chat_model(Context(base_url="http://127.0.0.1:9/v1", temperature=t / 10, max_tokens=50 + t))
            for t in range(5)
        ]
        return {id(m._completion_stream()) for m in models}  # type: ignore[attr-defined]

    assert len(asyncio.run(streams())) == 1
