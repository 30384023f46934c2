"""What every route may ask for: the app's services, and the person the token names."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Path, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from api.auth import Directory
from api.errors import ApiError
from api.signals import Workflows
from yuqing.roster import Person
from yuqing.settings import Settings


@dataclass(frozen=True)
class Services:
    workflows: Workflows
    pool: asyncpg.Pool
    settings: Settings
    directory: Directory


def services(request: Request) -> Services:
    found: Services = request.app.state.services
    return found


_bearer = HTTPBearer(
    auto_error=False,
    description="a token from the tokens file (YUQING_TOKENS); it names the person who acts",
)


def current_person(
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    svc: Annotated[Services, Depends(services)],
) -> Person:
    if credentials is None:
        raise ApiError(401, "no token: send the header `Authorization: Bearer <token>`")
    person = svc.directory.authenticate(credentials.credentials)
    if person is None:
        raise ApiError(401, "the token is not known (or its person has left the roster)")
    return person


Svc = Annotated[Services, Depends(services)]
Me = Annotated[Person, Depends(current_person)]
IncidentIdPath = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="the incident's id"),
]
PostIdPath = Annotated[
    str,
    Path(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$", description="the post's id"),
]
