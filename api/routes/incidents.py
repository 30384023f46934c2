"""An incident's state, and the signals that move it (SPEC §5), each answered at once.

Every signal is sent in the name of the token's person and waits for the incident's decision:
200 with the trail entry when accepted; when refused, the status of its kind (422 malformed,
403 forbidden, 409 conflict, 404 unknown) and the reason. A refused signal changes nothing.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Path, Query
from pydantic import BaseModel

from api.deps import IncidentIdPath, Me, Services, Svc, readable
from api.errors import RESPONSES, ApiError, Refusal, what_of
from api.schemas import (
    ApprovalBody,
    AssessmentBody,
    CalendarChangedBody,
    CloseBody,
    DraftBody,
    LegalOpinionBody,
    MetricsUpdateBody,
    NetizenPostBody,
    ReviewBody,
    UpwardReportBody,
    acting,
)
from yuqing import incident_workflow_id
from yuqing.i18n import Said
from yuqing.models import SIGNAL_PAYLOADS
from yuqing.roster import Person
from yuqing.state import TRAIL_PAGE, Draft, IncidentState, TrailEntry, TrailPage

log = structlog.get_logger("yuqing.api")

router = APIRouter(prefix="/incidents", tags=["incidents"], responses=RESPONSES)


class Step(StrEnum):
    """A step of the approval chain (SPEC §2.4), by the role that takes it."""

    unit_head = "unit_head"
    section_head = "section_head"
    publicity_lead = "publicity_lead"
    leadership_group = "leadership_group"


STEP_SIGNALS = {
    Step.unit_head: "unit_head_approval",
    Step.section_head: "section_head_review",
    Step.publicity_lead: "publicity_lead_approval",
    Step.leadership_group: "leadership_group_approval",
}


async def send(
    svc: Services,
    incident_id: str,
    signal: str,
    body: BaseModel,
    field: str,
    me: Person,
) -> TrailEntry:
    """Send `signal` to the incident in `me`'s name (in `field`) and return its decision."""
    payload = acting(body, field, me, SIGNAL_PAYLOADS[signal])
    return await deliver(svc, incident_id, signal, payload, me.id)


async def deliver(
    svc: Services, incident_id: str, signal: str, payload: dict[str, Any], actor: str
) -> TrailEntry:
    """Send a validated payload; `actor` is whom the incident's trail will name for it."""
    try:
        entry = await svc.workflows.decide(
            incident_workflow_id(incident_id), signal, payload, actor
        )
    except Refusal as refusal:
        log.info(
            "signal refused",
            incident_id=incident_id,
            signal=signal,
            actor=actor,
            reason=refusal.detail,
        )
        raise
    log.info("signal accepted", incident_id=incident_id, signal=signal, actor=actor)
    return entry


@router.get("/{incident_id}", response_model=IncidentState, summary="The incident's state")
async def incident_state(incident_id: IncidentIdPath, me: Me, svc: Svc) -> IncidentState:
    """The `state` query: stage, grade and criteria, deadlines, drafts, approvals,
    publications, notifications, posts and the decision trail. The Office, Legal, the
    publicity lead and the leading group see every incident; a unit's people see their unit's
    (404 for any other)."""
    what = what_of("incident", incident_id)
    state = await svc.workflows.state(incident_workflow_id(incident_id), IncidentState, what)
    readable(svc, me, state.unit, what)
    return state


@router.get("/{incident_id}/trail", response_model=TrailPage, summary="The decision trail")
async def incident_trail(
    incident_id: IncidentIdPath,
    me: Me,
    svc: Svc,
    offset: Annotated[int, Query(ge=0, description="the first line's position (0-based)")] = 0,
    limit: Annotated[int, Query(ge=1, le=TRAIL_PAGE, description="lines at most")] = TRAIL_PAGE,
) -> TrailPage:
    """The trail from line `offset` on, a page at a time (`total` counts every line; the
    `state` shows only the latest). Lines the incident no longer holds (it continued as new)
    come from the audit table, the rest from the incident itself."""
    workflow_id = incident_workflow_id(incident_id)
    what = what_of("incident", incident_id)
    state = await svc.workflows.state(workflow_id, IncidentState, what)
    readable(svc, me, state.unit, what)
    held: TrailPage = await svc.workflows.query(
        workflow_id, "trail", TrailPage, what, {"offset": offset, "limit": limit}
    )
    if offset >= held.first_held:
        return held
    end = min(offset + limit, held.first_held)
    rows = await svc.pool.fetch(
        "SELECT at, kind, actor, role, signal, refused, refusal_kind, detail FROM audit_log"
        " WHERE workflow_id = $1 AND seq >= $2 AND seq < $3 ORDER BY seq",
        workflow_id,
        offset,
        end,
    )
    lines = [TrailEntry(**dict(row)) for row in rows]
    if len(lines) == end - offset:
        lines += held.lines[: limit - len(lines)] if held.offset == end else []
    return TrailPage(offset=offset, lines=lines, total=held.total, first_held=held.first_held)


