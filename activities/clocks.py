"""Due times of deadlines that start mid-incident (yuqing.rules.clocks): an approval step's own
clock and a statement deadline that came back. Calendar hours, computed here so that the
history keeps them and the workflow never does the arithmetic."""

from __future__ import annotations

from datetime import timedelta

import structlog
from temporalio import activity

# (tools) The request lives with the other activity inputs, so that the workflows need not
# import this module (workflows/activity_types.py).
from yuqing.effects import PlanClockRequest
from yuqing.state import Deadline

log = structlog.get_logger(__name__)


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
    # A computation, not an effect: its result is in the history, the line only for debugging.
    log.debug(
        "clock planned", incident_id=request.incident_id, key=request.key, due=due.isoformat()
    )
    return deadline
