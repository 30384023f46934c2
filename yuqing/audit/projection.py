"""The decision trail as projected into PostgreSQL (`audit_log`), and the check of its hash chain.

Each row's `row_hash` is the SHA-256 (hex) of `prev_hash` followed by the canonical JSON of the
row's content (`CONTENT_FIELDS`: keys sorted, no whitespace, `at` in UTC to the microsecond);
`prev_hash` is the `row_hash` of the row before it by id, 64 zeros for the first. The trigger on
the table refuses UPDATE and DELETE, but whoever can disable it can change rows, so `verify`
recomputes the chain from the rows themselves and trusts nothing else in the database.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy
from pydantic import BaseModel

from yuqing.audit.history import TrailLine

log = structlog.get_logger(__name__)

# A row as built for writing, or as read back.
Row = Mapping[str, Any] | asyncpg.Record

GENESIS = "0" * 64

CONTENT_FIELDS = (
    "workflow_id",
    "incident_id",
    "post_id",
    "seq",
    "at",
    "kind",
    "actor",
    "role",
    "signal",
    "refused",
    "refusal_kind",
    "detail",
)

# What the history says of each line: the columns a row-by-row comparison reads.
# What the table holds of a line: all but its message (how it reads, kept in the history).
TRAIL_FIELDS = tuple(f.name for f in dataclasses.fields(TrailLine) if f.name != "message")
CHAIN_FIELDS = ("id", "incident_id", "recorded_at", "prev_hash", "row_hash")


def canonical_time(at: datetime) -> str:
    """`2024-05-01T02:03:04.000005Z`: always UTC, always microseconds, as PostgreSQL keeps it.

    A naive datetime is taken as local time, as asyncpg does when it stores one.
    """
    return at.astimezone(UTC).replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def canonical_content(row: Row) -> str:
    """The canonical JSON of a row's content fields, the text its hash covers."""
    content: dict[str, Any] = {}
    for name in CONTENT_FIELDS:
        value = row[name]
        if name == "at":
            value = canonical_time(value)
        elif name == "seq":
            value = int(value)
        elif name == "refused":
            value = bool(value)
        elif value is not None:
            # A StrEnum (a Role, say) hashes as its value, the text the table holds.
            value = str(value)
        content[name] = value
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def chain_hash(prev_hash: str, row: Row) -> str:
    return hashlib.sha256((prev_hash + canonical_content(row)).encode("utf-8")).hexdigest()


class Problem(BaseModel):
    """Something wrong at one row of the chain (or, for a lost anchor, at no row any more)."""

    row_id: int | None
    workflow_id: str | None
    seq: int | None
    what: str


class VerifyReport(BaseModel):
    ok: bool
    rows_checked: int
    # Signed checkpoints of the head held against the table (`yuqing.audit.notary`).
    checkpoints_checked: int = 0
    # The head of the chain as read: keep it elsewhere and pass it back as `anchor` later, and
    # a rewrite of the whole chain from some row onwards, or a cut of its tail, shows too.
    last_id: int | None
    last_hash: str | None
    problems: list[Problem]


_COLUMNS = ", ".join(("id", *CONTENT_FIELDS, "prev_hash", "row_hash"))


class SignedHead(Protocol):
    """A checkpoint of the chain's head, its signature checked (`yuqing.audit.notary`)."""

    @property
    def seq(self) -> int: ...
    @property
    def last_id(self) -> int: ...
    @property
    def last_hash(self) -> str: ...
    @property
    def rows(self) -> int: ...


