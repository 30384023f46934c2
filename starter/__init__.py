"""Start incidents and have them decide, from Python, validating everything before it is sent.

Any other intake channel may do the same with a plain Temporal client and JSON (SPEC §5);
this is the reference one, and `python -m starter` puts it on the command line.

Every call is one round trip: a decision is the workflow's `decide` update, which answers with
the trail entry the decision added; a report is update-with-start, which starts the incident
or joins the open one and answers likewise.
"""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError
from temporalio.client import (
    Client,
    WithStartWorkflowOperation,
    WorkflowHandle,
    WorkflowUpdateFailedError,
)
from temporalio.common import WorkflowIDConflictPolicy, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError

# No workflow module here: a starter needs only the wire contract's names (and starts fast).
from yuqing import CONTINUING, DECIDE_UPDATE, INCIDENT_WORKFLOW, incident_workflow_id
from yuqing.models import SIGNAL_PAYLOADS, AdditionalReport, IncidentReport, report_time_problem
from yuqing.state import IncidentSummary, TrailEntry

__all__ = [
    "DECIDE_UPDATE",
    "ID_REUSE",
    "InvalidInput",
    "decide",
    "parse_report",
    "parse_signal",
    "report_incident",
    "signal_and_wait",
    "start_incident",
]

# An incident id is used once, ever (its notices, publications and audit rows are keyed by it),
# unless its workflow failed: a report refused at intake must not make its story a tomb.
ID_REUSE = WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY
PATIENCE = timedelta(seconds=30)
# How soon an update turned away while the workflow continues as new is sent again.
AGAIN = 0.1
# What Temporal says of an update while another worker takes the workflow over, and how soon
# it is sent again (the retried workflow task takes a few seconds: its timeout, 10 s at most).
TAKEN_OVER = ("Workflow Task in failed state", "workflow update was aborted")
TAKE_OVER_AGAIN = 0.5


class InvalidInput(ValueError):
    """The input was refused before anything was sent; the message names the fields."""


def parse_report(data: Any, now: datetime | None = None) -> IncidentReport:
    """The report, or InvalidInput naming what is wrong: its fields against their limits, and
    its times against the clock (`now`, default the real one)."""
    try:
        report = IncidentReport.model_validate(data)
    except ValidationError as err:
        raise InvalidInput(f"the incident report is invalid: {_describe(err)}") from err
    problem = report_time_problem(report, now or datetime.now(UTC))
    if problem is not None:
        raise InvalidInput(f"the incident report is invalid: {problem}")
    return report


def parse_signal(signal: str, data: Any) -> dict[str, Any]:
    model = SIGNAL_PAYLOADS.get(signal)
    if model is None:
        raise InvalidInput(f"unknown signal {signal!r}; one of: {', '.join(SIGNAL_PAYLOADS)}")
    signed = isinstance(data, dict) and "proof" in data
    bare = {k: v for k, v in data.items() if k != "proof"} if signed else data
    try:
        checked = model.model_validate(bare).model_dump(mode="json")
    except ValidationError as err:
        raise InvalidInput(f"the {signal} payload is invalid: {_describe(err)}") from err
    # A signed payload (`yuqing sign`) goes exactly as signed: its proof covers that JSON.
    return dict(data) if signed else checked


def _describe(err: ValidationError) -> str:
    from yuqing.decider import describe  # here: it brings the signing machinery along

    return describe(err)


def _start(report: IncidentReport, task_queue: str, **options: Any) -> dict[str, Any]:
    return dict(
        id=incident_workflow_id(report.incident_id),
        task_queue=task_queue,
        id_reuse_policy=ID_REUSE,
        static_summary=f"{report.title} ({report.channel}, {report.unit})",
        static_details=report.summary or None,
        **options,
    )


async def start_incident(
    client: Client, report: IncidentReport, task_queue: str
) -> WorkflowHandle[Any, IncidentSummary]:
    """Start the incident's workflow without waiting for anything (a plain start)."""
    return await client.start_workflow(
        INCIDENT_WORKFLOW, report, result_type=IncidentSummary, **_start(report, task_queue)
    )


