"""OpenTelemetry tracing, wired into Temporal through the SDK's interceptor.

Spans cover client calls, workflow tasks, signals, updates and activities. Tracing is on when
something will receive the spans: `YUQING_TRACE_CONSOLE=1` prints them, and a deployment that
exports them sets the standard `OTEL_TRACES_EXPORTER` or `OTEL_EXPORTER_OTLP_ENDPOINT` (and adds
its exporter to `provider()`). Otherwise no interceptor is installed: a span nobody collects
costs CPU in every process, and its context travels as a header in every activity, update and
start of every history (issue 9).
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from temporalio.contrib.opentelemetry import TracingInterceptor

_provider: TracerProvider | None = None

# The variables that say spans are wanted somewhere.
_EXPORTING = (
    "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
)


def tracing_enabled(env: Mapping[str, str] | None = None) -> bool:
    env = os.environ if env is None else env
    if env.get("YUQING_TRACE_CONSOLE") == "1":
        return True
    return any(env.get(name) and env.get(name) != "none" for name in _EXPORTING)


def provider(service_name: str = "yuqing") -> TracerProvider:
    """The process's tracer provider (made on first use), where exporters are added."""
    global _provider
    if _provider is None:
        # Imported here: the OpenTelemetry SDK costs every process ~80 ms to import.
        from opentelemetry import trace
        from opentelemetry.sdk.resources import Resource
        from opentelemetry.sdk.trace import TracerProvider
        from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor

        _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if os.environ.get("YUQING_TRACE_CONSOLE") == "1":
            _provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(_provider)
    return _provider


def tracing_interceptor(service_name: str = "yuqing") -> TracingInterceptor:
    from temporalio.contrib.opentelemetry import TracingInterceptor

    return TracingInterceptor(provider(service_name).get_tracer("yuqing"))


def tracing_interceptors(env: Mapping[str, str] | None = None) -> list[Any]:
    """What a client (and the workers made from it) is given: the tracing interceptor when
    tracing is on, else nothing."""
    return [tracing_interceptor()] if tracing_enabled(env) else []
