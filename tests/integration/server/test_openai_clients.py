"""Unmodified OpenAI clients (the ``openai`` SDK, LangChain's ChatOpenAI) work against the server."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import httpx
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_openai import ChatOpenAI
from openai import NotFoundError, OpenAI

from zhiwen.nodes.prompts import SYSTEM, system_prompt
from zhiwen.settings import get_settings
from zhiwen.tools.bank_policy import without_fixed_texts

if TYPE_CHECKING:
    from conftest import Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]


@pytest.fixture
def openai_client(base_url: str) -> OpenAI:
    return OpenAI(base_url=f"{base_url}/v1", api_key="unused-when-open", max_retries=0, timeout=60)


def _answer_of(text: str) -> str:
    """The answer with the attribution markers (`` [1]``) the quality gate adds taken out."""
    return text.replace(" [1]", "").replace("[1]", "").strip()


def test_models_lists_one_model_per_kb(openai_client: OpenAI, kit: type[Kit]) -> None:
    models = openai_client.models.list()
    assert [m.id for m in models.data] == [kit.KB]
    assert models.data[0].object == "model"
    assert models.data[0].model_extra == {"documents": len(kit.DOCS)}


def test_a_model_is_retrieved_by_its_id_and_a_missing_one_is_not_found(
    openai_client: OpenAI, kit: type[Kit]
) -> None:
    model = openai_client.models.retrieve(kit.KB)
    assert model.id == kit.KB and model.object == "model" and model.owned_by == "zhiwen"
    assert openai_client.models.retrieve("zhiwen:" + kit.KB).id == kit.KB
    with pytest.raises(NotFoundError):
        openai_client.models.retrieve("no-such-kb")


def test_probes_answer_head(client: httpx.Client) -> None:
    for path in ("/live", "/health", "/ready"):
        probe = client.head(path)
        assert probe.status_code in (200, 503) and probe.content == b"", path  # 503: /ready, model not up


def test_non_streaming_completion(openai_client: OpenAI, llm: ScriptedLLM, kit: type[Kit]) -> None:
    resp = openai_client.chat.completions.create(
        model=kit.KB, messages=[{"role": "user", "content": kit.QUESTION}]
    )
    assert resp.object == "chat.completion"
    message = resp.choices[0].message
    assert message.role == "assistant"
    assert _answer_of(message.content or "") == kit.ANSWER
    assert resp.choices[0].finish_reason == "stop"
    assert resp.usage is not None
    assert resp.usage.prompt_tokens > 0 and resp.usage.completion_tokens > 0
    assert resp.usage.total_tokens == resp.usage.prompt_tokens + resp.usage.completion_tokens
    extra: dict[str, Any] = resp.model_extra or {}
    assert extra["quality"]["verdict"] == "pass"
    assert extra["sources"] and "gold card" in extra["sources"][0]["text"]
    # The question reached the upstream model inside the numbered-context prompt.
    assert len(llm.requests) == 1
    assert kit.QUESTION in llm.requests[0]["messages"][-1]["content"]


def test_streaming_with_usage(openai_client: OpenAI, llm: ScriptedLLM, kit: type[Kit]) -> None:
    # Tokens spaced like a real model's: the server writes what is queued together, so an upstream
    # that sends everything at once would legitimately arrive as one frame.
    llm.enqueue(kit.Script(kit.ANSWER, chunk_size=4, token_delay=0.03))
    chunks = list(
        openai_client.chat.completions.create(
            model=kit.KB,
            messages=[{"role": "user", "content": kit.QUESTION}],
            stream=True,
            stream_options={"include_usage": True},
        )
    )
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == kit.ANSWER
    assert sum(1 for c in chunks if c.choices and c.choices[0].delta.content) > 3  # really streamed
    assert len({c.id for c in chunks}) == 1
    last = chunks[-1]
    assert last.choices == [] and last.usage is not None
    assert last.usage.total_tokens == last.usage.prompt_tokens + last.usage.completion_tokens > 0
    finish = chunks[-2]
    assert finish.choices[0].finish_reason == "stop"
    extra: dict[str, Any] = finish.model_extra or {}
    assert extra["quality"]["verdict"] == "pass"
    assert extra["sources"][0]["source"].rsplit("/", 1)[-1] == "gold-card.md"
    assert all(c.usage is None for c in chunks[:-1])


def test_streaming_without_usage_option_has_no_usage_chunk(openai_client: OpenAI, kit: type[Kit]) -> None:
    chunks = list(
        openai_client.chat.completions.create(
            model=kit.KB, messages=[{"role": "user", "content": kit.QUESTION}], stream=True
        )
    )
    assert all(c.usage is None for c in chunks)
    assert chunks[-1].choices[0].finish_reason == "stop"
    extra: dict[str, Any] = chunks[-1].model_extra or {}
    assert {"sources", "quality", "answer", "thread_id"} <= set(extra)
    assert all(not (c.model_extra or {}).get("sources") for c in chunks[:-1])


def test_unknown_model_is_openai_not_found(openai_client: OpenAI) -> None:
    with pytest.raises(NotFoundError) as err:
        openai_client.chat.completions.create(
            model="no-such-kb", messages=[{"role": "user", "content": "hi"}]
        )
    assert err.value.status_code == 404
    assert err.value.code == "model_not_found"
    assert "no-such-kb" in err.value.message


def test_langchain_chat_openai_invoke_and_stream(base_url: str, llm: ScriptedLLM, kit: type[Kit]) -> None:
    model = ChatOpenAI(base_url=f"{base_url}/v1", api_key="unused-when-open", model=kit.KB, max_retries=0)
    reply = model.invoke(kit.QUESTION)
    assert isinstance(reply, AIMessage)
    assert _answer_of(str(reply.content)) == kit.ANSWER

    llm.enqueue(kit.Script(kit.ANSWER_2, chunk_size=5, token_delay=0.03))  # spaced like a real model
    parts = list(model.stream(kit.QUESTION_2))
    assert all(isinstance(p, AIMessageChunk) for p in parts)
    streamed = "".join(str(p.content) for p in parts)
    assert without_fixed_texts(streamed).strip() == kit.ANSWER_2
    assert streamed.rstrip().endswith("the bank never asks for your password or codes."), (
        "a transfer answer: the bank's reminder follows the streamed draft"
    )
    assert sum(1 for p in parts if p.content) > 3


def test_models_route_matches_kb_list(client: httpx.Client, kit: type[Kit]) -> None:
    models = client.get("/v1/models").json()
    kbs = client.get("/v1/kbs").json()
    assert models["object"] == "list"
    assert [m["id"] for m in models["data"]] == [k["name"] for k in kbs["data"]] == [kit.KB]


def test_persona_setting_reaches_the_model_prompt(
    client: httpx.Client, llm: ScriptedLLM, kit: type[Kit], monkeypatch: pytest.MonkeyPatch
) -> None:
    """ZHIWEN_PERSONA=general: the system prompt the upstream model gets names no bank (default: a bank's)."""
    for persona, expected in (("general", system_prompt("en", "general")), (None, SYSTEM["en"])):
        if persona:
            monkeypatch.setenv("ZHIWEN_PERSONA", persona)
        else:
            monkeypatch.delenv("ZHIWEN_PERSONA", raising=False)
        get_settings.cache_clear()
        llm.requests.clear()
        resp = client.post("/v1/chat/completions", json=kit.chat_body())
        assert resp.status_code == 200, resp.text
        assert llm.requests[-1]["messages"][0] == {"role": "system", "content": expected}
    assert "bank" not in system_prompt("en", "general")
    get_settings.cache_clear()
