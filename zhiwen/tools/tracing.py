"""The tracer zhiwen's own spans use, and W3C trace context for requests to the model endpoint.

``server/telemetry.py`` installs the provider when tracing is on; until then ``tracer()`` is OpenTelemetry's
no-op tracer, so an untraced process pays nothing. ``trace_headers()`` carries the current trace to vLLM
(``traceparent``), which then joins zhiwen's trace.
"""

from __future__ import annotations

from typing import Any

from opentelemetry import propagate, trace

__all__ = ["set_provider", "trace_headers", "tracer"]

_provider: Any = None


def set_provider(provider: Any) -> None:
    global _provider
    _provider = provider


def tracer() -> trace.Tracer:
    return _provider.get_tracer("zhiwen") if _provider is not None else trace.NoOpTracer()


def trace_headers() -> dict[str, str]:
    """``traceparent`` (and ``tracestate``) of the current span; empty outside a recorded trace."""
    carrier: dict[str, str] = {}
    propagate.inject(carrier)
    return carrier
