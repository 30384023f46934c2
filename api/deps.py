"""What every route may ask for: the app's services, and the person the token names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
import structlog
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Directory
from api.errors import ApiError
from api.signals import Workflows
from yuqing.i18n import Said
from yuqing.roster import Person
from yuqing.settings import Settings

log = structlog.get_logger("yuqing.api")


@dataclass(frozen=True)
class Services:
    workflows: Workflows
    pool: asyncpg.Pool
    settings: Settings
    directory: Directory


# The dependencies are coroutines, though none awaits: FastAPI runs a plain function in a
# worker thread, two thread hand-offs on every call the single API process serves.
async def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


_bearer = HTTPBearer(
    auto_error=False,
    description="a token from the tokens file (YUQING_TOKENS); it names the person who acts",
)


async def current_person(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    svc: Annotated[Services, Depends(services)],
) -> Person:
    if credentials is None:
        raise ApiError(401, Said("api.no_token"))
    scheme = request.headers.get("authorization", "").split(" ", 1)[0]
    if scheme != "Bearer":
        # RFC 9110 lets a scheme be any case; we take one spelling, so that a proxy or a log
        # filter keyed on "Bearer" never lets a token through unseen.
        raise ApiError(401, Said("api.scheme", scheme=repr(scheme)))
    person = svc.directory.authenticate(credentials.credentials)
    if person is None:
        raise ApiError(401, Said("api.token_unknown"))
    return person


Svc = Annotated[Services, Depends(services)]
Me = Annotated[Person, Depends(current_person)]


def readable(svc: Services, me: Person, unit: str, what: str) -> None:
    """404 unless `me` may see a workflow of `unit` (the authorization's read scope).

    Not found rather than forbidden, so a unit's people learn nothing of other units'
    incidents, not even that they exist. No incident's trail records a read; the refusal is
    logged here.
    """
    if svc.directory.read_scope(me).allows(unit):
        return
    log.warning("read refused", person=me.id, what=what, unit=unit)
    raise ApiError(404, Said("api.not_yours", what=what))


def may_report(svc: Services, me: Person, unit: str) -> None:
    """403 unless `me` may report incidents for `unit`. Nothing has reached an incident yet,
    so no trail records it: the refusal is logged here."""
    refusal = svc.directory.report_refusal(me, unit)
    if refusal is not None:
        log.warning("report refused", person=me.id, unit=unit, reason=refusal)
        raise ApiError(403, refusal)


IncidentIdPath = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="the incident's id"),
]
PostIdPath = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="the post's id"),
]
