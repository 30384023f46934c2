"""The decision trail projected into PostgreSQL: append-only, hash-chained rows (SPEC §6), and
every deadline as it stands, for the compliance report across incidents (SPEC §2.10)."""

from __future__ import annotations

import asyncio
from datetime import UTC
from typing import Any

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy
from temporalio import activity
from temporalio.client import WorkflowExecutionStatus
from temporalio.exceptions import ApplicationError

from yuqing.audit.archive import ArchiveHistory, HistoryArchived, archive_runs
from yuqing.audit.projection import CONTENT_FIELDS, GENESIS, canonical_content, chain_hash
from yuqing.effects import RecordTrail, TrailRecorded
from yuqing.state import Deadline

log = structlog.get_logger(__name__)

# One chain across the table: whoever appends holds this lock until commit, so the row it links
# to is the last one committed, and the ids it draws follow that row's.
_CHAIN_LOCK = "SELECT pg_advisory_xact_lock(hashtext('yuqing.audit_log'))"

# The usual case in one round trip: a batch none of whose rows is there yet, linked and inserted
# by the server under the same lock (migration 0041); NULL when any row is there already.
_APPEND_NEW = (
    "SELECT yuqing_append_trail($1, $2, $3, $4::integer[], $5::timestamptz[], $6::text[],"
    " $7::text[], $8::text[], $9::text[], $10::boolean[], $11::text[], $12::text[],"
    " $13::text[])"
)

# Columns of deadline_outcomes the request's deadlines fill (after workflow_id, incident_id,
# post_id; trail_length last), with the array types `_APPEND_NEW_WITH_DEADLINES` reads them as.
_DEADLINE_COLUMNS = (
    ("key", "text"),
    ("title", "text"),
    ("clock", "text"),
    ("starts_at", "timestamptz"),
    ("due_at", "timestamptz"),
    ("status", "text"),
    ("met_at", "timestamptz"),
    ("breached_at", "timestamptz"),
    ("responsible_unit", "text"),
    ("responsible_person", "text"),
    ("policy_version", "text"),
    ("calendar_version", "text"),
)
_FIRST_DEADLINE_ARG = 14  # after _APPEND_NEW's 13


def _append_with_deadlines() -> str:
    """`_APPEND_NEW`, then (only if it appended) the batch's deadlines upserted as
    `_UPSERT_DEADLINE` upserts each: one statement, one round trip."""
    arrays = ", ".join(
        f"${_FIRST_DEADLINE_ARG + n}::{kind}[]" for n, (_, kind) in enumerate(_DEADLINE_COLUMNS)
    )
    names = [name for name, _ in _DEADLINE_COLUMNS]
    trail_length = f"${_FIRST_DEADLINE_ARG + len(_DEADLINE_COLUMNS)}::integer"
    values = " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    assert values in _UPSERT_DEADLINE
    upsert = _UPSERT_DEADLINE.replace(
        values,
        f" SELECT $1, d.key, $2, $3, {', '.join(f'd.{n}' for n in names[1:])}, {trail_length}"
        f" FROM appended, unnest({arrays}) AS d({', '.join(names)})"
        " WHERE appended.last_hash IS NOT NULL",
    )
    return (
        f"WITH appended AS ({_APPEND_NEW} AS last_hash),"
        f" upserted AS ({upsert})"
        " SELECT last_hash FROM appended"
    )


_INSERT_COLUMNS = (*CONTENT_FIELDS, "prev_hash", "row_hash")
_INSERT = (
    f"INSERT INTO audit_log ({', '.join(_INSERT_COLUMNS)})"
    f" VALUES ({', '.join(f'${n}' for n in range(1, len(_INSERT_COLUMNS) + 1))})"
)

