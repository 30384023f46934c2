"""Each closed workflow's whole history, archived in PostgreSQL: the record outlives Temporal's
retention (SPEC §8).

One sweeper (`yuqing.audit.sweeper`, run by the worker) lists the incidents' and posts' runs
that closed since its last sweep (completed, continued as new, terminated, failed) and copies
each one not archived yet into `history_archive`: the history as Temporal returned it, payloads
still encrypted, serialized once (protobuf, gzip level 1) with its SHA-256, and one row in the
audit chain that carries the same digest. (Incidents begun before the sweeper started a
`HistoryArchiveWorkflow` as their last act, `workflows/archive.py`; those still run and store
the same way.) `yuqing audit` reads the archive when Temporal no longer has the history;
`yuqing audit-verify` checks each archive against its digest and its chain row.
"""

from __future__ import annotations

import gzip
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy
from google.protobuf import json_format
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.enums.v1 import EventType, HistoryEventFilterType
from temporalio.api.history.v1 import History, HistoryEvent
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client, WorkflowHistory
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

from yuqing import NETIZEN_POST_WORKFLOW
from yuqing.audit.projection import GENESIS, Problem, chain_hash

# (tools) The activities' inputs and results live with the others, so that the workflows need
# not import this module (nor asyncpg and structlog with it); named here as before.
from yuqing.effects import ArchivedRun, ArchiveHistory, HistoryArchived

log = structlog.get_logger(__name__)

Connection = asyncpg.Connection | PoolConnectionProxy

ARCHIVE_PREFIX = "archive:"
ARCHIVED_KIND = "history_archived"
CHAIN_LOCK = "SELECT pg_advisory_xact_lock(hashtext('yuqing.audit_log'))"

_CLOSED = {
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED: "completed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_FAILED: "failed",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TIMED_OUT: "timed_out",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CANCELED: "canceled",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_TERMINATED: "terminated",
    EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW: "continued_as_new",
}


# How a history is kept: its own protobuf serialization (a fraction of the JSON's cost to make
# and to read back), gzip-compressed. perf (issue 9): level 1, not 6: half the worker's CPU per
# history for a somewhat larger row; any level reads back the same (gzip.decompress), so the
# rows stored at level 6 and the format column are unchanged.
FORMAT = "protobuf"
COMPRESS_LEVEL = 1


@dataclass(frozen=True)
class Packed:
    """A history ready to store: its serialization, compressed, and what describes it."""

    content: bytes
    sha256: str
    size_bytes: int
    events: int
    workflow_type: str
    status: str
    started_at: datetime
    closed_at: datetime
    previous_run_id: str | None
    format: str = FORMAT


def pack(history: WorkflowHistory, raw: bytes) -> Packed:
    """The closed history, gzip-compressed from `raw`, its serialization as `fetch_closed_run`
    read it; the digest is of the bytes kept (uncompressed), so it can be checked against the
    archive alone."""
    if not history.events:
        raise ValueError(f"the history of {history.workflow_id} is empty")
    first, last = history.events[0], history.events[-1]
    status = _CLOSED.get(last.event_type)
    if status is None:
        raise ValueError(f"{history.workflow_id} is still running: only closed runs are archived")
    started = first.workflow_execution_started_event_attributes
    return Packed(
        content=gzip.compress(raw, compresslevel=COMPRESS_LEVEL, mtime=0),
        sha256=hashlib.sha256(raw).hexdigest(),
        size_bytes=len(raw),
        events=len(history.events),
        workflow_type=started.workflow_type.name,
        status=status,
        started_at=first.event_time.ToDatetime(tzinfo=UTC),
        closed_at=last.event_time.ToDatetime(tzinfo=UTC),
        previous_run_id=previous_run(history),
    )


