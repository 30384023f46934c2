"""One sweeper copies every closed run of an incident or a post into the archive (SPEC §8).

Every `every` (a minute by default), the worker asks Temporal's visibility for the runs of
incidents and posts that closed since its last sweep, however they closed (completed, continued
as new, terminated, failed, timed out), leaves out those the archive holds already, and archives
each of the rest (`yuqing.audit.archive`). Nothing is added to the workflows' own histories, and
no workflow or activity is started for it: a run costs one history read and one insert, once.

A worker that starts looks back over the whole retention (the namespace's, else 30 days), so a
run that closed while no worker ran is still found while Temporal has it; afterwards each sweep
looks back a little before the previous one began (`QUICK_LOOKBACK`: visibility is written a
moment after a run closes), and once every `OVERLAP` a sweep looks back `OVERLAP`
before the previous such one began, so that a run visibility showed late (up to `OVERLAP`) is
still found. A run it could not archive keeps the next sweep looking back to it. Several
workers may run: one sweeps at a time (a PostgreSQL advisory lock), and a run found twice is
stored once.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import structlog
from temporalio.api.workflowservice.v1 import (
    DescribeNamespaceRequest,
    ListWorkflowExecutionsRequest,
)
from temporalio.client import Client

from yuqing import INCIDENT_WORKFLOW, NETIZEN_POST_WORKFLOW
from yuqing.audit.archive import (
    ArchiveHistory,
    Connection,
    archive_one,
    fetch_closed_run,
    owner_of,
)
from yuqing.db import session_lock

log = structlog.get_logger(__name__)

SWEEP_EVERY = timedelta(minutes=1)
# Used when the namespace does not say its retention (ops' default, yuqing.stack.temporal).
DEFAULT_LOOKBACK = timedelta(days=30)
# Visibility records a run's close a moment after it closed: a sweep every OVERLAP looks back
# this far before the previous such sweep began.
OVERLAP = timedelta(minutes=10)
# perf (issue 9): the other sweeps look back this far before the previous one began: a run
# whose close visibility shows within it is listed by the next sweep. It need cover only
# visibility's lag, not the interval (the previous sweep's start already covers that); what
# visibility shows later, the OVERLAP sweep finds. It was a minute or two intervals: every
# closed run was listed by the sweeps of the next 70 s at the bench's 10 s interval (seven
# times, 3 at the default minute), each listing costing Temporal ~0.4 ms of CPU per run it
# returns (its memo and search attributes read and sent); now twice at 10 s, once or twice at a
# minute. It also covers a worker's clock behind Temporal's (CloseTime is the server's, `since`
# the worker's) by up to 15 s; a run hidden by more skew waits for the OVERLAP sweep.
QUICK_LOOKBACK = timedelta(seconds=15)
# One sweeper at a time across the workers (session advisory lock key).
_LOCK = "hashtext('yuqing.history_sweeper')"

_QUERY = (
    f"(WorkflowType = '{INCIDENT_WORKFLOW}' OR WorkflowType = '{NETIZEN_POST_WORKFLOW}')"
    " AND ExecutionStatus != 'Running' AND CloseTime >= '{since}'"
)


@dataclass
class Swept:
    """What one sweep did."""

    listed: int = 0
    archived: list[tuple[str, str]] = field(default_factory=list)  # (workflow id, run id)
    failed: list[tuple[str, str, str]] = field(default_factory=list)  # … and why
    # Where the next sweep looks back to.
    next_since: datetime | None = None
    skipped: bool = False  # another worker was sweeping
    began: datetime | None = None


async def sweep(
    client: Client, pool: asyncpg.Pool, since: datetime, *, lookback: timedelta = OVERLAP
) -> Swept:
    """Archive every incident or post run that closed at or after `since` and is not archived
    yet; `next_since` is `lookback` before this sweep began. A run that fails is logged and left
    for the next sweep (`next_since` stays before it)."""
    began = datetime.now(UTC)
    swept = Swept(next_since=began - lookback, began=began)
    async with pool.acquire() as conn, session_lock(conn, _LOCK, wait=False) as taken:
        if not taken:
            return Swept(next_since=since, skipped=True)
        await _sweep(client, conn, since, swept)
    if swept.archived or swept.failed:
        log.info(
            "histories archived",
            since=since.isoformat(timespec="seconds"),
            listed=swept.listed,
            archived=len(swept.archived),
            failed=[f"{wf} run {run}: {why}" for wf, run, why in swept.failed],
        )
    return swept


async def _sweep(client: Client, conn: Connection, since: datetime, swept: Swept) -> None:
    query = _QUERY.format(since=since.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
    closed: dict[tuple[str, str], datetime] = {}
    async for workflow_id, run_id, close_time in _closed_runs(client, query):
        closed[(workflow_id, run_id)] = close_time or since
    swept.listed = len(closed)
    if not closed:
        return
    archived = await conn.fetch(
        "SELECT workflow_id, run_id FROM history_archive"
        " WHERE (workflow_id, run_id) IN (SELECT * FROM unnest($1::text[], $2::text[]))",
        [workflow_id for workflow_id, _ in closed],
        [run_id for _, run_id in closed],
    )
    for row in archived:
        closed.pop((row["workflow_id"], row["run_id"]), None)
    # Oldest first: an incident's runs take their places in its archive chain in order.
    for (workflow_id, run_id), closed_at in sorted(closed.items(), key=lambda item: item[1]):
        try:
            history, raw = await fetch_closed_run(client, workflow_id, run_id)
            incident_id, post_id = owner_of(workflow_id, history)
            request = ArchiveHistory(
                workflow_id=workflow_id, run_id=run_id, incident_id=incident_id, post_id=post_id
            )
            await archive_one(conn, client.data_converter, request, run_id, history, raw)
        except Exception as error:  # one bad run must not stop the others
            swept.failed.append((workflow_id, run_id, str(error) or type(error).__name__))
            assert swept.next_since is not None
            swept.next_since = min(swept.next_since, closed_at)
            continue
        swept.archived.append((workflow_id, run_id))


async def _closed_runs(
    client: Client, query: str
) -> AsyncIterator[tuple[str, str, datetime | None]]:
    """(workflow id, run id, close time) of each run `query` lists, read from the listing's
    records as they come: `client.list_workflows` decodes every run's memo and search
    attributes too, which a sweep never reads, and each sweep lists again every run closed
    within `OVERLAP` (that decoding was most of the worker's time spent sweeping)."""
    token = b""
    while True:
        page = await client.workflow_service.list_workflow_executions(
            ListWorkflowExecutionsRequest(
                namespace=client.namespace, query=query, page_size=1000, next_page_token=token
            ),
            retry=True,
        )
        for info in page.executions:
            closed = info.close_time.ToDatetime(UTC) if info.HasField("close_time") else None
            yield info.execution.workflow_id, info.execution.run_id, closed
        token = page.next_page_token
        if not token:
            return


async def retention(client: Client) -> timedelta:
    """How long the namespace keeps a closed run; `DEFAULT_LOOKBACK` if it does not say."""
    try:
        described = await client.workflow_service.describe_namespace(
            DescribeNamespaceRequest(namespace=client.namespace)
        )
    except Exception as error:  # a sweep over the default is still a sweep
        log.warning("namespace retention unknown", error=str(error))
        return DEFAULT_LOOKBACK
    kept = described.config.workflow_execution_retention_ttl.ToTimedelta()
    return kept if kept > timedelta(0) else DEFAULT_LOOKBACK


async def run_sweeper(
    client: Client, pool: asyncpg.Pool, *, every: timedelta = SWEEP_EVERY
) -> None:
    """Sweep now and every `every`, until cancelled; a sweep that fails is tried at the next.

    The first sweep looks back over the retention; then each looks back `QUICK_LOOKBACK`
    before the previous one began, and one every `OVERLAP` (the first such
    once `OVERLAP` has passed) looks back `OVERLAP` before the previous such one began: a run
    visibility shows up to `OVERLAP` after it closed is listed by the next of those, if no sweep
    found it before."""
    since = datetime.now(UTC) - await retention(client)
    # When the last sweep that looked back OVERLAP (or the first, over the retention) began.
    full_began: datetime | None = None
    while True:
        try:
            now = datetime.now(UTC)
            full = full_began is None or now - full_began >= OVERLAP
            if full and full_began is not None:
                since = min(since, full_began - OVERLAP)
            swept = await sweep(client, pool, since, lookback=QUICK_LOOKBACK)
            since = swept.next_since or since
            if full and not swept.skipped and swept.began is not None:
                full_began = swept.began
        except asyncio.CancelledError:
            raise
        except Exception as error:  # Temporal or PostgreSQL away: next time
            log.warning("history sweep failed", error=str(error) or type(error).__name__)
        await asyncio.sleep(every.total_seconds())


@asynccontextmanager
async def sweeping(
    client: Client, pool: asyncpg.Pool, *, every: timedelta = SWEEP_EVERY
) -> AsyncIterator[asyncio.Task[None]]:
    """The sweeper running in the background for as long as the block lasts."""
    task = asyncio.create_task(run_sweeper(client, pool, every=every), name="history sweeper")
    try:
        yield task
    finally:
        task.cancel()
        try:
            await task
        except asyncio.CancelledError:
            pass
