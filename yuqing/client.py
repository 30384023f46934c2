"""One way to connect to Temporal: the pydantic data converter and tracing on every client."""

from __future__ import annotations

from typing import Any

from temporalio.client import Client
from temporalio.contrib.pydantic import pydantic_data_converter

from yuqing.settings import Settings
from yuqing.telemetry import tracing_interceptor


async def connect(settings: Settings, **options: Any) -> Client:
    """A client of `settings`' server; `options` go to `Client.connect` as they are (the
    command-line tools set their keep-alive, see `yuqing.tool`)."""
    return await Client.connect(
        settings.temporal_address,
        namespace=settings.temporal_namespace,
        data_converter=pydantic_data_converter,
        interceptors=[tracing_interceptor()],
        **options,
    )