@router.get("/{incident_id}/drafts/{version}", response_model=Draft, summary="A draft, whole")
async def incident_draft(
    incident_id: IncidentIdPath, version: Annotated[int, Path(ge=1)], me: Me, svc: Svc
) -> Draft:
    """A draft version with its whole text (the `state` gives the latest two whole)."""
    workflow_id = incident_workflow_id(incident_id)
    what = what_of("incident", incident_id)
    state = await svc.workflows.state(workflow_id, IncidentState, what)
    readable(svc, me, state.unit, what)
    if state.draft(version) is None:
        raise ApiError(404, Said("api.no_draft", what=what, version=version))
    found: Draft = await svc.workflows.query(workflow_id, "draft", Draft, what, version)
    return found


@router.post("/{incident_id}/report", response_model=TrailEntry, summary="Upward report")
async def submit_report(
    incident_id: IncidentIdPath, body: UpwardReportBody, me: Me, svc: Svc
) -> TrailEntry:
    """`submit_report`: the report to the leaders (SPEC §2.2), by the Office or the unit."""
    return await send(svc, incident_id, "submit_report", body, "reporter_id", me)


@router.post("/{incident_id}/assessment", response_model=TrailEntry, summary="Assessment")
async def submit_assessment(
    incident_id: IncidentIdPath, body: AssessmentBody, me: Me, svc: Svc
) -> TrailEntry:
    """`submit_assessment`: the Office grades the incident (SPEC §2.3)."""
    return await send(svc, incident_id, "submit_assessment", body, "assessor_id", me)


@router.post("/{incident_id}/metrics", response_model=TrailEntry, summary="New figures")
async def update_metrics(
    incident_id: IncidentIdPath, body: MetricsUpdateBody, me: Me, svc: Svc
) -> TrailEntry:
    """`update_metrics`: reposts, districts, media; may upgrade a general incident.
    You send them (`reported_by`); `source` names the system they come from (default: you),
    kept beside you in the trail."""
    # The source names a system more often than a person: recorded as given, never as actor.
    body = body.model_copy(update={"source": body.source or me.id})
    return await send(svc, incident_id, "update_metrics", body, "reported_by", me)


@router.post("/{incident_id}/drafts", response_model=TrailEntry, summary="Submit a draft")
async def submit_draft(
    incident_id: IncidentIdPath, body: DraftBody, me: Me, svc: Svc
) -> TrailEntry:
    """`submit_draft`: the unit's proposed statement; the incident numbers the versions and a
    new version voids every approval of older ones."""
    return await send(svc, incident_id, "submit_draft", body, "author_id", me)


@router.post("/{incident_id}/legal-opinions", response_model=TrailEntry, summary="Legal opinion")
async def legal_opinion(
    incident_id: IncidentIdPath, body: LegalOpinionBody, me: Me, svc: Svc
) -> TrailEntry:
    """`legal_opinion`: Legal's opinion, shown to every approver."""
    return await send(svc, incident_id, "legal_opinion", body, "author_id", me)


@router.post(
    "/{incident_id}/approvals/{step}", response_model=TrailEntry, summary="Approve or reject"
)
async def approve(
    incident_id: IncidentIdPath, step: Step, body: ApprovalBody, me: Me, svc: Svc
) -> TrailEntry:
    """An approval of the chain: `unit_head` (unit_head_approval), `section_head`
    (section_head_review), `publicity_lead` (publicity_lead_approval), `leadership_group`
    (leadership_group_approval). It names the draft version it approves; a rejection gives
    its reason in `comment`."""
    return await send(svc, incident_id, STEP_SIGNALS[step], body, "approver_id", me)


@router.post("/{incident_id}/posts", response_model=TrailEntry, summary="A netizen post")
async def netizen_post(
    incident_id: IncidentIdPath, body: NetizenPostBody, me: Me, svc: Svc
) -> TrailEntry:
    """`netizen_post`: a post the unit takes up; it becomes its own child workflow
    (`/incidents/{incident_id}/posts/{post_id}`)."""
    return await send(svc, incident_id, "netizen_post", body, "received_by", me)


@router.post("/{incident_id}/close", response_model=TrailEntry, summary="Close")
async def close_incident(
    incident_id: IncidentIdPath, body: CloseBody, me: Me, svc: Svc
) -> TrailEntry:
    """`close_incident`: the leading group (or the Office, for a general incident) declares
    it over; open posts may be left open only by naming each with why, in `open_posts`."""
    return await send(svc, incident_id, "close_incident", body, "closed_by", me)


@router.post("/{incident_id}/review", response_model=TrailEntry, summary="Review")
async def submit_review(
    incident_id: IncidentIdPath, body: ReviewBody, me: Me, svc: Svc
) -> TrailEntry:
    """`submit_review`: what happened, what worked, what to change. The incident ends."""
    return await send(svc, incident_id, "submit_review", body, "author_id", me)


@router.post(
    "/{incident_id}/calendar-changed", response_model=TrailEntry, summary="Calendar changed"
)
async def calendar_changed(
    incident_id: IncidentIdPath, body: CalendarChangedBody, me: Me, svc: Svc
) -> TrailEntry:
    """`calendar_changed`: a new official schedule is loaded; the incident's open posts
    re-plan their pending working-time deadlines (the Office only)."""
    return await send(svc, incident_id, "calendar_changed", body, "changed_by", me)
