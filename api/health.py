"""Liveness, readiness, `/metrics`, and the 503 that calls needing PostgreSQL answer while it is
down (issue 8: "health that tells the truth")."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

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


class Measure:
    """ASGI middleware: latency and status code of every call, by route template.

    Plain ASGI rather than `@app.middleware("http")`: Starlette's `BaseHTTPMiddleware` runs
    each call in a task of its own behind memory streams, a fixed cost on every request the
    single API process serves.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def sending(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, sending)
        finally:
            route = _template(scope)
            if route != "/metrics":
                elapsed = time.perf_counter() - started
                metrics.API_LATENCY.labels(scope["method"], route).observe(elapsed)
                metrics.API_REQUESTS.labels(scope["method"], route, str(status)).inc()


def _template(scope: Scope) -> str:
    """The path template of the route the router matched (set in the scope as it routes), or
    `route_template`'s walk when none was: FastAPI keeps included routers as one entry each
    among the app's routes, so that walk names none of their routes."""
    path = getattr(scope.get("route"), "path", None)
    if isinstance(path, str):
        return path
    return route_template(Request(scope))
