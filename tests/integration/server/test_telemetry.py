"""Tracing: one trace per request covering the server, the graph's nodes and the LLM call; no content
in spans unless ``otel_record_content`` is on."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import httpx
import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from zhiwen.server.app import create_app
from zhiwen.server.settings import ServerSettings
from zhiwen.server.telemetry import setup_tracing, tracing_mode
from zhiwen.tools.tracing import set_provider

if TYPE_CHECKING:
    from conftest import Env, Kit

    from zhiwen.testing.scripted_llm import ScriptedLLM

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("no_blocking_calls")]

NODES = {"track_intent", "retrieve", "generate", "strip_think", "evaluate"}


@pytest.fixture
def uninstrument() -> Iterator[None]:
    """Tracing hooks LangChain process-wide: take it out again so other tests run untraced."""
    yield
    from openinference.instrumentation.langchain import LangChainInstrumentor

    LangChainInstrumentor().uninstrument()
    set_provider(None)


def _traced_turn(
    env: Env, kit: type[Kit], llm: ScriptedLLM, record: bool, stream: bool
) -> list[ReadableSpan]:
    exporter = InMemorySpanExporter()
    app = create_app(kit.open_settings(), start_model=False)
    provider = setup_tracing(
        app, ServerSettings(otel="console", otel_record_content=record), exporter=exporter
    )
    assert provider is not None
    llm.enqueue(kit.Script(kit.ANSWER))
    with kit.serve(app) as url, httpx.Client(base_url=url, timeout=60) as c:
        resp = c.post("/v1/chat/completions", json=kit.chat_body(stream=stream))
        assert resp.status_code == 200
        assert kit.ANSWER.rstrip(".") in resp.text
    provider.force_flush()
    return list(exporter.get_finished_spans())


def _attribute_text(spans: list[ReadableSpan]) -> str:
    return json.dumps(
        [{k: str(v) for k, v in (s.attributes or {}).items()} for s in spans], ensure_ascii=False
    )


def _names(spans: list[ReadableSpan]) -> set[str]:
    return {s.name for s in spans}


def _check_one_trace(spans: list[ReadableSpan]) -> dict[str, Any]:
    names = _names(spans)
    assert names >= NODES, names
    server = [s for s in spans if s.name.startswith("POST /v1/chat/completions")]
    assert server, names
    llm_spans = [s for s in spans if (s.attributes or {}).get("openinference.span.kind") == "LLM"]
    assert llm_spans, names
    traces = {s.context.trace_id for s in spans}
    assert len(traces) == 1, "server, node and LLM spans should share one trace"
    root = [s for s in spans if s.parent is None]
    assert [s.name for s in root] == [server[0].name]
    by_id = {s.context.span_id: s for s in spans}
    generate = next(s for s in spans if s.name == "generate")
    llm_ancestors = []
    node: ReadableSpan | None = llm_spans[0]
    while node is not None and node.parent is not None:
        node = by_id.get(node.parent.span_id)
        llm_ancestors.append(node.name if node else None)
    assert "generate" in llm_ancestors
    return {"generate": generate, "llm": llm_spans}


@pytest.mark.parametrize("stream", [False, True])
def test_spans_cover_the_turn_without_content(
    env: Env, kit: type[Kit], llm: ScriptedLLM, uninstrument: None, stream: bool
) -> None:
    spans = _traced_turn(env, kit, llm, record=False, stream=stream)
    _check_one_trace(spans)
    text = _attribute_text(spans)
    assert kit.QUESTION not in text and "gold card" not in text.lower()
    assert "300 yuan" not in text and "三百元" not in text  # neither document nor answer text
    assert not [s.name for s in spans if s.name in ("send", "receive") or s.name.endswith(" send")]


def test_content_is_recorded_when_asked(
    env: Env, kit: type[Kit], llm: ScriptedLLM, uninstrument: None
) -> None:
    spans = _traced_turn(env, kit, llm, record=True, stream=False)
    _check_one_trace(spans)
    text = _attribute_text(spans)
    assert kit.QUESTION in text
    assert "The first year is free of charge" in text  # the document, as sent in the prompt
    assert kit.ANSWER in text


@pytest.mark.parametrize("stream", [False, True])
def test_the_model_request_carries_the_trace_and_gen_ai_attributes(
    env: Env, kit: type[Kit], llm: ScriptedLLM, uninstrument: None, stream: bool
) -> None:
    spans = _traced_turn(env, kit, llm, record=False, stream=stream)
    chat = [s for s in spans if (s.attributes or {}).get("gen_ai.operation.name") == "chat"]
    assert chat, _names(spans)
    attributes = chat[-1].attributes or {}
    assert attributes["gen_ai.request.model"] == "scripted" and attributes["gen_ai.provider.name"] == "openai"
    assert attributes["server.address"] == "127.0.0.1" and attributes["http.response.status_code"] == 200
    assert attributes["gen_ai.request.max_tokens"] == 320
    _version, trace_id, parent_id, _flags = llm.headers[-1]["traceparent"].split("-")
    assert int(trace_id, 16) == chat[-1].context.trace_id, "the model endpoint joins the turn's trace"
    assert int(parent_id, 16) == chat[-1].context.span_id, "as a child of zhiwen's model-request span"
    assert len({s.context.trace_id for s in spans}) == 1


def test_the_opentelemetry_environment_decides_when_zhiwen_otel_is_unset(
    env: Env, kit: type[Kit], llm: ScriptedLLM, uninstrument: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    for var in ("ZHIWEN_OTEL", "OTEL_TRACES_EXPORTER", "OTEL_SDK_DISABLED", "OTEL_SERVICE_NAME"):
        monkeypatch.delenv(var, raising=False)
    assert tracing_mode(ServerSettings()) == "off"
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "console")
    assert tracing_mode(ServerSettings()) == "console"
    assert tracing_mode(ServerSettings(otel="off")) == "off", "ZHIWEN_OTEL, when set, wins"
    monkeypatch.setenv("OTEL_SDK_DISABLED", "true")
    assert tracing_mode(ServerSettings(otel="otlp")) == "off", "OTEL_SDK_DISABLED wins over everything"
    monkeypatch.delenv("OTEL_SDK_DISABLED")
    monkeypatch.delenv("OTEL_TRACES_EXPORTER")  # the app below would print its spans to the console
    monkeypatch.setenv("OTEL_SERVICE_NAME", "kb-chat-prod")
    spans = _traced_turn(env, kit, llm, record=False, stream=False)
    assert {s.resource.attributes["service.name"] for s in spans} == {"kb-chat-prod"}
