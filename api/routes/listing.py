"""`GET /incidents`: the incidents the caller may see, filtered and paged, from Temporal's
visibility store (the search attributes and the incident's `console` memo, `yuqing.listing`).

One visibility call per page, whatever the page holds: no incident is queried. Each listed
deadline carries its light as of the answer: red (breached, or past due), yellow (inside its
reminder window), green (on time), done (met in time) or waived.
"""

from __future__ import annotations

import base64
import binascii
from collections.abc import Iterable
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel
from temporalio.client import Client, WorkflowExecution, WorkflowExecutionStatus
from temporalio.service import RPCError, RPCStatusCode

from api.deps import Me, Svc
from api.errors import RESPONSES, ApiError, temporal_error
from yuqing import INCIDENT_WORKFLOW, search_attributes
from yuqing.authorization import ReadScope
from yuqing.i18n import Said
from yuqing.listing import IncidentMemo, Light, memo_of
from yuqing.models import Grade
from yuqing.state import Stage

router = APIRouter(prefix="/incidents", tags=["incidents"], responses=RESPONSES)

PREFIX = "incident-"
UNIT_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"
MAX_PAGE = 100


class Status(StrEnum):
    open = "open"  # not yet closed
    ended = "ended"  # closed or reviewed
    all = "all"


class ListedClock(BaseModel):
    key: str
    title: str
    clock: str
    due_at: datetime
    remind_from: datetime | None
    status: str
    met_at: datetime | None
    light: Light


class ListedIncident(BaseModel):
    incident_id: str
    workflow_id: str
    title: str
    grade: str | None
    stage: str | None
    unit: str | None
    sensitivity: str | None
    started_at: datetime
    running: bool
    breached: bool
    discovered_at: datetime | None = None
    clocks: list[ListedClock] = []
    draft_version: int | None = None
    draft_status: str | None = None
    returned_reason: str | None = None
    awaiting: list[str] = []
    posts_open: int = 0


class IncidentPage(BaseModel):
    incidents: list[ListedIncident]
    next_page_token: str | None = None
    as_of: datetime


class Filters(BaseModel):
    grade: Grade | None = None
    stage: Stage | None = None
    unit: str | None = None
    breached: bool | None = None
    status: Status = Status.all


def _quote(value: str) -> str:
    # Values are enums or match UNIT_PATTERN; quoting is belt and braces.
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def visibility_query(filters: Filters, units: Iterable[str] | None) -> str:
    """The visibility list filter for these filters, limited to `units` (None: every unit)."""
    clauses = [f"WorkflowType = {_quote(INCIDENT_WORKFLOW)}"]
    if filters.grade is not None:
        clauses.append(f"{search_attributes.GRADE.name} = {_quote(filters.grade.value)}")
    if filters.stage is not None:
        clauses.append(f"{search_attributes.STAGE.name} = {_quote(filters.stage.value)}")
    if filters.unit is not None:
        clauses.append(f"{search_attributes.UNIT.name} = {_quote(filters.unit)}")
    if filters.breached is not None:
        clauses.append(f"{search_attributes.BREACHED.name} = {str(filters.breached).lower()}")
    ended = f"({_quote(Stage.closed.value)}, {_quote(Stage.reviewed.value)})"
    if filters.status is Status.open:
        clauses.append(f"{search_attributes.STAGE.name} NOT IN {ended}")
    elif filters.status is Status.ended:
        clauses.append(f"{search_attributes.STAGE.name} IN {ended}")
    if units is not None:
        listed = ", ".join(_quote(u) for u in sorted(units))
        clauses.append(f"{search_attributes.UNIT.name} IN ({listed})")
    return " AND ".join(clauses)


