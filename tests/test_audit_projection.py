"""The audit projection in PostgreSQL: rows written once whatever the retries, one hash chain
whatever the concurrency, and tampering found by recomputing the chain, not by the trigger.

Tampering tests work in a database of their own on the same server: a broken chain in the
shared one would fail every later check of it in the session.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from itertools import pairwise

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.audit import AuditActivities
from yuqing import db
from yuqing.audit.history import TrailLine
from yuqing.audit.projection import (
    GENESIS,
    TRAIL_FIELDS,
    Problem,
    canonical_content,
    chain_hash,
    projected_trail,
    verify,
)
from yuqing.effects import RecordTrail, TrailRecorded
from yuqing.roles import Role
from yuqing.stack import EmbeddedPostgres
from yuqing.state import Deadline, DeadlineStatus, TrailEntry
from yuqing.working_time import SHANGHAI

BASE = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)


@pytest.fixture
async def scratch(postgres: EmbeddedPostgres) -> AsyncIterator[asyncpg.Pool]:
    """A migrated database of its own, dropped afterwards."""
    name = f"audit_tamper_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    pool = await asyncpg.create_pool(postgres.url, database=name, min_size=1, max_size=8)
    try:
        await db.migrate(pool)
        yield pool
    finally:
        await pool.close()
        admin = await asyncpg.connect(postgres.admin_url)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()


def entries(count: int, label: str, start: int = 0) -> list[TrailEntry]:
    lines = []
    for n in range(start, start + count):
        refused = n % 3 == 2
        lines.append(
            TrailEntry(
                at=BASE + timedelta(minutes=n, microseconds=n),
                kind="refused" if refused else "approval",
                actor=f"{label}.person",
                role=Role.unit_head if n % 2 else None,
                signal="unit_head_approval" if refused else None,
                refused=refused,
                refusal_kind="forbidden" if refused else None,
                detail=f"{label} 第{n}条：审批 “{n}”",
            )
        )
    return lines


def deadline(key: str, status: DeadlineStatus = DeadlineStatus.pending) -> Deadline:
    return Deadline(
        key=key,
        title=f"{key} deadline",
        clock="calendar",
        starts_at=BASE,
        due_at=BASE + timedelta(hours=4),
        reminders_at=[BASE + timedelta(hours=2)],
        remind=[Role.unit_head],
        escalate_to=[Role.leadership_group],
        responsible_unit="xixiangtang-branch",
        responsible_person="huang.wei",
        policy_version="nanning-2017/1",
        status=status,
        met_at=BASE + timedelta(hours=1) if status is DeadlineStatus.met else None,
    )


def request(
    workflow_id: str,
    first_seq: int,
    lines: list[TrailEntry],
    deadlines: list[Deadline] | None = None,
    post_id: str | None = None,
) -> RecordTrail:
    return RecordTrail(
        workflow_id=workflow_id,
        incident_id=workflow_id.removeprefix("incident-").split("-post-")[0],
        post_id=post_id,
        first_seq=first_seq,
        entries=lines,
        deadlines=deadlines or [],
    )


async def record(pool: asyncpg.Pool, trail: RecordTrail) -> TrailRecorded:
    return await ActivityEnvironment().run(AuditActivities(pool).record_trail, trail)


def new_workflow_id() -> str:
    return f"incident-audit-{uuid.uuid4().hex[:8]}"


async def rows_of(pool: asyncpg.Pool, *workflow_ids: str) -> list[asyncpg.Record]:
    return await pool.fetch(
        "SELECT * FROM audit_log WHERE workflow_id = ANY($1) ORDER BY id", list(workflow_ids)
    )


async def test_a_retried_trail_is_written_once_and_the_chain_holds(pool: asyncpg.Pool) -> None:
    workflow_id = new_workflow_id()
    lines = entries(3, "a")
    first = await record(pool, request(workflow_id, 0, lines, [deadline("report_important")]))
    again = await record(pool, request(workflow_id, 0, lines, [deadline("report_important")]))
    assert (first.rows, again.rows) == (3, 0)
    assert first.last_hash is not None and again.last_hash == first.last_hash

    # The next call overlaps the last line: only the new one is written.
    more = entries(2, "a", start=2)
    assert more[0] == lines[2]
    extended = await record(
        pool, request(workflow_id, 2, more, [deadline("report_important", DeadlineStatus.met)])
    )
    assert extended.rows == 1

    projected = await projected_trail(pool, workflow_id)
    assert [row["seq"] for row in projected] == [0, 1, 2, 3]
    assert list(projected[0]) == list(TRAIL_FIELDS)
    # The rows read back as the history's trail lines, equal to what was sent.
    assert [TrailLine(**row) for row in projected] == [
        TrailLine.of(workflow_id, None, seq, entry) for seq, entry in enumerate(lines + more[1:])
    ]
    chained = await projected_trail(pool, workflow_id, chain=True)
    assert chained[2]["row_hash"] == first.last_hash
    assert chained[3]["row_hash"] == extended.last_hash

    report = await verify(pool)
    assert report.ok, report.problems
    assert report.rows_checked >= 4

    outcome = await pool.fetchrow(
        "SELECT * FROM deadline_outcomes WHERE workflow_id = $1 AND key = $2",
        workflow_id,
        "report_important",
    )
    assert outcome is not None
    assert (outcome["status"], outcome["trail_length"]) == ("met", 4)
    assert outcome["met_at"] == BASE + timedelta(hours=1)
    assert outcome["responsible_person"] == "huang.wei"

    # A late attempt of the first call (Temporal gave up on it, it ran on) finds its rows and
    # leaves the newer deadline state alone.
    late = await record(pool, request(workflow_id, 0, lines, [deadline("report_important")]))
    assert late.rows == 0
    status = await pool.fetchval(
        "SELECT status FROM deadline_outcomes WHERE workflow_id = $1", workflow_id
    )
    assert status == "met"


async def test_other_content_under_a_recorded_seq_is_refused(pool: asyncpg.Pool) -> None:
    workflow_id = new_workflow_id()
    await record(pool, request(workflow_id, 0, entries(2, "b")))
    other = entries(2, "c")
    with pytest.raises(ApplicationError) as refused:
        await record(pool, request(workflow_id, 1, other))
    assert refused.value.type == "TrailConflict"
    assert "seq 1" in str(refused.value)
    # Nothing of the refused call was written, not even its line 2.
    assert len(await projected_trail(pool, workflow_id)) == 2


async def test_the_hash_is_sha256_of_prev_hash_and_canonical_json(scratch: asyncpg.Pool) -> None:
    """Pinned, so that anyone can check the chain with nothing but this definition."""
    entry = TrailEntry(
        at=datetime(2026, 3, 2, 17, 30, tzinfo=SHANGHAI),
        kind="reported",
        actor="li.ming",
        role="office",
        detail="upward report via 新浪微博",
    )
    await record(scratch, request("incident-x1", 0, [entry]))
    row = (await rows_of(scratch, "incident-x1"))[0]
    content = (
        '{"actor":"li.ming","at":"2026-03-02T09:30:00.000000Z","detail":"upward report via'
        ' 新浪微博","incident_id":"x1","kind":"reported","post_id":null,"refusal_kind":null,'
        '"refused":false,"role":"office","seq":0,"signal":null,"workflow_id":"incident-x1"}'
    )
    assert canonical_content(row) == content
    assert json.loads(content)["detail"] == entry.detail
    assert row["prev_hash"] == GENESIS
    assert row["row_hash"] == hashlib.sha256((GENESIS + content).encode()).hexdigest()


async def test_two_workflows_interleaved_keep_one_chain(scratch: asyncpg.Pool) -> None:
    incident, post = "incident-i1", "incident-i1-post-p1"
    await record(scratch, request(incident, 0, entries(2, "i")))
    await record(scratch, request(post, 0, entries(3, "p"), post_id="p1"))
    await record(scratch, request(incident, 2, entries(2, "i", start=2)))
    rows = await rows_of(scratch, incident, post)
    assert [(row["workflow_id"], row["seq"]) for row in rows] == [
        (incident, 0),
        (incident, 1),
        (post, 0),
        (post, 1),
        (post, 2),
        (incident, 2),
        (incident, 3),
    ]
    # Each row links to the row before it by id, whichever workflow that row belongs to.
    assert [row["prev_hash"] for row in rows] == [GENESIS] + [row["row_hash"] for row in rows[:-1]]
    assert rows[2]["post_id"] == "p1" and rows[2]["incident_id"] == "i1"

    # Many workers at once, each workflow's calls in order as its projector makes them.
    async def one_workflow(n: int) -> None:
        workflow_id = f"incident-c{n}"
        for batch in range(4):
            await record(scratch, request(workflow_id, batch * 3, entries(3, f"c{n}", batch * 3)))
            # A retry in the middle of it all.
            await record(scratch, request(workflow_id, batch * 3, entries(3, f"c{n}", batch * 3)))

    await asyncio.gather(*(one_workflow(n) for n in range(6)))
    report = await verify(scratch, batch_size=5)
    assert report.ok, report.problems
    assert report.rows_checked == 7 + 6 * 12
    rows = await scratch.fetch("SELECT workflow_id FROM audit_log ORDER BY id")
    switches = sum(1 for a, b in pairwise(rows) if a[0] != b[0])
    assert switches > 6  # interleaved, yet one chain


async def test_an_edited_row_is_named_though_the_trigger_was_disabled(
    scratch: asyncpg.Pool,
) -> None:
    await record(scratch, request("incident-e1", 0, entries(4, "e")))
    await record(scratch, request("incident-e2", 0, entries(3, "f")))
    assert (await verify(scratch)).ok
    rows = await rows_of(scratch, "incident-e1", "incident-e2")
    target = rows[2]

    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await scratch.execute("UPDATE audit_log SET detail = 'x' WHERE id = $1", target["id"])
    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await scratch.execute("TRUNCATE audit_log")

    await scratch.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_is_append_only")
    await scratch.execute(
        "UPDATE audit_log SET detail = '审批（已改）' WHERE id = $1", target["id"]
    )
    report = await verify(scratch, batch_size=2)
    assert not report.ok
    assert report.problems == [
        Problem(
            row_id=target["id"],
            workflow_id="incident-e1",
            seq=2,
            what="row_hash does not match its content (edited)",
        )
    ]

    # An editor who recomputes the edited row's own hash is caught at the next row.
    forged = dict(target, detail="审批（已改）")
    new_hash = chain_hash(target["prev_hash"], forged)
    await scratch.execute(
        "UPDATE audit_log SET row_hash = $1 WHERE id = $2", new_hash, target["id"]
    )
    report = await verify(scratch)
    assert [(p.row_id, p.what.split(" (")[0]) for p in report.problems] == [
        (rows[3]["id"], "prev_hash does not match the previous row")
    ]


async def test_deleted_rows_are_reported(scratch: asyncpg.Pool) -> None:
    await record(scratch, request("incident-d1", 0, entries(3, "d")))
    await record(scratch, request("incident-d2", 0, entries(2, "g")))
    await record(scratch, request("incident-d1", 3, entries(2, "d", start=3)))
    await record(scratch, request("incident-d3", 0, entries(2, "h")))
    before = await verify(scratch)
    assert before.ok and before.rows_checked == 9
    assert before.last_id is not None and before.last_hash is not None
    anchor = (before.last_id, before.last_hash)
    rows = await rows_of(scratch, "incident-d1", "incident-d2", "incident-d3")

    with pytest.raises(asyncpg.RaiseError, match="append-only"):
        await scratch.execute("DELETE FROM audit_log WHERE id = $1", rows[1]["id"])
    await scratch.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_is_append_only")

    # A row in the middle: the chain breaks at the next row, and its workflow has a hole.
    await scratch.execute("DELETE FROM audit_log WHERE id = $1", rows[1]["id"])
    report = await verify(scratch)
    assert not report.ok
    assert {(p.row_id, p.workflow_id, p.seq, p.what) for p in report.problems} == {
        (
            rows[2]["id"],
            "incident-d1",
            2,
            f"prev_hash does not match the previous row (id {rows[0]['id']}): "
            "a row before it was removed or changed",
        ),
        (
            rows[2]["id"],
            "incident-d1",
            2,
            "seq 1 of this workflow is missing (removed, or not recorded yet)",
        ),
    }

    # Every row of an incident: each place it was cut out of the chain shows.
    await scratch.execute("DELETE FROM audit_log WHERE workflow_id = 'incident-d2'")
    report = await verify(scratch)
    assert rows[5]["id"] in {p.row_id for p in report.problems}  # d1's seq 3 followed d2's

    # The last row of the table leaves no link behind it: only an anchor shows it is gone.
    await scratch.execute("DELETE FROM audit_log WHERE id = $1", anchor[0])
    quiet = {p.row_id for p in (await verify(scratch)).problems}
    assert anchor[0] not in quiet
    anchored = await verify(scratch, anchor=anchor)
    assert anchored.problems[-1] == Problem(
        row_id=anchor[0],
        workflow_id=None,
        seq=None,
        what="the anchored row is gone (removed, or the tail of the chain was cut)",
    )


async def test_the_first_rows_removed_are_reported(scratch: asyncpg.Pool) -> None:
    await record(scratch, request("incident-f1", 0, entries(2, "f")))
    await record(scratch, request("incident-f2", 0, entries(2, "g")))
    await scratch.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_is_append_only")
    await scratch.execute("DELETE FROM audit_log WHERE workflow_id = 'incident-f1'")
    report = await verify(scratch)
    assert [p.what for p in report.problems] == [
        "prev_hash is not the start of the chain (rows before it were removed)"
    ]
