"""Liveness, readiness, `/metrics`, and the 503 that calls needing PostgreSQL answer while it is
down (issue 8: "health that tells the truth")."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.routing import Match

from api.errors import ApiError
from yuqing import metrics
from yuqing.health import Readiness
from yuqing.i18n import Said

router = APIRouter(tags=["service"])

# Reads of an incident come from Temporal alone and are still answered while PostgreSQL is down.
_READS = frozenset({"GET", "HEAD", "OPTIONS"})


def readiness(request: Request) -> Readiness:
    found: Readiness = request.app.state.readiness
    return found


@router.get("/health", summary="Liveness (the process runs)")
@router.get("/health/live", summary="Liveness (the process runs)")
async def live() -> dict[str, str]:
    return {"status": "ok"}


@router.get(
    "/health/ready",
    summary="Readiness: Temporal and PostgreSQL answer",
    responses={503: {"description": "what is unreachable, by name"}},
)
async def ready(request: Request) -> JSONResponse:
    """200 when this process can serve calls now; 503 naming what is down otherwise (Temporal,
    PostgreSQL, or the process itself shutting down), so a load balancer sends calls elsewhere."""
    problems = await readiness(request).problems()
    if problems:
        return JSONResponse({"status": "unavailable", "problems": problems}, 503)
    return JSONResponse({"status": "ok"})


@router.get("/metrics", include_in_schema=False)
async def prometheus() -> Response:
    return Response(metrics.exposition(), media_type=metrics.CONTENT_TYPE_LATEST)


async def requires_database(request: Request) -> None:
    """A dependency: a call that writes (or reads PostgreSQL) answers 503 while PostgreSQL is
    unreachable, instead of taking what could not be recorded. Reads of an incident's state come
    from Temporal and pass."""
    if request.method in _READS and not getattr(request.state, "reads_database", False):
        return
    problem = await readiness(request).problem("postgresql")
    if problem is not None:
        raise ApiError(
            503,
            Said("api.postgresql_unreachable", problem=problem),
        )


async def reads_database(request: Request) -> None:
    """A dependency for GET routes whose answer comes from PostgreSQL: 503 while it is down."""
    request.state.reads_database = True
    await requires_database(request)


def route_template(request: Request) -> str:
    """The matched route's path template (`/incidents/{incident_id}`), so the metric's labels
    stay few whatever ids are asked for; unmatched paths share one label."""
    for route in request.app.router.routes:
        match, _ = route.matches(request.scope)
        if match is Match.FULL:
            return str(getattr(route, "path", "unmatched"))
    return "unmatched"


async def measure(
    request: Request, call_next: Callable[[Request], Awaitable[Response]]
) -> Response:
    """HTTP middleware: latency and status code of every call, by route template."""
    started = time.perf_counter()
    status = 500
    try:
        response = await call_next(request)
        status = response.status_code
        return response
    finally:
        route = route_template(request)
        if route != "/metrics":
            metrics.API_LATENCY.labels(request.method, route).observe(time.perf_counter() - started)
            metrics.API_REQUESTS.labels(request.method, route, str(status)).inc()
