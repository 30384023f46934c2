"""Tracing is on when something receives the spans, and off (no interceptor, no header in
every history) otherwise."""

from __future__ import annotations

from temporalio.contrib.opentelemetry import TracingInterceptor

from yuqing.telemetry import tracing_enabled, tracing_interceptors


def test_no_spans_are_made_when_nothing_would_receive_them() -> None:
    assert not tracing_enabled({})
    assert not tracing_enabled({"OTEL_TRACES_EXPORTER": "none"})
    assert tracing_interceptors({}) == []


def test_tracing_is_on_for_the_console_or_an_exporter() -> None:
    assert tracing_enabled({"YUQING_TRACE_CONSOLE": "1"})
    assert tracing_enabled({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317"})
    (interceptor,) = tracing_interceptors({"OTEL_TRACES_EXPORTER": "otlp"})
    assert isinstance(interceptor, TracingInterceptor)