_UPSERT_DEADLINE = (
    "INSERT INTO deadline_outcomes (workflow_id, key, incident_id, post_id, title, clock,"
    " starts_at, due_at, status, met_at, breached_at, responsible_unit, responsible_person,"
    " policy_version, calendar_version, trail_length)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)"
    " ON CONFLICT (workflow_id, key) DO UPDATE SET"
    " incident_id = EXCLUDED.incident_id, post_id = EXCLUDED.post_id,"
    " title = EXCLUDED.title, clock = EXCLUDED.clock, starts_at = EXCLUDED.starts_at,"
    " due_at = EXCLUDED.due_at, status = EXCLUDED.status, met_at = EXCLUDED.met_at,"
    " breached_at = EXCLUDED.breached_at, responsible_unit = EXCLUDED.responsible_unit,"
    " responsible_person = EXCLUDED.responsible_person,"
    " policy_version = EXCLUDED.policy_version, calendar_version = EXCLUDED.calendar_version,"
    " trail_length = EXCLUDED.trail_length, updated_at = now()"
    # A late attempt of an earlier activity carries an older state: it changes nothing.
    " WHERE deadline_outcomes.trail_length <= EXCLUDED.trail_length"
)
_APPEND_NEW_WITH_DEADLINES = _append_with_deadlines()


def trail_rows(request: RecordTrail) -> list[dict[str, Any]]:
    """The content of each row `request` asks for, as the table keeps it."""
    return [
        {
            "workflow_id": request.workflow_id,
            "incident_id": request.incident_id,
            "post_id": request.post_id,
            "seq": request.first_seq + offset,
            # As asyncpg stores it, so the hash covers what is read back.
            "at": entry.at.astimezone(UTC),
            "kind": entry.kind,
            "actor": entry.actor,
            "role": None if entry.role is None else str(entry.role),
            "signal": entry.signal,
            "refused": entry.refused,
            "refusal_kind": entry.refusal_kind,
            "detail": entry.detail,
        }
        for offset, entry in enumerate(request.entries)
    ]


class AuditActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn
    async def record_trail(self, request: RecordTrail) -> TrailRecorded:
        wanted = trail_rows(request)
        written = 0
        last_hash: str | None = None
        async with self._pool.acquire() as conn:
            deadlines_kept = False
            if wanted and request.deadlines:
                # The usual case with deadlines: the rows appended and, once they are, the
                # deadlines upserted, in the same round trip.
                last_hash = await conn.fetchval(
                    _APPEND_NEW_WITH_DEADLINES,
                    *_append_args(request, wanted),
                    *_deadline_columns(request),
                )
                written, deadlines_kept = len(wanted), last_hash is not None
            elif wanted:
                last_hash = await conn.fetchval(_APPEND_NEW, *_append_args(request, wanted))
                written = len(wanted)
            if last_hash is None and wanted:
                # Some row is there already: compare them all, write what is missing.
                async with conn.transaction():
                    await conn.execute(_CHAIN_LOCK)
                    written, last_hash = await _append(conn, request, wanted)
            if not deadlines_kept:
                # Its own statement: it is idempotent and never older than what it replaces.
                await _upsert_deadlines(conn, request)
        # Detail of a decision (its unit of work is logged where it is taken): debug.
        log.debug(
            "decision trail recorded",
            incident_id=request.incident_id,
            workflow_id=request.workflow_id,
            first_seq=request.first_seq,
            entries=len(wanted),
            rows_written=written,
            deadlines=len(request.deadlines),
        )
        return TrailRecorded(rows=written, last_hash=last_hash)

    @activity.defn
    async def start_archiver(self, request: ArchiveHistory) -> str:
        """Asked by runs begun between patches record-archive-history and -sweeper as their last
        act. The worker's sweeper (`yuqing.audit.sweeper`) archives every closed run now, these
        too: nothing is started (a second workflow per run cost more than the run's own code)."""
        return ""

    @activity.defn
    async def archive_history(self, request: ArchiveHistory) -> HistoryArchived:
        """Copy the closed run `request.run_id`, and any run before it not archived yet, into
        `history_archive`, each anchored in the chain. Retried until the run has closed."""
        await _until_closed(request)
        return await archive_runs(activity.client(), self._pool, request)


# How long one attempt waits for the run to close before Temporal's retries take over.
_CLOSE_PATIENCE = 20.0


async def _until_closed(request: ArchiveHistory) -> None:
    handle = activity.client().get_workflow_handle(request.workflow_id, run_id=request.run_id)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + _CLOSE_PATIENCE
    delay = 0.05
    while True:
        description = await handle.describe()
        if description.status != WorkflowExecutionStatus.RUNNING:
            return
        if loop.time() > give_up:
            raise ApplicationError(
                f"{request.workflow_id} run {request.run_id} is still running", type="NotClosed"
            )
        activity.heartbeat()
        await asyncio.sleep(delay)
        delay = min(delay * 2, 1.0)


