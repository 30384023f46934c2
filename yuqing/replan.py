"""Re-planning provisional due times once a year's official schedule is loaded (SPEC §3).

A post's working-time deadline reaching into a year with no official schedule is planned on
Monday–Friday and marked provisional (its calendar version ends in `;provisional`). That due
time may be earlier than the official one (a public holiday moves it later) or later (a weekend
declared a working day, 调休, moves it earlier): a post learnt of at 17:30 on Friday 2026-02-13
is due at 10:30 on Saturday 02-14, a make-up working day, officially, but at 10:30 on Monday
02-16 by Monday–Friday. So when the schedule is loaded, every incident with a provisional
pending deadline is told `calendar_changed`, and its posts plan those deadlines again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence

from temporalio.client import Client

from yuqing import INCIDENT_WORKFLOW
from yuqing.state import DeadlineStatus, IncidentState, TrailEntry

PROVISIONAL = ";provisional"
Decide = Callable[[str, str, dict[str, str]], Awaitable[TrailEntry]]


def has_provisional(state: IncidentState) -> bool:
    """Whether any open post of the incident has a pending deadline planned provisionally."""
    return any(
        deadline.status is DeadlineStatus.pending
        and (deadline.calendar_version or "").endswith(PROVISIONAL)
        for post in state.posts
        if post.open
        for deadline in post.deadlines
    )


async def running_incidents(client: Client) -> list[str]:
    query = f"WorkflowType = '{INCIDENT_WORKFLOW}' AND ExecutionStatus = 'Running'"
    return [execution.id async for execution in client.list_workflows(query)]


async def replan_provisional(
    client: Client,
    decide: Decide,
    changed_by: str,
    reason: str,
    workflow_ids: Sequence[str] | None = None,
) -> list[tuple[str, TrailEntry]]:
    """Send `calendar_changed` (through `decide`) to every running incident, or to those of
    `workflow_ids`, that has a provisional pending deadline; each with the entry it added."""
    ids = list(workflow_ids) if workflow_ids is not None else await running_incidents(client)
    told = []
    for workflow_id in ids:
        state = await client.get_workflow_handle(workflow_id).query(
            "state", result_type=IncidentState
        )
        # The state lists its latest posts only: with more, an earlier one may be provisional.
        if not has_provisional(state) and not state.omitted.get("posts"):
            continue
        payload = {"changed_by": changed_by, "reason": reason}
        told.append((workflow_id, await decide(workflow_id, "calendar_changed", payload)))
    return told
