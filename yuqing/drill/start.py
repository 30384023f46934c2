"""Starting a drill incident from a scenario (§5.3): the Office's one way in, for the API and
for tests alike."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy

from yuqing import INCIDENT_WORKFLOW, incident_workflow_id
from yuqing.drill.scenario import Scenario, drill_id


async def start_drill(
    client: Client,
    task_queue: str,
    scenario: Scenario,
    file_name: str,
    started_by: str,
    *,
    speed: float | None = None,
    now: datetime | None = None,
) -> tuple[str, WorkflowHandle[Any, Any]]:
    """Start the scenario's incident as a drill, discovered now; its id and handle."""
    incident_id = drill_id(file_name, now or datetime.now(UTC))
    report = scenario.report(incident_id, started_by, speed=speed)
    handle = await client.start_workflow(
        INCIDENT_WORKFLOW,
        report,
        id=incident_workflow_id(incident_id),
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=f"演练 drill: {scenario.name}",
    )
    return incident_id, handle
