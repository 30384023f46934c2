"""Due times of the plan's deadlines, computed once when their clock starts (SPEC §3)."""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from temporalio import activity

from yuqing.effects import DeadlinePlan, PlanDeadlines
from yuqing.policy import DeadlineRule, Reminders
from yuqing.state import Deadline

log = structlog.get_logger(__name__)


@activity.defn
async def plan_deadlines(request: PlanDeadlines) -> DeadlinePlan:
    policy = request.policy
    deadlines = [
        Deadline(
            key=key,
            title=rule.title,
            clock=rule.clock,
            starts_at=request.discovered_at,
            due_at=request.discovered_at + rule.duration,
            reminders_at=reminder_times(request.discovered_at, rule, policy.reminders),
            remind=rule.remind,
            escalate_to=rule.escalate_to,
            responsible_unit=request.unit,
            responsible_person=request.responsible_person,
            policy_version=policy.version,
        )
        for key, rule in policy.deadlines_for(request.sensitivity).items()
    ]
    # A computation, not an effect: its result is in the history, the line only for debugging.
    log.debug(
        "deadlines planned",
        incident_id=request.incident_id,
        due={d.key: d.due_at.isoformat() for d in deadlines},
    )
    return DeadlinePlan(deadlines=deadlines)


def reminder_times(start: datetime, rule: DeadlineRule, reminders: Reminders) -> list[datetime]:
    """Reminder instants strictly between start and due, earliest first, without repeats."""
    due = start + rule.duration
    times = {start + rule.duration * fraction for fraction in reminders.at_fractions}
    times |= {due - timedelta(hours=hours) for hours in reminders.hours_before}
    return sorted(t for t in times if start < t < due)
