"""The workflow side of the plan's later rules (yuqing.rules): their patches, their clocks, and
where a drill's effects go.

Kept apart from the workflows so each calls one function where its behaviour differs: which
rules apply (`plan_features`, once, at the start), who a notice reaches, and, for a drill,
the sink instead of a channel (§5.3): a drill never calls the notification, publication or
evidence activities.
"""

from __future__ import annotations

from typing import Any

from temporalio import workflow

with workflow.unsafe.imports_passed_through():
    from workflows.activity_types import DrillSinkActivities, plan_clock
    from workflows.common import DELIVERY_RETRY, QUICK, said
    from yuqing.effects import (
        FixedEvidenceList,
        FixEvidence,
        PlanClockRequest,
        PublishStatement,
        SendNotification,
    )
    from yuqing.outcomes import Notify, PlanClock
    from yuqing.policy import Policy
    from yuqing.roles import Role
    from yuqing.roster import Recipient, Roster
    from yuqing.rules import CARRIED_FEATURES, PLAN_FEATURES
    from yuqing.state import Deadline, Notification, Publication


def plan_features() -> list[str]:
    """The later rules this run applies: all of them for a workflow that starts now, none for
    one that began before they existed (its history has no marker), on replay and after."""
    return [feature for feature in PLAN_FEATURES if workflow.patched(feature)]


def plan_features_carried(extras: dict[str, Any]) -> list[str]:
    """The later rules a continued incident runs under: those its first run found (carried by
    `Incident.carried()`), so continuing as new never turns a rule on mid-incident."""
    carried = extras.get(CARRIED_FEATURES, [])
    return [feature for feature in PLAN_FEATURES if feature in carried]


def recipients(roster: Roster, notice: Notify, unit: str) -> list[Recipient]:
    """Everyone holding the notice's roles, then the people it names, each once."""
    found = roster.recipients(notice.roles, unit)
    seen = {r.id for r in found}
    named = roster.person_recipients(list(notice.people), Role.leadership_group)
    return found + [r for r in named if r.id not in seen]


async def planned_clock(
    incident_id: str, effect: PlanClock, policy: Policy, *, local: bool = False
) -> Deadline:
    """The clock's deadline; `local` (SPEED_PATCH): by a local activity, a computation."""
    run = plan_clock.run_local if local else plan_clock.run
    return await run(
        PlanClockRequest(
            incident_id=incident_id,
            key=effect.key,
            title=effect.title,
            starts_at=effect.starts_at,
            hours=effect.hours,
            remind_after=list(effect.remind_after) if effect.remind_after is not None else None,
            reminders=policy.reminders,
            remind=list(effect.remind),
            escalate_to=list(effect.escalate_to),
            responsible_unit=effect.responsible_unit,
            responsible_person=effect.responsible_person,
            policy_version=policy.version,
        ),
        start_to_close_timeout=QUICK,
        summary=said(effect.summary),
    )


async def drill_notice(request: SendNotification, summary: str) -> Notification:
    return await DrillSinkActivities.drill_notice.run(
        request,
        start_to_close_timeout=QUICK,
        retry_policy=DELIVERY_RETRY,
        summary=f"演练 drill sink: {summary}",
    )


async def drill_statement(request: PublishStatement, summary: str) -> Publication:
    return await DrillSinkActivities.drill_statement.run(
        request,
        start_to_close_timeout=QUICK,
        retry_policy=DELIVERY_RETRY,
        summary=f"演练 drill sink: {summary}",
    )


async def drill_evidence(request: FixEvidence, summary: str) -> FixedEvidenceList:
    return await DrillSinkActivities.drill_evidence.run(
        request,
        start_to_close_timeout=QUICK,
        summary=f"演练 drill sink: {summary}",
    )