async def fetch_closed_run(
    client: Client, workflow_id: str, run_id: str
) -> tuple[WorkflowHistory, bytes]:
    """A run's history as Temporal returns it, and its serialization (a `History`).

    perf (issue 9): read page by page here rather than through `fetch_history`, whose events
    `pack` then copied into a new `History` to serialize (most of the cost of packing, beside
    the gzip): each page's `History` is serialized as it came, and the pages' serializations,
    joined, are the serialization of the whole history (protobuf appends a repeated field's
    elements when messages are concatenated), parsed back by `unpack` as before."""
    pages: list[bytes] = []
    events: list[HistoryEvent] = []
    token = b""
    while True:
        page = await client.workflow_service.get_workflow_execution_history(
            GetWorkflowExecutionHistoryRequest(
                namespace=client.namespace,
                execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
                next_page_token=token,
                history_event_filter_type=HistoryEventFilterType.HISTORY_EVENT_FILTER_TYPE_ALL_EVENT,
            ),
            retry=True,
        )
        pages.append(page.history.SerializeToString())
        events.extend(page.history.events)
        token = page.next_page_token
        if not token:
            return WorkflowHistory(workflow_id, events), b"".join(pages)


def previous_run(history: WorkflowHistory) -> str | None:
    """The run this one continued (continue-as-new), if any."""
    started = history.events[0].workflow_execution_started_event_attributes
    return started.continued_execution_run_id or None


def unpack(workflow_id: str, content: bytes, sha256: str, format: str = FORMAT) -> WorkflowHistory:
    """The archived history, its digest checked first. (`.to_json()` renders it as the temporal
    CLI and `WorkflowHistory.from_json` read it.)"""
    raw = gzip.decompress(content)
    actual = hashlib.sha256(raw).hexdigest()
    if actual != sha256:
        raise ArchiveCorrupt(
            f"the archived history of {workflow_id} has SHA-256 {actual}, not the {sha256}"
            " recorded with it: it was altered"
        )
    history = History()
    if format == "json":  # archived before the protobuf format (migration 0021)
        json_format.Parse(raw, history, ignore_unknown_fields=True)
    else:
        history.ParseFromString(raw)
    return WorkflowHistory(workflow_id, list(history.events))


def owner_of(workflow_id: str, history: WorkflowHistory) -> tuple[str, str | None]:
    """(incident id, post id) of a run, from its start alone: a post is its incident's child,
    `incident-<incident id>-post-<post id>`; an incident is `incident-<incident id>`."""
    started = history.events[0].workflow_execution_started_event_attributes
    if started.workflow_type.name == NETIZEN_POST_WORKFLOW:
        parent = started.parent_workflow_execution.workflow_id
        if parent and workflow_id.startswith(parent + POST_INFIX):
            return parent.removeprefix(INCIDENT_PREFIX), workflow_id[len(parent + POST_INFIX) :]
        incident, _, post = workflow_id.rpartition(POST_INFIX)
        return incident.removeprefix(INCIDENT_PREFIX), post
    return workflow_id.removeprefix(INCIDENT_PREFIX), None


INCIDENT_PREFIX = "incident-"
POST_INFIX = "-post-"


class ArchiveCorrupt(ValueError):
    pass


def chain_detail(workflow_id: str, run_id: str, packed: Packed, trail_head: str | None) -> str:
    """What the chain row says of the archive: enough to check it against the archive alone."""
    head = f", trail head {trail_head}" if trail_head else ""
    return (
        f"{workflow_id} run {run_id} ({packed.workflow_type}, {packed.status}):"
        f" {packed.events} events, {packed.size_bytes} bytes, sha256 {packed.sha256}{head}"
    )


# Whether the run is archived already (its columns, else NULLs), the length of its archive
# chain and the hash of the table's last row: one row, whatever is found.
_STATE = (
    "SELECT a.sha256, a.events, a.chain_row,"
    " (SELECT count(*) FROM audit_log WHERE workflow_id = $3) AS seq,"
    " (SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1) AS prev"
    " FROM (SELECT 1) AS one"
    " LEFT JOIN history_archive a ON a.workflow_id = $1 AND a.run_id = $2"
)

