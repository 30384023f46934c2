"""Yuqing: the bureau's public-opinion incident response plan as durable Temporal workflows.

Names here are the wire contract of SPEC §5: other languages and the `temporal` CLI use them.
"""

DEFAULT_TASK_QUEUE = "yuqing-incidents"
INCIDENT_WORKFLOW = "IncidentWorkflow"
NETIZEN_POST_WORKFLOW = "NetizenPostWorkflow"
# The update that decides a signal and answers with its trail entry (README, "Deciding").
DECIDE_UPDATE = "decide"
# Its rejection while a workflow continues as new: send the update again.
CONTINUING = "ContinuingAsNew"


def incident_workflow_id(incident_id: str) -> str:
    return f"incident-{incident_id}"
