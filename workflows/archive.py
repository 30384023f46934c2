"""HistoryArchiveWorkflow: copies a closed workflow's history into the archive (record, #11).

Incidents and posts begun under patch record-archive-history had one started as their last act
(`workflows.common.archive_when_closed`): it waits for that run to close, then `archive_history`
stores it in PostgreSQL (SPEC §8). None is started any more (the worker's sweeper,
`yuqing.audit.sweeper`, archives every closed run); it stays registered so that those already
started finish.
"""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

with workflow.unsafe.imports_passed_through():
    from workflows.activity_types import AuditActivities
    from yuqing.effects import ArchiveHistory, HistoryArchived

HISTORY_ARCHIVE_WORKFLOW = "HistoryArchiveWorkflow"

# Until the run has closed, and while PostgreSQL or Temporal is away: keep trying, backing off
# to one attempt every five minutes (well inside any retention: days, not minutes).
ARCHIVE_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=1),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)


@workflow.defn(name=HISTORY_ARCHIVE_WORKFLOW)
class HistoryArchiveWorkflow:
    @workflow.run
    async def run(self, request: ArchiveHistory) -> HistoryArchived:
        return await AuditActivities.archive_history.run(
            request,
            start_to_close_timeout=timedelta(minutes=2),
            heartbeat_timeout=timedelta(seconds=30),
            retry_policy=ARCHIVE_RETRY,
            summary=f"archive the history of {request.workflow_id}",
        )


def archiver_id(workflow_id: str, run_id: str) -> str:
    """One archiver per run: a retried start finds it there."""
    return f"{workflow_id}-archive-{run_id}"