# The chain row ($1-$14), then the archive row naming it ($15-$25): incident_id, post_id and
# closed_at are the chain row's own ($2, $3, $5).
_INSERT_BOTH = (
    "WITH chained AS ("
    "INSERT INTO audit_log (workflow_id, incident_id, post_id, seq, at, kind, actor,"
    " role, signal, refused, refusal_kind, detail, prev_hash, row_hash)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14) RETURNING id),"
    " archived AS ("
    "INSERT INTO history_archive (workflow_id, run_id, incident_id, post_id,"
    " workflow_type, status, started_at, closed_at, events, size_bytes, sha256,"
    " trail_head, content, chain_row, format)"
    " SELECT $15, $16, $2, $3, $17, $18, $19, $5, $20, $21, $22, $23, $24, chained.id, $25"
    " FROM chained)"
    " SELECT id FROM chained"
)


async def store(
    conn: Connection,
    request: ArchiveHistory,
    run_id: str,
    packed: Packed,
    trail_head: str | None,
) -> ArchivedRun:
    """Insert the archive and its chain row, once: a run archived already is left as it is."""
    chain_id = ARCHIVE_PREFIX + request.workflow_id
    async with conn.transaction():
        await conn.execute(CHAIN_LOCK)
        # perf (issue 9): what the three reads asked (is it archived already, the archive
        # chain's length, the last row's hash), in one statement under the lock; its snapshot is
        # taken after the lock is held, as theirs were.
        found = await conn.fetchrow(_STATE, request.workflow_id, run_id, chain_id)
        assert found is not None  # one row, always
        if found["sha256"] is not None:
            return ArchivedRun(
                run_id=run_id,
                sha256=found["sha256"],
                events=found["events"],
                chain_row=found["chain_row"],
                new=False,
            )
        content: dict[str, Any] = {
            "workflow_id": chain_id,
            "incident_id": request.incident_id,
            "post_id": request.post_id,
            "seq": int(found["seq"]),
            "at": packed.closed_at,
            "kind": ARCHIVED_KIND,
            "actor": None,
            "role": None,
            "signal": None,
            "refused": False,
            "refusal_kind": None,
            "detail": chain_detail(request.workflow_id, run_id, packed, trail_head),
        }
        prev = found["prev"] or GENESIS
        # The chain row and the archive that names it, in one statement (one round trip).
        row_id = await conn.fetchval(
            _INSERT_BOTH,
            *content.values(),
            prev,
            chain_hash(prev, content),
            request.workflow_id,
            run_id,
            packed.workflow_type,
            packed.status,
            packed.started_at,
            packed.events,
            packed.size_bytes,
            packed.sha256,
            trail_head,
            packed.content,
            packed.format,
        )
    return ArchivedRun(
        run_id=run_id, sha256=packed.sha256, events=packed.events, chain_row=row_id, new=True
    )


async def archive_runs(
    client: Client, pool: asyncpg.Pool, request: ArchiveHistory
) -> HistoryArchived:
    """Copy the closed run `request.run_id`, and each run before it (continue-as-new) that
    Temporal still has and the archive lacks, into `history_archive`, oldest first."""
    histories: list[tuple[str, WorkflowHistory, bytes]] = []
    run_id: str | None = request.run_id
    while run_id is not None:
        try:
            history, raw = await fetch_closed_run(client, request.workflow_id, run_id)
        except RPCError as err:
            if err.status != RPCStatusCode.NOT_FOUND or run_id == request.run_id:
                raise
            # An earlier run Temporal has let go of: archived before, or lost to retention.
            log.warning(
                "earlier run no longer in Temporal", workflow_id=request.workflow_id, run_id=run_id
            )
            break
        histories.append((run_id, history, raw))
        run_id = previous_run(history)
    runs: list[ArchivedRun] = []
    for run_id, history, raw in reversed(histories):  # oldest first: seq follows the runs
        async with pool.acquire() as conn:
            runs.append(
                await archive_one(conn, client.data_converter, request, run_id, history, raw)
            )
    log.info(
        "history archived",
        incident_id=request.incident_id,
        workflow_id=request.workflow_id,
        runs=[(r.run_id, r.events, r.sha256[:12], "new" if r.new else "already") for r in runs],
    )
    return HistoryArchived(workflow_id=request.workflow_id, runs=runs)


