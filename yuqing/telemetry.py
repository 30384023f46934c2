"""OpenTelemetry tracing, wired into Temporal through the SDK's interceptor.

Spans cover client calls, workflow tasks, signals and activities. With no exporter configured
they are created and dropped; `YUQING_TRACE_CONSOLE=1` prints them, and a deployment adds its
own exporter to the provider.
"""

from __future__ import annotations

import os

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import ConsoleSpanExporter, SimpleSpanProcessor
from temporalio.contrib.opentelemetry import TracingInterceptor

_provider: TracerProvider | None = None


def tracing_interceptor(service_name: str = "yuqing") -> TracingInterceptor:
    global _provider
    if _provider is None:
        _provider = TracerProvider(resource=Resource.create({"service.name": service_name}))
        if os.environ.get("YUQING_TRACE_CONSOLE") == "1":
            _provider.add_span_processor(SimpleSpanProcessor(ConsoleSpanExporter()))
        trace.set_tracer_provider(_provider)
    return TracingInterceptor(_provider.get_tracer("yuqing"))
