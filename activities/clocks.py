"""Due times of deadlines that start mid-incident (yuqing.rules.clocks): an approval step's own
clock and a statement deadline that came back. Calendar hours, computed here so that the
history keeps them and the workflow never does the arithmetic."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from pydantic import BaseModel
from temporalio import activity

from yuqing.policy import Reminders
from yuqing.roles import Role
from yuqing.state import Deadline

log = structlog.get_logger(__name__)


class PlanClockRequest(BaseModel):
    incident_id: str
    key: str
    title: str
    starts_at: datetime
    hours: float
    # Hours after the start to remind at; None: the policy's reminder points (`reminders`).
    remind_after: list[float] | None
    reminders: Reminders
    remind: list[Role]
    escalate_to: list[Role]
    responsible_unit: str
    responsible_person: str | None
    policy_version: str


@activity.defn
async def plan_clock(request: PlanClockRequest) -> Deadline:
    start = request.starts_at
    due = start + timedelta(hours=request.hours)
    if request.remind_after is not None:
        moments = {start + timedelta(hours=h) for h in request.remind_after}
    else:
        span = due - start
        moments = {start + span * f for f in request.reminders.at_fractions}
        moments |= {due - timedelta(hours=h) for h in request.reminders.hours_before}
    deadline = Deadline(
        key=request.key,
        title=request.title,
        clock="calendar_hours",
        starts_at=start,
        due_at=due,
        reminders_at=sorted(m for m in moments if start < m < due),
        remind=request.remind,
        escalate_to=request.escalate_to,
        responsible_unit=request.responsible_unit,
        responsible_person=request.responsible_person,
        policy_version=request.policy_version,
    )
    log.info("clock planned", incident_id=request.incident_id, key=request.key, due=due.isoformat())
    return deadline