async def report_incident(
    client: Client,
    report: IncidentReport,
    task_queue: str,
    *,
    patience: timedelta = PATIENCE,
) -> TrailEntry:
    """Start the incident, or add this report to the one already open for the same story.

    Update-with-start: the `add_evidence` decision goes with the start. A new incident answers
    with its discovery (kind `discovered`) and records nothing twice; an open one decides the
    report like any `add_evidence` (`reported_again`, or a refusal). `submission_id` is set
    here if missing, so a repeated delivery of the same report adds nothing.
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
    loop = asyncio.get_running_loop()
    give_up = loop.time() + patience.total_seconds()
    while True:
        start: WithStartWorkflowOperation[Any, IncidentSummary] = WithStartWorkflowOperation(
            INCIDENT_WORKFLOW,
            report,
            result_type=IncidentSummary,
            **_start(
                report, task_queue, id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING
            ),
        )
        try:
            entry: TrailEntry = await client.execute_update_with_start_workflow(
                DECIDE_UPDATE,
                {"signal": "add_evidence", "payload": again.model_dump(mode="json")},
                start_workflow_operation=start,
                result_type=TrailEntry,
                rpc_timeout=timedelta(seconds=max(give_up - loop.time(), 1.0)),
            )
        except (RPCError, RuntimeError) as err:
            _settle(start)
            # Joining an open incident whose worker just died: the same report again (its
            # submission id makes a second delivery add nothing).
            if not taken_over(err) or loop.time() + TAKE_OVER_AGAIN > give_up:
                raise
            await asyncio.sleep(TAKE_OVER_AGAIN)
            continue
        except BaseException:
            _settle(start)
            raise
        return entry


def _settle(start: WithStartWorkflowOperation[Any, Any]) -> None:
    """Take the start operation's own copy of a failure, which would otherwise be logged as
    'never retrieved'; the caller has the same failure from the update."""
    future = getattr(start, "_workflow_handle", None)
    if future is not None and future.done() and not future.cancelled():
        future.exception()


async def decide(
    client: Client,
    workflow_id: str,
    signal: str,
    payload: Any,
    *,
    patience: timedelta = PATIENCE,
) -> TrailEntry:
    """Have the workflow decide `signal`: the trail entry of its acceptance or refusal.

    Sent again, under the same update id (so it is decided once however often it is sent),
    until `patience` runs out, while the workflow cannot take it yet: it readies to continue
    as new (`CONTINUING`), or its worker died mid-task and another is taking it over (Temporal
    refuses or aborts the update until then: nothing was decided).
    """
    handle = client.get_workflow_handle(workflow_id)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + patience.total_seconds()
    update_id = f"decide-{uuid.uuid4()}"
    while True:
        left = max(give_up - loop.time(), 1.0)
        try:
            entry: TrailEntry = await handle.execute_update(
                DECIDE_UPDATE,
                {"signal": signal, "payload": payload},
                id=update_id,
                result_type=TrailEntry,
                rpc_timeout=timedelta(seconds=left),
            )
            return entry
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            continuing = isinstance(cause, ApplicationError) and cause.type == CONTINUING
            if not continuing or loop.time() > give_up:
                raise
            await asyncio.sleep(AGAIN)
        except (RPCError, RuntimeError) as err:
            if not taken_over(err) or loop.time() + TAKE_OVER_AGAIN > give_up:
                raise
            await asyncio.sleep(TAKE_OVER_AGAIN)


def taken_over(err: BaseException) -> bool:
    """Temporal turned the update away because the workflow task that would take it is being
    retried (its worker died, or the task failed): it was not admitted, send it again."""
    return isinstance(err, RPCError | RuntimeError) and any(m in str(err) for m in TAKEN_OVER)


async def signal_and_wait(
    client: Client,
    incident_id: str,
    signal: str,
    payload: dict[str, Any],
    *,
    patience: timedelta = PATIENCE,
) -> TrailEntry:
    """The incident's decision of `signal`: accepted, or refused and why (one round trip)."""
    return await decide(
        client, incident_workflow_id(incident_id), signal, payload, patience=patience
    )
