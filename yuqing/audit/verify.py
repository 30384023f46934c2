"""`yuqing audit-verify`: the whole record checked from PostgreSQL and the notary's key alone.

The hash chain of `audit_log` link by link, each workflow's trail numbered without holes, every
signed checkpoint of the chain's head (its signature, its link to the one before, and that the
table still holds what it signed), and every archived history against its digest and its chain
row. No Temporal, no payload key: a reader who holds only the database and the notary's public
key can tell whether the record was rewritten.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel

from yuqing.audit.archive import check_archives
from yuqing.audit.notary import signed_checkpoints
from yuqing.audit.projection import Problem, verify


class RecordReport(BaseModel):
    ok: bool
    rows_checked: int
    checkpoints_checked: int
    archives_checked: int
    newest_checkpoint: datetime | None
    # Rows appended after the newest checkpoint: protected by the chain alone until the next.
    rows_after_checkpoint: int
    checkpoint_key: str
    last_id: int | None
    last_hash: str | None
    problems: list[Problem]


async def verify_record(
    pool: asyncpg.Pool, trusted_key: Ed25519PublicKey | None, *, batch_size: int = 1000
) -> RecordReport:
    async with pool.acquire() as conn:
        signed = await signed_checkpoints(conn, trusted_key)
        archive_problems = await check_archives(conn)
        archives = await conn.fetchval("SELECT count(*) FROM history_archive")
    chain = await verify(pool, batch_size=batch_size, checkpoints=signed.checkpoints)
    newest = signed.checkpoints[-1] if signed.checkpoints else None
    problems = signed.problems + chain.problems + archive_problems
    after = 0
    if newest is not None and chain.last_id is not None:
        after = await pool.fetchval("SELECT count(*) FROM audit_log WHERE id > $1", newest.last_id)
    elif chain.last_id is not None:
        after = chain.rows_checked
    return RecordReport(
        ok=not problems,
        rows_checked=chain.rows_checked,
        checkpoints_checked=len(signed.checkpoints),
        archives_checked=archives,
        newest_checkpoint=newest.taken_at if newest else None,
        rows_after_checkpoint=after,
        checkpoint_key=signed.key_source,
        last_id=chain.last_id,
        last_hash=chain.last_hash,
        problems=problems,
    )
