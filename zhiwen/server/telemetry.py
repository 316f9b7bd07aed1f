"""OpenTelemetry: one trace per request, a span per graph node and LLM call; content off by default.

``ZHIWEN_OTEL=otlp`` exports with the standard ``OTEL_EXPORTER_OTLP_*`` variables, ``console`` prints
spans, ``off`` (default) installs nothing. Prompt and document text are recorded only with
``ZHIWEN_OTEL_RECORD_CONTENT=true``.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI

from zhiwen.server.settings import ServerSettings

__all__ = ["setup_tracing"]

_instrumented = False


def setup_tracing(app: FastAPI, settings: ServerSettings, exporter: Any = None) -> Any:
    """Install tracing; returns the TracerProvider (or None when off). ``exporter`` overrides (tests)."""
    global _instrumented
    if settings.otel == "off" and exporter is None:
        return None
    from openinference.instrumentation import TraceConfig
    from openinference.instrumentation.langchain import LangChainInstrumentor
    from opentelemetry.instrumentation.fastapi import FastAPIInstrumentor
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, SimpleSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": "zhiwen"}))
    if exporter is not None:
        provider.add_span_processor(SimpleSpanProcessor(exporter))
    elif settings.otel == "console":
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
    return provider