async def _listed(
    execution: WorkflowExecution, now: datetime
) -> tuple[ListedIncident, IncidentMemo | None]:
    attrs = execution.typed_search_attributes
    try:
        memo: IncidentMemo | None = memo_of(await execution.memo())
    except Exception:  # an undecodable memo (another codec's) still lists the incident
        memo = None
    workflow_id = execution.id
    incident_id = workflow_id.removeprefix(PREFIX)
    item = ListedIncident(
        incident_id=incident_id,
        workflow_id=workflow_id,
        title=memo.title if memo else incident_id,
        grade=attrs.get(search_attributes.GRADE),
        stage=attrs.get(search_attributes.STAGE),
        unit=attrs.get(search_attributes.UNIT),
        sensitivity=attrs.get(search_attributes.SENSITIVITY),
        started_at=execution.start_time,
        running=execution.status is WorkflowExecutionStatus.RUNNING,
        breached=bool(attrs.get(search_attributes.BREACHED)),
    )
    if memo is not None:
        item.discovered_at = memo.discovered_at
        item.clocks = [ListedClock(**c.model_dump(), light=c.light(now)) for c in memo.clocks]
        item.draft_version = memo.draft_version
        item.draft_status = memo.draft_status
        item.returned_reason = memo.returned_reason
        item.awaiting = memo.awaiting
        item.posts_open = memo.posts_open
    return item, memo


async def list_page(
    client: Client,
    scope: ReadScope,
    filters: Filters,
    *,
    page_size: int = 20,
    page_token: str | None = None,
    now: datetime | None = None,
) -> tuple[IncidentPage, list[tuple[ListedIncident, IncidentMemo | None]]]:
    """One page of the incidents `scope` sees; also each one's memo, for the console."""
    now = now or datetime.now(UTC)
    units = None if scope.every_unit else scope.units
    if units is not None and (not units or (filters.unit and filters.unit not in units)):
        return IncidentPage(incidents=[], as_of=now), []
    token = _decode_token(page_token)
    iterator = client.list_workflows(
        visibility_query(filters, units), page_size=page_size, next_page_token=token
    )
    address = client.service_client.config.target_host
    try:
        await iterator.fetch_next_page()
    except RPCError as err:
        if err.status is RPCStatusCode.INVALID_ARGUMENT and token is not None:
            raise ApiError(422, Said("api.page_token_other")) from err
        raise temporal_error(err, address, Said("api.what.listing")) from err
    except RuntimeError as err:
        raise temporal_error(err, address, Said("api.what.listing")) from err
    found: list[tuple[ListedIncident, IncidentMemo | None]] = []
    for execution in iterator.current_page or []:
        found.append(await _listed(execution, now))
    next_token = iterator.next_page_token
    page = IncidentPage(
        incidents=[item for item, _ in found],
        next_page_token=base64.urlsafe_b64encode(next_token).decode() if next_token else None,
        as_of=now,
    )
    return page, found


def _decode_token(token: str | None) -> bytes | None:
    if not token:
        return None
    try:
        return base64.urlsafe_b64decode(token.encode())
    except (binascii.Error, ValueError) as err:
        raise ApiError(422, Said("api.page_token_invalid")) from err


@router.get("", response_model=IncidentPage, summary="List incidents")
async def list_incidents(
    me: Me,
    svc: Svc,
    grade: Grade | None = None,
    stage: Stage | None = None,
    unit: Annotated[str | None, Query(pattern=UNIT_PATTERN)] = None,
    breached: Annotated[bool | None, Query(description="only those with a missed deadline")] = None,
    status: Annotated[Status, Query(description="open: not yet closed; ended")] = Status.all,
    page_size: Annotated[int, Query(ge=1, le=MAX_PAGE)] = 20,
    page_token: Annotated[str | None, Query(max_length=4096)] = None,
) -> IncidentPage:
    """The incidents you may see (the Office, Legal, the publicity lead and the leading group:
    all; a unit: its own), newest first, with grade, stage, unit and each deadline's light.
    Pass `next_page_token` back as `page_token` for the next page."""
    filters = Filters(grade=grade, stage=stage, unit=unit, breached=breached, status=status)
    page, _ = await list_page(
        svc.workflows.client,
        svc.directory.read_scope(me),
        filters,
        page_size=page_size,
        page_token=page_token,
    )
    return page
