"""The rest of the plan over HTTP (issue 12): whether to respond, interviews, downgrade, the
leading group's members, contacts with outside departments, and drills.

Each signal route works like those of `api.routes.incidents`: sent in the token's person's
name, answered with the trail entry of the decision or the refusal with its reason.
"""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any

from fastapi import APIRouter, Query
from fastapi.responses import HTMLResponse, PlainTextResponse
from pydantic import BaseModel, Field, ValidationError

from api.deps import IncidentIdPath, Me, Svc, readable
from api.errors import RESPONSES, ApiError, what_of
from api.routes.incidents import send
from yuqing import incident_workflow_id
from yuqing.decider import describe
from yuqing.drill.report import drill_report, render, whole_trails
from yuqing.drill.scenario import Scenario
from yuqing.drill.start import start_drill
from yuqing.i18n import Said
from yuqing.models import (
    DepartmentContact,
    DepartmentNotice,
    Downgrade,
    GroupMembers,
    InterviewDecision,
    InterviewHeld,
    InterviewRequest,
    NonEmpty,
    NoResponseApproval,
    RecordId,
)
from yuqing.replan import replan_provisional
from yuqing.roles import Role
from yuqing.state import TRAIL_PAGE, IncidentState, TrailEntry, TrailPage

router = APIRouter(tags=["the rest of the plan"], responses=RESPONSES)
_YOU = "you (the token's person); leave it out"


class NoResponseApprovalBody(NoResponseApproval):
    approver_id: NonEmpty | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class InterviewRequestBody(InterviewRequest):
    requested_by: NonEmpty | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class InterviewDecisionBody(InterviewDecision):
    decided_by: NonEmpty | None = Field(default=None, description=_YOU)  # type: ignore[assignment]
    interview_id: RecordId | None = Field(default=None, description="from the path")  # type: ignore[assignment]


class InterviewHeldBody(InterviewHeld):
    reported_by: NonEmpty | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class DowngradeBody(Downgrade):
    decided_by: NonEmpty | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class GroupMembersBody(GroupMembers):
    chosen_by: NonEmpty | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class ContactBody(DepartmentContact):
    recorded_by: NonEmpty | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class DepartmentNoticeBody(DepartmentNotice):
    requested_by: NonEmpty | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


@router.post(
    "/incidents/{incident_id}/no-response-approval",
    response_model=TrailEntry,
    summary='Approve or refuse "no response needed"',
)
async def no_response_approval(
    incident_id: IncidentIdPath, body: NoResponseApprovalBody, me: Me, svc: Svc
) -> TrailEntry:
    """`no_response_approval` (§4.3): the publicity lead (general) or the leading group (major)
    approves the assessment's "no response needed", which waives the statement deadline."""
    return await send(svc, incident_id, "no_response_approval", body, "approver_id", me)


@router.post(
    "/incidents/{incident_id}/interviews", response_model=TrailEntry, summary="Ask for an interview"
)
async def request_interview(
    incident_id: IncidentIdPath, body: InterviewRequestBody, me: Me, svc: Svc
) -> TrailEntry:
    """`request_interview` (§4.4): who, which medium, when, on what."""
    return await send(svc, incident_id, "request_interview", body, "requested_by", me)


@router.post(
    "/incidents/{incident_id}/interviews/{interview_id}/decision",
    response_model=TrailEntry,
    summary="Authorise or refuse an interview",
)
async def interview_decision(
    incident_id: IncidentIdPath, interview_id: str, body: InterviewDecisionBody, me: Me, svc: Svc
) -> TrailEntry:
    """`interview_decision` (§4.4): the leading group's authorisation or refusal."""
    body.interview_id = interview_id
    return await send(svc, incident_id, "interview_decision", body, "decided_by", me)


@router.post(
    "/incidents/{incident_id}/interviews/held",
    response_model=TrailEntry,
    summary="Record an interview that took place",
)
async def interview_held(
    incident_id: IncidentIdPath, body: InterviewHeldBody, me: Me, svc: Svc
) -> TrailEntry:
    """`interview_held` (§4.4): one held without authorisation is recorded as a breach."""
    return await send(svc, incident_id, "interview_held", body, "reported_by", me)


@router.post("/incidents/{incident_id}/downgrade", response_model=TrailEntry, summary="Downgrade")
async def downgrade(
    incident_id: IncidentIdPath, body: DowngradeBody, me: Me, svc: Svc
) -> TrailEntry:
    """`downgrade`: the leading group lowers the grade, with its reason."""
    return await send(svc, incident_id, "downgrade", body, "decided_by", me)


@router.post(
    "/incidents/{incident_id}/group-members",
    response_model=TrailEntry,
    summary="Choose the leading group's members",
)
async def choose_group_members(
    incident_id: IncidentIdPath, body: GroupMembersBody, me: Me, svc: Svc
) -> TrailEntry:
    """`choose_group_members` (§5.1): recorded, and each member notified."""
    return await send(svc, incident_id, "choose_group_members", body, "chosen_by", me)