def _append_args(request: RecordTrail, wanted: list[dict[str, Any]]) -> tuple[Any, ...]:
    """`_APPEND_NEW`'s arguments: the batch column by column, and each row's canonical
    content (what its hash covers, as `chain_hash` hashes it)."""
    return (
        request.workflow_id,
        request.incident_id,
        request.post_id,
        *([row[name] for row in wanted] for name in _ARRAY_FIELDS),
        [canonical_content(row) for row in wanted],
    )


# The row's own columns, after the three the whole batch shares (yuqing_append_trail's order).
_ARRAY_FIELDS = CONTENT_FIELDS[3:]


async def _append(
    conn: asyncpg.Connection | PoolConnectionProxy,
    request: RecordTrail,
    wanted: list[dict[str, Any]],
) -> tuple[int, str]:
    """Append the rows not there yet, chained; (rows written, row_hash of the last wanted row).

    Rows already there are found before any hash is computed: a hash computed for a row that is
    then skipped would link the next row to nothing in the table.
    """
    existing = {
        row["seq"]: row
        for row in await conn.fetch(
            "SELECT * FROM audit_log WHERE workflow_id = $1 AND seq >= $2 AND seq < $3",
            request.workflow_id,
            request.first_seq,
            request.first_seq + len(wanted),
        )
    }
    for content in wanted:
        found = existing.get(content["seq"])
        if found is not None and canonical_content(found) != canonical_content(content):
            # A retry finds its own rows. Other rows under this key come from another run of the
            # same workflow id (a reset, or an id reused after the first run ended): writing
            # nothing keeps the chain whole, and recording nothing must not pass unnoticed.
            raise ApplicationError(
                f"{request.workflow_id} seq {content['seq']} is already recorded with other"
                f" content ({found['kind']}: {found['detail']!r} at {found['at'].isoformat()};"
                f" this run says {content['kind']}: {content['detail']!r} at"
                f" {content['at'].isoformat()}): another run of this workflow id?",
                type="TrailConflict",
            )
    prev = await conn.fetchval("SELECT row_hash FROM audit_log ORDER BY id DESC LIMIT 1")
    prev = prev or GENESIS
    hashes = {seq: row["row_hash"] for seq, row in existing.items()}
    new_rows = []
    for content in wanted:
        if content["seq"] in existing:
            continue
        row_hash = chain_hash(prev, content)
        new_rows.append((*(content[name] for name in CONTENT_FIELDS), prev, row_hash))
        hashes[content["seq"]] = row_hash
        prev = row_hash
    if new_rows:
        await conn.executemany(_INSERT, new_rows)
    return len(new_rows), hashes[wanted[-1]["seq"]]


def _deadline_columns(request: RecordTrail) -> list[Any]:
    """The request's deadlines column by column (one per key, the last as `executemany` would
    leave it), and the trail length they stand at."""
    by_key = {d.key: _deadline_args(request, d, 0) for d in request.deadlines}
    rows = list(by_key.values())
    # _deadline_args: workflow_id, key, incident_id, post_id, then the deadline's own columns.
    own = [1, *range(4, 4 + len(_DEADLINE_COLUMNS) - 1)]
    return [[row[i] for row in rows] for i in own] + [request.first_seq + len(request.entries)]


async def _upsert_deadlines(
    conn: asyncpg.Connection | PoolConnectionProxy, request: RecordTrail
) -> None:
    if not request.deadlines:
        return
    trail_length = request.first_seq + len(request.entries)
    await conn.executemany(
        _UPSERT_DEADLINE,
        [_deadline_args(request, deadline, trail_length) for deadline in request.deadlines],
    )


def _deadline_args(request: RecordTrail, d: Deadline, trail_length: int) -> tuple[Any, ...]:
    return (
        request.workflow_id,
        d.key,
        request.incident_id,
        request.post_id,
        d.title,
        d.clock,
        d.starts_at,
        d.due_at,
        d.status.value,
        d.met_at,
        d.breached_at,
        d.responsible_unit,
        d.responsible_person,
        d.policy_version,
        d.calendar_version,
        trail_length,
    )
