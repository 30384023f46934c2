"""The probe port of a process without an HTTP API of its own (the worker, the SMTP intake):
`/health/live`, `/health/ready` and `/metrics`, as the API serves them."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable

import structlog
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from yuqing import metrics
from yuqing.health import Readiness
from yuqing.http_server import serving

log = structlog.get_logger("yuqing.probes")


def probe_app(readiness: Readiness, alive: Callable[[], str | None] = lambda: None) -> Starlette:
    """`alive()` names why the process should be restarted (None: it is fine)."""

    async def live(request: Request) -> Response:
        problem = alive()
        if problem is not None:
            return JSONResponse({"status": "failed", "problem": problem}, 503)
        return JSONResponse({"status": "ok"})

    async def ready(request: Request) -> Response:
        problems = await readiness.problems()
        problem = alive()
        if problem is not None:
            problems["process"] = problem
        if problems:
            return JSONResponse({"status": "unavailable", "problems": problems}, 503)
        return JSONResponse({"status": "ok"})

    async def prometheus(request: Request) -> Response:
        return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE_LATEST)

    return Starlette(
        routes=[
            Route("/health", live),
            Route("/health/live", live),
            Route("/health/ready", ready),
            Route("/metrics", prometheus),
        ]
    )


@contextlib.asynccontextmanager
async def serving_probes(
    readiness: Readiness,
    host: str,
    port: int | None,
    *,
    what: str,
    alive: Callable[[], str | None] = lambda: None,
) -> AsyncIterator[str | None]:
    """Serve the probes while the block runs (no port: none); yields their base URL."""
    if port is None:
        yield None
        return
    async with contextlib.AsyncExitStack() as stack:
        try:
            url = await stack.enter_async_context(
                serving(probe_app(readiness, alive), host, port, access_log=False)
            )
        except OSError as err:
            raise SystemExit(
                f"the {what}'s probe port {host}:{port} cannot be used ({err.strerror}):"
                " set YUQING_OPS_PORT to a free port"
            ) from err
        log.info(f"{what} probes and metrics", url=url, metrics=f"{url}/metrics")
        yield url
