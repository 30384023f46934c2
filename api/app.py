"""The FastAPI application: `create_app(client, pool, settings)`."""

from __future__ import annotations

from datetime import timedelta

import asyncpg
from fastapi import Depends, FastAPI
from fastapi.responses import RedirectResponse
from fastapi_offline import FastAPIOffline
from temporalio.client import Client

from api import console, errors
from api.auth import Directory
from api.deps import Services
from api.errors import ApiError, api_error_handler
from api.health import Measure, requires_database
from api.health import router as health_router
from api.routes import codec, incidents, listing, plan, posts, reports, statements
from api.signals import Workflows, api_signer
from yuqing.health import Readiness, database_check, temporal_check
from yuqing.settings import Settings

DESCRIPTION = """\
The bureau's public-opinion incident response plan, over HTTP.

**Who you are.** Send `Authorization: Bearer <token>`. The token names one person of the
roster, and you act as that person: the API fills in `approver_id`, `author_id`,
`reporter_id` and the like; a body that names someone else there is refused (403).

**Answers at once.** Every signal waits for the incident's decision: 200 with the entry it
added to the decision trail, or the refusal with its reason: 422 malformed (the field is
named), 403 not yours (role or unit), 409 wrong stage or stale draft version, 404 unknown.
A refused signal changes nothing. 503: Temporal is unreachable, or (for a call that records
something) PostgreSQL is.

**Health.** `/health/live` answers while the process runs; `/health/ready` is 503, naming what
is down, while Temporal or PostgreSQL is unreachable. `/metrics` is for Prometheus.

**Statements** are public: `/statements/<incident_id>-v<version>`.

**The console** for people (Chinese first) is at `/console/`.
"""


def create_app(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    patience: timedelta = timedelta(seconds=30),
) -> FastAPI:
    """The API over this Temporal client and database; `patience` bounds each wait for a
    decision. Reads the roster and the tokens file now, so a bad one stops start-up."""
    # Swagger UI and ReDoc from assets shipped in the fastapi-offline wheel: no CDN, so /docs
    # works on an intranet with no way out.
    app: FastAPI = FastAPIOffline(
        title="Yuqing",
        summary="舆情 incident response: report, approve, publish, close, review",
        description=DESCRIPTION,
        version="1",
    )
    app.state.services = Services(
        workflows=Workflows(
            client, settings.task_queue, patience=patience, signer=api_signer(settings)
        ),
        pool=pool,
        settings=settings,
        directory=Directory.load(
            settings.roster_path, settings.tokens_path, settings.authorization_path
        ),
    )
    app.state.readiness = Readiness(
        {"temporal": temporal_check(client), "postgresql": database_check(pool)}
    )
    app.add_exception_handler(ApiError, api_error_handler)
    errors.install(app)  # core: body limits (413), readable 422s, JSON wanted (415)
    app.add_middleware(Measure)
    # Calls that record something answer 503 while PostgreSQL is down (api/health.py).
    recording = [Depends(requires_database)]
    app.include_router(reports.router, dependencies=recording)
    app.include_router(listing.router, dependencies=recording)
    app.include_router(incidents.router, dependencies=recording)
    app.include_router(posts.router, dependencies=recording)
    app.include_router(statements.router)
    app.include_router(plan.router)
    app.include_router(health_router)
    console.install(app)
    app.include_router(codec.router)  # record: the Temporal UI's codec server

    @app.get("/", include_in_schema=False)
    async def home() -> RedirectResponse:
        return RedirectResponse("/console/", status_code=303)

    return app