async def archive_one(
    conn: Connection,
    converter: DataConverter,
    request: ArchiveHistory,
    run_id: str,
    history: WorkflowHistory,
    raw: bytes,
) -> ArchivedRun:
    """Pack one closed run (once) and store it with the trail head its history recorded; `raw`
    is its serialization (`fetch_closed_run`)."""
    from yuqing.audit.history import anchored_head

    packed = pack(history, raw)
    # Only the payloads the head is read from are decrypted, on copies: the rest is kept as is.
    head = await anchored_head(history, converter)
    return await store(conn, request, run_id, packed, head)


async def archived_runs(pool: asyncpg.Pool, workflow_id: str) -> list[WorkflowHistory]:
    """Every archived run of `workflow_id`, oldest first, still encrypted (decode them with
    `yuqing.audit.history.decoded`); empty when none is archived."""
    rows = await pool.fetch(
        "SELECT content, sha256, format FROM history_archive WHERE workflow_id = $1"
        " ORDER BY started_at, chain_row",
        workflow_id,
    )
    return [unpack(workflow_id, row["content"], row["sha256"], row["format"]) for row in rows]


async def archived_run(pool: asyncpg.Pool, workflow_id: str, run_id: str) -> WorkflowHistory | None:
    """One archived run, still encrypted; None when it is not archived."""
    row = await pool.fetchrow(
        "SELECT content, sha256, format FROM history_archive"
        " WHERE workflow_id = $1 AND run_id = $2",
        workflow_id,
        run_id,
    )
    return (
        None if row is None else unpack(workflow_id, row["content"], row["sha256"], row["format"])
    )


async def check_archives(conn: Connection) -> list[Problem]:
    """Each archive matches its digest, and its chain row says that digest of it."""
    problems = []
    rows = await conn.fetch(
        "SELECT a.workflow_id, a.run_id, a.sha256, a.content, a.chain_row, a.events,"
        " a.size_bytes, a.workflow_type, a.status, a.trail_head, l.detail, l.seq"
        " FROM history_archive a LEFT JOIN audit_log l ON l.id = a.chain_row"
        " ORDER BY a.chain_row"
    )
    for row in rows:
        where = {"row_id": row["chain_row"], "workflow_id": ARCHIVE_PREFIX + row["workflow_id"]}
        actual = hashlib.sha256(gzip.decompress(row["content"])).hexdigest()
        if actual != row["sha256"]:
            what = (
                f"the archived history of {row['workflow_id']} run {row['run_id']} has SHA-256"
                f" {actual}, not the recorded {row['sha256']} (altered)"
            )
            problems.append(Problem(seq=row["seq"], what=what, **where))
        if row["detail"] is None:
            what = f"the chain row of the archive of {row['workflow_id']} is gone"
            problems.append(Problem(seq=None, what=what, **where))
        elif f"sha256 {row['sha256']}" not in row["detail"] or row["run_id"] not in row["detail"]:
            what = (
                f"the archive of {row['workflow_id']} run {row['run_id']} does not match what"
                " its chain row says of it"
            )
            problems.append(Problem(seq=row["seq"], what=what, **where))
    orphans = await conn.fetch(
        "SELECT l.id, l.workflow_id, l.seq FROM audit_log l"
        " LEFT JOIN history_archive a ON a.chain_row = l.id"
        " WHERE l.kind = $1 AND l.workflow_id LIKE 'archive:%' AND a.chain_row IS NULL",
        ARCHIVED_KIND,
    )
    for row in orphans:
        problems.append(
            Problem(
                row_id=row["id"],
                workflow_id=row["workflow_id"],
                seq=row["seq"],
                what="the chain records an archived history that is no longer in the archive",
            )
        )
    return problems
