"""What a caller of the API sees when Temporal itself is in trouble (issue 8): a frozen Temporal
answers 503 within the query's deadline rather than after the SDK's 45 s of keep-alive; an
update turned away while another worker takes the incident over is sent again inside
`decide`, under one update id, so the caller never sees it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.service import RPCError, RPCStatusCode

import starter
from api.errors import ApiError, temporal_error
from api.signals import Workflows
from tests import keys
from tests.driver import IncidentDriver, report
from yuqing.client import connect
from yuqing.settings import Settings
from yuqing.state import IncidentState, TrailEntry


class FreezableProxy:
    """A TCP relay in front of Temporal that can stop passing bytes, as a SIGSTOPped server
    does: connections stay open and nothing comes back."""

    def __init__(self, upstream: str) -> None:
        host, _, port = upstream.rpartition(":")
        self.upstream = (host, int(port))
        self.flowing = asyncio.Event()
        self.flowing.set()
        self.pumps: set[asyncio.Task[None]] = set()
        self.server: asyncio.Server | None = None

    @property
    def address(self) -> str:
        assert self.server is not None
        return f"127.0.0.1:{self.server.sockets[0].getsockname()[1]}"

    async def __aenter__(self) -> FreezableProxy:
        self.server = await asyncio.start_server(self._relay, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.server is not None
        self.server.close()
        for pump in self.pumps:
            pump.cancel()
        await asyncio.gather(*self.pumps, return_exceptions=True)

    async def _relay(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection(*self.upstream)
        for source, sink in ((reader, up_writer), (up_reader, writer)):
            pump = asyncio.create_task(self._pump(source, sink))
            self.pumps.add(pump)
            pump.add_done_callback(self.pumps.discard)

    async def _pump(self, source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while data := await source.read(65536):
                await self.flowing.wait()
                sink.write(data)
                await sink.drain()
        sink.close()


@pytest.fixture
async def proxy(driver: IncidentDriver) -> AsyncIterator[FreezableProxy]:
    async with FreezableProxy(driver.client.service_client.config.target_host) as relay:
        yield relay
        relay.flowing.set()


async def test_a_frozen_temporal_answers_503_within_the_query_deadline(
    driver: IncidentDriver, proxy: FreezableProxy, settings: Settings
) -> None:
    await driver.start(report())
    assert driver.handle is not None
    client = await connect(replace(settings, temporal_address=proxy.address))
    workflows = Workflows(
        client, driver.task_queue, signer=keys.SERVICE, query_timeout=timedelta(seconds=1)
    )
    state = await workflows.state(driver.handle.id, IncidentState, "incident")
    assert state.stage == "discovered"

    proxy.flowing.clear()
    began = time.monotonic()
    with pytest.raises(ApiError) as frozen:
        await workflows.state(driver.handle.id, IncidentState, "incident")
    took = time.monotonic() - began
    assert frozen.value.status == 503, frozen.value.detail
    assert "did not answer" in frozen.value.detail and "try again" in frozen.value.detail
    assert took < 5, took


def test_a_lost_connection_is_503_and_a_refusal_502() -> None:
    address = "temporal.example:7233"
    for status, message in (
        (RPCStatusCode.CANCELLED, "operation was canceled"),
        (RPCStatusCode.UNKNOWN, "transport error"),
        (RPCStatusCode.UNAVAILABLE, "connection refused"),
        (RPCStatusCode.UNAVAILABLE, "workflow update was aborted"),
        (RPCStatusCode.FAILED_PRECONDITION, "Workflow Task in failed state"),
    ):
        error = temporal_error(RPCError(message, status, b""), address, "incident t-1")
        assert error.status == 503, (status, message, error.detail)
    refused = temporal_error(
        RPCError("namespace not found", RPCStatusCode.INVALID_ARGUMENT, b""), address, "x"
    )
    assert refused.status == 502


class TakenOver:
    """A workflow handle whose first two updates Temporal turns away, as while another worker
    takes over an incident whose worker was killed mid-task."""

    def __init__(self, refusals: list[str]) -> None:
        self.refusals = refusals
        self.ids: list[str | None] = []

    def get_workflow_handle(self, workflow_id: str) -> TakenOver:
        return self

    async def execute_update(self, name: str, arg: Any, **options: Any) -> TrailEntry:
        self.ids.append(options.get("id"))
        if self.refusals:
            raise RPCError(self.refusals.pop(0), RPCStatusCode.UNAVAILABLE, b"")
        return TrailEntry(
            at=datetime.now(UTC), kind="reported", detail="accepted", signal=arg["signal"]
        )


async def test_an_update_turned_away_during_a_take_over_is_sent_again_under_its_id() -> None:
    handle = TakenOver(["Workflow Task in failed state", "workflow update was aborted"])
    entry = await starter.decide(
        handle,  # type: ignore[arg-type]
        "incident-t-1",
        "submit_report",
        {},
        patience=timedelta(seconds=10),
    )
    assert entry.kind == "reported"
    assert len(handle.ids) == 3 and len(set(handle.ids)) == 1 and handle.ids[0]

    # Past its patience the caller is told (503, send it again), not left waiting.
    stuck = TakenOver(["Workflow Task in failed state"] * 100)
    began = time.monotonic()
    with pytest.raises(RPCError) as turned_away:
        await starter.decide(
            stuck,  # type: ignore[arg-type]
            "incident-t-1",
            "submit_report",
            {},
            patience=timedelta(seconds=1.5),
        )
    assert time.monotonic() - began < 3
    error = temporal_error(turned_away.value, "temporal:7233", "incident t-1")
    assert error.status == 503 and "send it again" in error.detail
