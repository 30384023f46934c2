"""Start incidents and send them signals from Python, validating everything before it is sent.

Any other intake channel may do the same with a plain Temporal client and JSON (SPEC §5);
this is the reference one, and `python -m starter` puts it on the command line.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkflowIDReusePolicy

from workflows.incident import IncidentWorkflow
from yuqing import incident_workflow_id
from yuqing.decider import describe
from yuqing.models import SIGNAL_PAYLOADS, AdditionalReport, IncidentReport
from yuqing.state import IncidentState, IncidentSummary, TrailEntry


class InvalidInput(ValueError):
    """The input was refused before anything was sent; the message names the fields."""


def parse_report(data: Any) -> IncidentReport:
    try:
        return IncidentReport.model_validate(data)
    except ValidationError as err:
        raise InvalidInput(f"the incident report is invalid: {describe(err)}") from err


def parse_signal(signal: str, data: Any) -> dict[str, Any]:
    model = SIGNAL_PAYLOADS.get(signal)
    if model is None:
        raise InvalidInput(f"unknown signal {signal!r}; one of: {', '.join(SIGNAL_PAYLOADS)}")
    try:
        return model.model_validate(data).model_dump(mode="json")
    except ValidationError as err:
        raise InvalidInput(f"the {signal} payload is invalid: {describe(err)}") from err


async def start_incident(
    client: Client, report: IncidentReport, task_queue: str
) -> WorkflowHandle[IncidentWorkflow, IncidentSummary]:
    """Start the incident's workflow; an incident id is used once, ever."""
    return await client.start_workflow(
        IncidentWorkflow.run,
        report,
        id=incident_workflow_id(report.incident_id),
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        static_summary=f"{report.title} ({report.channel}, {report.unit})",
        static_details=report.summary or None,
    )


async def report_incident(
    client: Client, report: IncidentReport, task_queue: str
) -> WorkflowHandle[IncidentWorkflow, IncidentSummary]:
    """Start the incident, or add this report to the one already open for the same story.

    Signal-with-start: the `add_evidence` signal goes with the start, so a new incident gets
    the report as its input (and ignores the signal, whose submission id it already holds),
    while an open one gets the report's evidence. Whether it was new shows in its state:
    the first of its `submissions` is this report's `submission_id` (set here if missing).
    """
    submission_id = report.submission_id or str(uuid.uuid4())
    report = report.model_copy(update={"submission_id": submission_id})
    again = AdditionalReport(
        submission_id=submission_id,
        channel=report.channel,
        reporter_id=report.reporter_id,
        summary=report.summary or report.title,
        source_url=report.source_url,
        evidence=report.evidence,
        source=report.source,
    )
    handle = await client.start_workflow(
        IncidentWorkflow.run,
        report,
        id=incident_workflow_id(report.incident_id),
        task_queue=task_queue,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        start_signal="add_evidence",
        start_signal_args=[again],
        static_summary=f"{report.title} ({report.channel}, {report.unit})",
        static_details=report.summary or None,
    )
    return handle


async def signal_and_wait(
    client: Client,
    incident_id: str,
    signal: str,
    payload: dict[str, Any],
    *,
    patience: timedelta = timedelta(seconds=30),
) -> TrailEntry:
    """Send a signal and wait until the incident has decided it: accepted, or refused and why."""
    handle = client.get_workflow_handle(incident_workflow_id(incident_id))
    before = len((await handle.query(IncidentWorkflow.state)).trail)
    await handle.signal(signal, payload)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + patience.total_seconds()
    while loop.time() < give_up:
        state: IncidentState = await handle.query(IncidentWorkflow.state)
        entry = next((e for e in state.trail[before:] if e.signal == signal), None)
        if entry is not None:
            return entry
        await asyncio.sleep(0.2)
    raise TimeoutError(
        f"{signal} was delivered but not decided within {patience}; is a worker running?"
    )
