"""The public statements pages: no token needed, they are what the bureau published."""

from __future__ import annotations

import asyncpg
import structlog
from fastapi import APIRouter
from fastapi.responses import HTMLResponse

from api.deps import Svc
from api.statements import (
    HEADERS,
    load_statement,
    parse_slug,
    render_not_found,
    render_statement,
    render_unavailable,
)

log = structlog.get_logger("yuqing.api")

router = APIRouter(tags=["statements"])


@router.get(
    "/statements/{slug}",
    response_class=HTMLResponse,
    summary="A published statement (HTML)",
    responses={404: {"description": "no statement published under this name"}},
)
async def statement_page(slug: str, svc: Svc) -> HTMLResponse:
    """The statement `<incident_id>-v<version>`: its text, where and when it was published, its
    content hash, and the approval chain beneath."""
    parsed = parse_slug(slug)
    statement = None
    if parsed is not None:
        try:
            statement = await load_statement(svc.pool, *parsed)
        except (OSError, asyncpg.PostgresError) as err:
            log.error("statements unavailable", error=str(err))
            return HTMLResponse(
                render_unavailable(),
                status_code=503,
                headers=HEADERS,
            )
    if statement is None:
        return HTMLResponse(render_not_found(slug), status_code=404, headers=HEADERS)
    return HTMLResponse(render_statement(statement, svc.directory.roster), headers=HEADERS)