@router.post(
    "/incidents/{incident_id}/contacts", response_model=TrailEntry, summary="Record a contact"
)
async def record_contact(
    incident_id: IncidentIdPath, body: ContactBody, me: Me, svc: Svc
) -> TrailEntry:
    """`record_contact` (§4.4): who, which department, when, what was said."""
    return await send(svc, incident_id, "record_contact", body, "recorded_by", me)


@router.post(
    "/incidents/{incident_id}/department-notices",
    response_model=TrailEntry,
    summary="Send a notice to a department",
)
async def notify_department(
    incident_id: IncidentIdPath, body: DepartmentNoticeBody, me: Me, svc: Svc
) -> TrailEntry:
    """`notify_department` (§4.4): once per `request_id`, through the notification outbox."""
    return await send(svc, incident_id, "notify_department", body, "requested_by", me)


# -- working time --------------------------------------------------------------------------------


class CalendarLoaded(BaseModel):
    reason: str = Field(min_length=1, max_length=500, description="e.g. the State Council notice")


class Replanned(BaseModel):
    incident_id: str
    entry: TrailEntry


@router.post(
    "/calendar/changed",
    response_model=list[Replanned],
    summary="A year's schedule is loaded: re-plan provisional due times",
)
async def calendar_changed_everywhere(body: CalendarLoaded, me: Me, svc: Svc) -> list[Replanned]:
    """After the override file gains a year's official schedule: every running incident with
    a deadline planned provisionally (Monday–Friday) is sent `calendar_changed` in your name,
    and its posts plan those deadlines again. The Office's to do; the answer lists each."""
    if not any(grant.role is Role.office for grant in me.roles):
        raise ApiError(403, Said("api.office_calendars", person=me.id))

    async def decide(workflow_id: str, signal: str, payload: dict[str, str]) -> TrailEntry:
        return await svc.workflows.decide(workflow_id, signal, payload, me.id)

    told = await replan_provisional(svc.workflows.client, decide, me.id, body.reason)
    return [
        Replanned(incident_id=workflow_id.removeprefix("incident-"), entry=entry)
        for workflow_id, entry in told
    ]


# -- drills (§5.3) ----------------------------------------------------------------------------


class DrillStart(BaseModel):
    """A scenario (the TOML file as JSON) to run as a drill."""

    file_name: str = Field(min_length=1, max_length=200, description="names the drill's id")
    scenario: dict[str, Any]
    speed: float | None = Field(default=None, gt=0, le=100_000, description="the file's if unset")


class DrillStarted(BaseModel):
    incident_id: str
    workflow_id: str
    speed: float


class ReportFormat(StrEnum):
    text = "text"
    json = "json"
    html = "html"


@router.post("/drills", response_model=DrillStarted, status_code=201, summary="Start a drill")
async def start(body: DrillStart, me: Me, svc: Svc) -> DrillStarted:
    """The Office starts a drill incident from a scenario: marked 演练 everywhere, on clocks
    `speed` times faster, its notices and statements kept in the drill sink, never sent."""
    if not any(grant.role is Role.office for grant in me.roles):
        raise ApiError(403, Said("api.office_drills", person=me.id))
    try:
        scenario = Scenario.model_validate(body.scenario)
    except ValidationError as err:
        raise ApiError(422, Said("api.scenario_invalid", errors=describe(err))) from err
    incident_id, handle = await start_drill(
        svc.workflows.client,
        svc.workflows.task_queue,
        scenario,
        body.file_name,
        me.id,
        speed=body.speed,
    )
    return DrillStarted(
        incident_id=incident_id, workflow_id=handle.id, speed=body.speed or scenario.speed
    )


@router.get("/drills/{incident_id}/report", summary="The drill report", response_model=None)
async def report(
    incident_id: IncidentIdPath,
    me: Me,
    svc: Svc,
    fmt: Annotated[ReportFormat, Query(alias="format")] = ReportFormat.text,
) -> PlainTextResponse | HTMLResponse:
    """Who acted when, against the drill's scaled deadlines."""
    what = what_of("incident", incident_id)
    state = await svc.workflows.state(incident_workflow_id(incident_id), IncidentState, what)
    readable(svc, me, state.unit, what)
    if state.drill is None:
        raise ApiError(409, Said("api.not_a_drill", what=what))

    async def page(workflow_id: str, offset: int) -> TrailPage:
        limits = {"offset": offset, "limit": TRAIL_PAGE}
        answer: TrailPage = await svc.workflows.query(workflow_id, "trail", TrailPage, what, limits)
        return answer

    trails = await whole_trails(state, page)
    text = render(drill_report(state, datetime.now(UTC), trails), fmt.value)
    if fmt is ReportFormat.html:
        return HTMLResponse(text)
    media = "application/json" if fmt is ReportFormat.json else "text/plain; charset=utf-8"
    return PlainTextResponse(text, media_type=media)
