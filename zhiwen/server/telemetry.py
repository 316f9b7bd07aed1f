"""OpenTelemetry: one trace per request, a span per graph node and LLM call; content off by default.

``ZHIWEN_OTEL=otlp`` exports with the standard ``OTEL_EXPORTER_OTLP_*`` variables, ``console`` prints
spans, ``off`` installs nothing. Unset, the standard OpenTelemetry environment decides: ``OTEL_TRACES_EXPORTER``
(``otlp``, ``console``; anything else is off). ``OTEL_SDK_DISABLED=true`` turns tracing off whatever else is
set, and ``OTEL_SERVICE_NAME`` / ``OTEL_RESOURCE_ATTRIBUTES`` name the service (default ``zhiwen``). Prompt
and document text are recorded only with ``ZHIWEN_OTEL_RECORD_CONTENT=true``.
"""

from __future__ import annotations

import os
from typing import Any

from fastapi import FastAPI

from zhiwen.server.settings import ServerSettings
from zhiwen.tools.tracing import set_provider

__all__ = ["setup_tracing", "tracing_mode"]

_instrumented = False


def tracing_mode(settings: ServerSettings) -> str:
    """off, console or otlp: ZHIWEN_OTEL, else OTEL_TRACES_EXPORTER; OTEL_SDK_DISABLED=true wins."""
    if os.environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return "off"
    if settings.otel is not None:
        return settings.otel
    first = os.environ.get("OTEL_TRACES_EXPORTER", "").split(",")[0].strip().lower()
    return first if first in ("otlp", "console") else "off"


def setup_tracing(app: FastAPI, settings: ServerSettings, exporter: Any = None) -> Any:
    """Install tracing; returns the TracerProvider (or None when off). ``exporter`` overrides (tests)."""
    global _instrumented
    mode = tracing_mode(settings)
    if mode == "off" and exporter is None:
        return None
    from openinference.instrumentation import TraceConfig
    from openinference.instrumentation.langchain import LangChainInstrumentor
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    named = "OTEL_SERVICE_NAME" in os.environ or "service.name=" in os.environ.get(
        "OTEL_RESOURCE_ATTRIBUTES", ""
    )
    provider = TracerProvider(resource=Resource.create({} if named else {"service.name": "zhiwen"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif mode == "console":
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter

        provider.add_span_processor(BatchSpanProcessor(ConsoleSpanExporter()))
    else:
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter()))
    hide = not settings.otel_record_content
    config = TraceConfig(
        hide_inputs=hide, hide_outputs=hide, hide_input_messages=hide, hide_output_messages=hide
    )
    if _instrumented:
        LangChainInstrumentor().uninstrument()
    LangChainInstrumentor().instrument(tracer_provider=provider, config=config)
    FastAPIInstrumentor.instrument_app(app, tracer_provider=provider, exclude_spans=["send", "receive"])
    _instrumented = True
    set_provider(provider)  # zhiwen's own spans (the model request) join the same traces
    return provider
