"""Health that tells the truth (issue 8): readiness fails while Temporal or PostgreSQL is
unreachable, and a call that must record something answers 503 meanwhile instead of pretending.
Each server is one of the test's own, really stopped and started again."""

from __future__ import annotations

import asyncio
import shutil
import socket
import tempfile
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import asyncpg
import httpx
import pytest

from api import create_app
from api.server import bind, serving
from tests.test_api import incident, who
from yuqing import db
from yuqing.client import connect
from yuqing.settings import Settings
from yuqing.stack import EmbeddedPostgres, TemporalDevServer, start_postgres, start_temporal


@pytest.fixture
async def own_postgres() -> AsyncIterator[EmbeddedPostgres]:
    # Not ephemeral: its data must survive the stop, so that it starts again in a second.
    data = Path(tempfile.mkdtemp(prefix="yuqing-test-pg-down-"))
    server = await asyncio.to_thread(start_postgres, data)
    yield server
    await asyncio.to_thread(server.stop)
    shutil.rmtree(data, ignore_errors=True)


@pytest.fixture
async def own_temporal() -> AsyncIterator[TemporalDevServer]:
    server = await start_temporal(
        Path(tempfile.mkdtemp(prefix="yuqing-test-temporal-down-")),
        port=0,
        headless=True,
        persist=False,
    )
    yield server
    await server.stop()


async def test_ready_is_503_while_postgres_is_down_and_recording_calls_too(
    dev_server: TemporalDevServer, own_postgres: EmbeddedPostgres, settings: Settings
) -> None:
    client = await connect(
        Settings(temporal_address=dev_server.address, temporal_namespace=dev_server.namespace)
    )
    pool = await db.create_pool(own_postgres.url)
    own = replace(settings, database_url=own_postgres.url, task_queue="nobody-polls-here")
    try:
        async with (
            serving(create_app(client, pool, own), access_log=False) as url,
            httpx.AsyncClient(base_url=url, timeout=10) as http,
        ):
            ready = await http.get("/health/ready")
            assert ready.status_code == 200, ready.text

            await asyncio.to_thread(own_postgres.stop)
            ready = await http.get("/health/ready")
            assert ready.status_code == 503
            assert set(ready.json()["problems"]) == {"postgresql"}
            # The process itself is fine: it must not be restarted for this.
            assert (await http.get("/health/live")).status_code == 200

            # A report would start an incident whose evidence cannot be fixed: refused, 503.
            refused = await http.post("/incidents", json=incident(), headers=who("chen.jing"))
            assert refused.status_code == 503, refused.text
            assert "无法连接 PostgreSQL" in refused.json()["detail"]  # an official reads it
            # ... and nothing was started for it.
            running = await client.count_workflows(
                'WorkflowType = "IncidentWorkflow" AND TaskQueue = "nobody-polls-here"'
            )
            assert running.count == 0
            # A statement page reads PostgreSQL: 503 as well.
            page = await http.get("/statements/demo-1-v1")
            assert page.status_code == 503

            # Back again: ready, and the same call is taken.
            restarted = await asyncio.to_thread(start_postgres, own_postgres.pgdata.parent)
            try:
                ready = await http.get("/health/ready")
                assert ready.status_code == 200, ready.text
            finally:
                await asyncio.to_thread(restarted.stop)
    finally:
        await pool.close()


async def test_ready_is_503_while_temporal_is_down(
    own_temporal: TemporalDevServer, pool: asyncpg.Pool, settings: Settings
) -> None:
    client = await connect(
        Settings(temporal_address=own_temporal.address, temporal_namespace=own_temporal.namespace)
    )
    async with (
        serving(create_app(client, pool, settings), access_log=False) as url,
        httpx.AsyncClient(base_url=url, timeout=10) as http,
    ):
        assert (await http.get("/health/ready")).status_code == 200
        await own_temporal.stop()
        ready = await http.get("/health/ready")
        assert ready.status_code == 503
        assert set(ready.json()["problems"]) == {"temporal"}
        assert (await http.get("/health/live")).status_code == 200


async def test_accepted_connections_have_tcp_nodelay() -> None:
    """Issue 9: asyncio sets TCP_NODELAY only on sockets whose proto is IPPROTO_TCP; without it
    a kept-alive response's body waits ~40 ms for the client's delayed ACK."""
    sock = bind("127.0.0.1", 0)
    assert sock.proto == socket.IPPROTO_TCP
    accepted: asyncio.Future[int] = asyncio.get_running_loop().create_future()

    class Probe(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            peer = transport.get_extra_info("socket")
            accepted.set_result(peer.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
            transport.close()

    # The same call uvicorn makes with the socket it is given.
    server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
    try:
        _, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        assert await asyncio.wait_for(accepted, 10) != 0
        writer.close()
    finally:
        server.close()
        await server.wait_closed()


async def test_a_request_in_progress_finishes_when_the_server_is_told_to_stop() -> None:
    """The API's graceful stop: told to stop, it takes no new connection, and the request it is
    answering still gets its answer (within the drain time)."""
    from fastapi import FastAPI

    app = FastAPI()
    arrived = asyncio.Event()
    release = asyncio.Event()

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        arrived.set()
        await release.wait()
        return {"status": "finished"}

    stop = asyncio.Event()
    async with (
        serving(app, access_log=False, stop=stop, grace=10) as url,
        httpx.AsyncClient(base_url=url, timeout=20) as http,
    ):
        in_progress = asyncio.create_task(http.get("/slow"))
        await asyncio.wait_for(arrived.wait(), 10)
        stop.set()
        # No new connection is taken once told to stop ...
        host, port = url.removeprefix("http://").rsplit(":", 1)

        async def refused() -> bool:
            try:
                _, writer = await asyncio.open_connection(host, int(port))
            except OSError:
                return True
            writer.close()
            return False

        for _ in range(200):  # a condition, polled: the listener closes a moment after
            if await refused():
                break
            await asyncio.sleep(0.05)
        else:
            pytest.fail("the server still accepts connections after being told to stop")
        # ... but the one in progress is answered.
        release.set()
        answer = await asyncio.wait_for(in_progress, 10)
        assert answer.status_code == 200 and answer.json() == {"status": "finished"}


def test_an_update_refused_while_a_workflow_task_is_retried_is_503_to_send_again() -> None:
    """After a worker dies mid-task Temporal refuses updates until another worker retried the
    task; nothing was decided, so the caller is told to send it again (503), not 502."""
    from temporalio.service import RPCError, RPCStatusCode

    from api.errors import temporal_error

    refused = RPCError(
        "Unable to perform workflow execution update due to Workflow Task in failed state.",
        RPCStatusCode.FAILED_PRECONDITION,
        b"",
    )
    error = temporal_error(refused, "127.0.0.1:7233", "incident demo-1")
    assert error.status == 503 and "send it again" in error.detail