async def verify(
    pool: asyncpg.Pool,
    *,
    batch_size: int = 1000,
    anchor: tuple[int, str] | None = None,
    checkpoints: Sequence[SignedHead] = (),
) -> VerifyReport:
    """Walk `audit_log` in id order and check every link of the chain, and every workflow's seqs.

    Reads through a server-side cursor, `batch_size` rows at a time, in one repeatable-read
    snapshot, so rows appended meanwhile neither show half-written nor break the walk.
    `anchor` is an (id, row_hash) read earlier (a `VerifyReport`'s head, or the `last_hash` an
    activity returned into the Temporal history): that row must still be there, unchanged.
    Each of `checkpoints` (signed heads) must find its row there with the hash it signed and
    as many rows up to it as it counted: so a chain recomputed after an edit, a cut tail and
    a removed incident show, though every link holds.
    """
    problems: list[Problem] = []
    rows = 0
    expected_prev = GENESIS
    last_id: int | None = None
    anchor_seen = False
    signed = {c.last_id: c for c in checkpoints}
    seen_signed: set[int] = set()
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read", readonly=True),
    ):
        cursor = conn.cursor(f"SELECT {_COLUMNS} FROM audit_log ORDER BY id", prefetch=batch_size)
        async for row in cursor:
            rows += 1
            if row["prev_hash"] != expected_prev:
                if last_id is None:
                    what = "prev_hash is not the start of the chain (rows before it were removed)"
                else:
                    what = (
                        f"prev_hash does not match the previous row (id {last_id}): "
                        "a row before it was removed or changed"
                    )
                problems.append(_at(row, what))
            if chain_hash(row["prev_hash"], row) != row["row_hash"]:
                problems.append(_at(row, "row_hash does not match its content (edited)"))
            if anchor is not None and row["id"] == anchor[0]:
                anchor_seen = True
                if row["row_hash"] != anchor[1]:
                    what = (
                        f"row_hash is not the anchored {anchor[1]}: "
                        "the chain was rewritten from this row or before it"
                    )
                    problems.append(_at(row, what))
            checkpoint = signed.get(row["id"])
            if checkpoint is not None:
                seen_signed.add(row["id"])
                if row["row_hash"] != checkpoint.last_hash or rows != checkpoint.rows:
                    problems.append(_against_checkpoint(row, checkpoint, rows))
            # The next row must link to what this row says it is, so that one edited row is
            # reported once, not again at every row after it.
            expected_prev = row["row_hash"]
            last_id = row["id"]
        problems.extend(await _seq_gaps(conn))
    if anchor is not None and not anchor_seen:
        problems.append(
            Problem(
                row_id=anchor[0],
                workflow_id=None,
                seq=None,
                what="the anchored row is gone (removed, or the tail of the chain was cut)",
            )
        )
    for checkpoint in checkpoints:
        if checkpoint.last_id not in seen_signed:
            problems.append(
                Problem(
                    row_id=checkpoint.last_id,
                    workflow_id=None,
                    seq=None,
                    what=(
                        f"the row checkpoint {checkpoint.seq} signed is gone: the tail of the"
                        " chain was cut, or rows were removed and the rest renumbered"
                    ),
                )
            )
    report = VerifyReport(
        ok=not problems,
        rows_checked=rows,
        checkpoints_checked=len(checkpoints),
        last_id=last_id,
        last_hash=expected_prev if last_id is not None else None,
        problems=problems,
    )
    if report.ok:
        log.info("audit chain verified", rows=rows)
    else:
        log.warning("audit chain broken", rows=rows, problems=len(problems))
    return report


def _against_checkpoint(row: Row, checkpoint: SignedHead, rows: int) -> Problem:
    if row["row_hash"] != checkpoint.last_hash:
        what = (
            f"row_hash is not the {checkpoint.last_hash[:16]}… checkpoint {checkpoint.seq}"
            " signed: the chain was rewritten (recomputed) up to this row"
        )
    else:
        what = (
            f"{rows} row(s) up to here where checkpoint {checkpoint.seq} counted"
            f" {checkpoint.rows}: rows before it were removed or added"
        )
    return _at(row, what)


def _at(row: Row, what: str) -> Problem:
    return Problem(row_id=row["id"], workflow_id=row["workflow_id"], seq=row["seq"], what=what)


async def _seq_gaps(conn: asyncpg.Connection | PoolConnectionProxy) -> list[Problem]:
    """Each workflow's trail is numbered 0, 1, 2…: a hole is a removed row (or one not yet
    written), which the chain alone misses when the removed row was the last of the table."""
    found = await conn.fetch(
        "SELECT id, workflow_id, seq, previous FROM ("
        " SELECT id, workflow_id, seq,"
        " lag(seq, 1, -1) OVER (PARTITION BY workflow_id ORDER BY seq) AS previous"
        " FROM audit_log) AS numbered"
        " WHERE seq <> previous + 1"
        " ORDER BY workflow_id, seq"
    )
    problems = []
    for row in found:
        first, last = row["previous"] + 1, row["seq"] - 1
        if first > last:
            what = f"seq {row['seq']} appears more than once in this workflow"
        else:
            missing = str(first) if first == last else f"{first}–{last}"
            what = f"seq {missing} of this workflow is missing (removed, or not recorded yet)"
        problems.append(_at(row, what))
    return problems


async def projected_trail(
    pool: asyncpg.Pool, workflow_id: str, *, chain: bool = False
) -> list[dict[str, Any]]:
    """The rows of one workflow's trail, in seq order.

    Each row has the fields of `yuqing.audit.history.TrailLine`, so `TrailLine(**row)` reads
    it; `chain=True` adds id, incident_id, recorded_at, prev_hash and row_hash.
    """
    columns = TRAIL_FIELDS + CHAIN_FIELDS if chain else TRAIL_FIELDS
    async with pool.acquire() as conn:
        rows = await conn.fetch(
            f"SELECT {', '.join(columns)} FROM audit_log WHERE workflow_id = $1 ORDER BY seq",
            workflow_id,
        )
    return [dict(row) for row in rows]
