"""A netizen post: its own child workflow, `incident-<incident_id>-post-<post_id>` (SPEC §4).

Its signals answer at once like the incident's: 200 with the trail entry, or the refusal.
"""

from __future__ import annotations

import structlog
from fastapi import APIRouter
from pydantic import BaseModel

from api.deps import IncidentIdPath, Me, PostIdPath, Services, Svc, readable
from api.errors import RESPONSES, Refusal, what_of
from api.schemas import ExtensionBody, FormalReplyBody, InitialResponseBody, acting
from yuqing import incident_workflow_id
from yuqing.models import POST_SIGNAL_PAYLOADS
from yuqing.roster import Person
from yuqing.state import PostState, TrailEntry

log = structlog.get_logger("yuqing.api")

router = APIRouter(prefix="/incidents/{incident_id}/posts", tags=["posts"], responses=RESPONSES)


def post_workflow_id(incident_id: str, post_id: str) -> str:
    return f"{incident_workflow_id(incident_id)}-post-{post_id}"


async def send(
    svc: Services,
    incident_id: str,
    post_id: str,
    signal: str,
    body: BaseModel,
    field: str,
    me: Person,
) -> TrailEntry:
    payload = acting(body, field, me, POST_SIGNAL_PAYLOADS[signal])
    try:
        entry = await svc.workflows.decide(
            post_workflow_id(incident_id, post_id), signal, payload, me.id
        )
    except Refusal as refusal:
        log.info(
            "post signal refused",
            incident_id=incident_id,
            post_id=post_id,
            signal=signal,
            actor=me.id,
            reason=refusal.detail,
        )
        raise
    log.info(
        "post signal accepted", incident_id=incident_id, post_id=post_id, signal=signal, actor=me.id
    )
    return entry


@router.get("/{post_id}", response_model=PostState, summary="A post's state")
async def post_state(
    incident_id: IncidentIdPath, post_id: PostIdPath, me: Me, svc: Svc
) -> PostState:
    """The post's `state` query: status, deadlines, the steps taken and who took them.
    Seen by whoever may see its incident."""
    what = what_of("post", post_id, incident_id)
    state = await svc.workflows.state(post_workflow_id(incident_id, post_id), PostState, what)
    readable(svc, me, state.unit, what)
    return state


@router.post("/{post_id}/initial-response", response_model=TrailEntry, summary="Initial response")
async def initial_response(
    incident_id: IncidentIdPath,
    post_id: PostIdPath,
    body: InitialResponseBody,
    me: Me,
    svc: Svc,
) -> TrailEntry:
    """`initial_response`: the unit's first answer, within 3 working hours; say whether the
    post needs formal handling (a reply within 5 working days)."""
    return await send(svc, incident_id, post_id, "initial_response", body, "responder_id", me)


@router.post("/{post_id}/formal-reply", response_model=TrailEntry, summary="Formal reply")
async def formal_reply(
    incident_id: IncidentIdPath,
    post_id: PostIdPath,
    body: FormalReplyBody,
    me: Me,
    svc: Svc,
) -> TrailEntry:
    """`formal_reply`: the reply opinion, approved by the department leader (you)."""
    return await send(svc, incident_id, post_id, "formal_reply", body, "approver_id", me)


@router.post("/{post_id}/extension", response_model=TrailEntry, summary="Extension")
async def request_extension(
    incident_id: IncidentIdPath,
    post_id: PostIdPath,
    body: ExtensionBody,
    me: Me,
    svc: Svc,
) -> TrailEntry:
    """`request_extension`: more working days for the formal reply (at most 10 in all), with
    the reason, before the 5-day deadline passes."""
    return await send(svc, incident_id, post_id, "request_extension", body, "requested_by", me)
