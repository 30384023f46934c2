"""Serving an ASGI app in-process with uvicorn: the API (`api.server`), the probes and metrics
of the worker and the SMTP intake (`yuqing.probes`), or a test's."""

from __future__ import annotations

import asyncio
import contextlib
import math
import socket
from collections.abc import AsyncIterator, Generator

import uvicorn
from starlette.types import ASGIApp


class EmbeddedServer(uvicorn.Server):
    """A uvicorn server that leaves the process's signals alone.

    uvicorn would install its own SIGINT/SIGTERM handlers, and re-raise the signal when it
    stops; the stack (or the test) that embeds it handles signals itself and stops it.
    """

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


def bind(host: str, port: int) -> socket.socket:
    """Bind the listening socket now, so a busy port fails here, with an OSError to report.

    Made with `IPPROTO_TCP` rather than proto 0: asyncio sets TCP_NODELAY only on accepted
    sockets whose proto says TCP, and without it uvicorn's body, written after its headers,
    waits for the client's delayed ACK (about 40 ms on every kept-alive response).
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


@contextlib.asynccontextmanager
async def serving(
    app: ASGIApp,
    host: str = "127.0.0.1",
    port: int = 0,
    *,
    access_log: bool = True,
    stop: asyncio.Event | None = None,
    grace: float = 5.0,
) -> AsyncIterator[str]:
    """Serve `app` until the block ends, or `stop` is set; yields its base URL (port 0: a free
    port). A busy port raises OSError on entry. On the way out the server stops accepting and
    gives requests in progress `grace` seconds to finish."""
    sock = bind(host, port)
    config = uvicorn.Config(
        app,
        host=host,
        port=sock.getsockname()[1],
        log_config=None,
        access_log=access_log,
        lifespan="off",
        # "auto": httptools (a dependency) when installed, else h11; the same answers, for about
        # a third less CPU per request (issue 9).
        http="auto",
        # A request waiting on a decision gets this long to finish when the server stops.
        timeout_graceful_shutdown=math.ceil(grace),
        # Longer than any proxy's or client's idle timeout (load balancers use 60 s): a
        # connection the server closes while a client reuses it fails that client's request.
        timeout_keep_alive=75,
    )
    server = EmbeddedServer(config)
    task = asyncio.create_task(server.serve(sockets=[sock]))

    async def stop_when_told(stop: asyncio.Event) -> None:
        # Stop taking requests at once, while whatever else was told to stop stops too.
        await stop.wait()
        server.should_exit = True

    watcher = asyncio.create_task(stop_when_told(stop)) if stop is not None else None
    try:
        while not server.started:
            if task.done():
                task.result()  # raises what stopped it
                raise RuntimeError("the API server stopped while starting")
            await asyncio.sleep(0.02)
        shown = f"[{host}]" if ":" in host else host
        yield f"http://{shown}:{sock.getsockname()[1]}"
    finally:
        if watcher is not None:
            watcher.cancel()
        server.should_exit = True
        try:
            await task
        finally:
            sock.close()
