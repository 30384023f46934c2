"""Timeouts, retry policies and the deadline wait that both workflows use."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities
    from yuqing.audit.archive import ArchiveHistory
    from yuqing.effects import RecordTrail
    from yuqing.state import IncidentState, PostState

QUICK = timedelta(seconds=30)
RECORD_TIMEOUT = timedelta(seconds=5)
# A notice or a publication must not be lost while a channel is down: retry without end,
# backing off to one attempt every five minutes; the UI shows the pending activity meanwhile.
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
# A malformed policy, roster or calendar file waits for someone to mend it; a try a minute.
CONFIG_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))


async def settled_by(moment: datetime, settled: Callable[[], bool], summary: str) -> bool:
    """Wait until `settled()` holds or `moment` comes; True if it held in time."""
    remaining = moment - workflow.now()
    if remaining <= timedelta(0):
        return settled()
    try:
        await workflow.wait_condition(settled, timeout=remaining, timeout_summary=summary)
    except TimeoutError:
        return settled()
    return True


@dataclass(frozen=True)
class Inbound:
    """A signal as it arrived, waiting its turn to be decided."""

    signal: str
    payload: Any
    received_at: datetime
    problem: str | None = None


def inbound(signal: str, args: Sequence[Any]) -> Inbound:
    """One JSON object is a signal's payload; anything else is recorded as malformed."""
    if len(args) == 1:
        return Inbound(signal, args[0], workflow.now())
    problem = f"expected one JSON object as the payload, got {len(args)} values"
    return Inbound(signal, list(args), workflow.now(), problem)


# Workflows that began before the audit projection existed replay without it.
AUDIT_PROJECTION_PATCH = "audit-projection"


async def project_trail(
    state: IncidentState | PostState, post_id: str | None, ending: Callable[[], bool]
) -> None:
    """Copy each new line of the trail, and the deadlines as they stand, to PostgreSQL.

    Lines that come while a copy is under way go with the next one; once `ending()` holds and
    everything is copied, it returns, and the workflow may complete.
    """
    projected = 0
    while True:
        await workflow.wait_condition(
            lambda done=projected: len(state.trail) > done or ending()  # type: ignore[misc]
        )
        if len(state.trail) == projected:
            return
        entries = state.trail[projected:]
        await workflow.execute_activity_method(
            AuditActivities.record_trail,
            RecordTrail(
                workflow_id=state.workflow_id,
                incident_id=state.incident_id,
                post_id=post_id,
                first_seq=projected,
                entries=entries,
                deadlines=state.deadlines,
            ),
            # A few inserts: if an attempt takes longer, the database is in trouble and a fresh
            # attempt (which writes only what is missing) is the better bet.
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=CONFIG_RETRY,
            summary=f"record {len(entries)} line(s) of the decision trail",
        )
        projected += len(entries)


# -- record (#11): each closed run's history archived in PostgreSQL ---------------------------

# Workflows that began before the archive existed end without asking for their archive.
ARCHIVE_PATCH = "record-archive-history"


async def archive_when_closed(incident_id: str, post_id: str | None) -> None:
    """Have this run archived once it has closed: an activity starts its archiver (a workflow
    of its own, not a child, so it outlives this run). Call it last, before completing (or
    continuing as new)."""
    if not workflow.patched(ARCHIVE_PATCH):
        return
    info = workflow.info()
    await workflow.execute_activity_method(
        AuditActivities.start_archiver,
        ArchiveHistory(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            incident_id=incident_id,
            post_id=post_id,
        ),
        start_to_close_timeout=QUICK,
        retry_policy=CONFIG_RETRY,
        summary="archive this history once it has closed",
    )
