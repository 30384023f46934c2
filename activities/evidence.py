"""Evidence fixed at intake (固定证据): content stored with its SHA-256 and capture time."""

from __future__ import annotations

import hashlib
from contextlib import nullcontext
from datetime import datetime

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy
from temporalio import activity
from temporalio.exceptions import ApplicationError

from yuqing.effects import FixedEvidenceList, FixEvidence
from yuqing.models import EvidenceItem, StagedContent
from yuqing.state import FixedEvidence

log = structlog.get_logger(__name__)


# The row as returned to the workflow: everything but the content itself.
_COLUMNS = (
    "evidence_id, incident_id, kind, source_url, description, sha256, size_bytes, captured_at"
)


def _fixing(insert: str) -> str:
    """`insert` (ON CONFLICT DO NOTHING) and the row it leaves, in one round trip: the row
    written, else the one there already under that id ($1), else nothing."""
    return (
        f"WITH written AS ({insert} RETURNING {_COLUMNS})"
        " SELECT * FROM written UNION ALL"
        f" SELECT {_COLUMNS} FROM evidence"
        " WHERE evidence_id = $1 AND NOT EXISTS (SELECT 1 FROM written)"
    )


_FIX_STAGED = _fixing(
    "INSERT INTO evidence (evidence_id, incident_id, kind, source_url, description, content,"
    " sha256, size_bytes, captured_at)"
    " SELECT $1, $2, $3, $4, $5, content, sha256, size_bytes, $7"
    " FROM evidence_staged WHERE sha256 = $6"
    " ON CONFLICT (evidence_id) DO NOTHING"
)
_FIX_INLINE = _fixing(
    "INSERT INTO evidence (evidence_id, incident_id, kind, source_url, description, content,"
    " sha256, size_bytes, captured_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
    " ON CONFLICT (evidence_id) DO NOTHING"
)


async def stage_evidence(pool: asyncpg.Pool, items: list[EvidenceItem]) -> list[EvidenceItem]:
    """Store each item's content in PostgreSQL before any incident exists; the items returned
    refer to it by SHA-256 and size, so only that reference travels through Temporal."""
    staged: list[EvidenceItem] = []
    async with pool.acquire() as conn:
        for item in items:
            if item.content_ref is not None:
                staged.append(item)
                continue
            content = item.content
            digest = hashlib.sha256(content).hexdigest()
            await conn.execute(
                "INSERT INTO evidence_staged (sha256, content, size_bytes) VALUES ($1, $2, $3)"
                " ON CONFLICT (sha256) DO NOTHING",
                digest,
                content,
                len(content),
            )
            ref = StagedContent(sha256=digest, size_bytes=len(content))
            staged.append(
                item.model_copy(
                    update={"content_text": None, "content_base64": None, "content_ref": ref}
                )
            )
    return staged


class EvidenceActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn
    async def fix_evidence(self, request: FixEvidence) -> FixedEvidenceList:
        stored_at = activity.info().started_time
        fixed: list[FixedEvidence] = []
        async with self._pool.acquire() as conn:
            # Several items are fixed together or not at all; one is a single statement.
            together = conn.transaction() if len(request.items) > 1 else nullcontext()
            async with together:
                for offset, item in enumerate(request.items):
                    fixed.append(
                        await _fix(conn, request, request.first_index + offset, item, stored_at)
                    )
        log.info("evidence fixed", incident_id=request.incident_id, items=len(fixed))
        return FixedEvidenceList(items=fixed)


async def _fix(
    conn: asyncpg.Connection | PoolConnectionProxy,
    request: FixEvidence,
    index: int,
    item: EvidenceItem,
    stored_at: datetime,
) -> FixedEvidence:
    evidence_id = f"{request.incident_id}-e{index + 1}"
    captured_at = item.captured_at or stored_at
    # A retry finds the row already there and returns it unchanged.
    if item.content_ref is not None:
        digest = item.content_ref.sha256
        row = await conn.fetchrow(
            _FIX_STAGED,
            evidence_id,
            request.incident_id,
            item.kind.value,
            item.source_url,
            item.description,
            digest,
            captured_at,
        )
    else:
        content = item.content
        digest = hashlib.sha256(content).hexdigest()
        row = await conn.fetchrow(
            _FIX_INLINE,
            evidence_id,
            request.incident_id,
            item.kind.value,
            item.source_url,
            item.description,
            content,
            digest,
            len(content),
            captured_at,
        )
    if row is None:
        # The statement reads the table as it was when it began: a row another attempt of
        # this activity committed while the insert waited on its lock is seen only now.
        row = await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM evidence WHERE evidence_id = $1", evidence_id
        )
    if row is None:
        raise ApplicationError(
            f"evidence {evidence_id} refers to content sha256 {digest}, which was never stored",
            type="EvidenceMissing",
            non_retryable=True,
        )
    if (row["incident_id"], row["sha256"]) != (request.incident_id, digest):
        # A retry finds its own row; anything else under this id is another item,
        # and returning it would put the wrong hash on the record.
        raise ApplicationError(
            f"evidence id {evidence_id} already holds other content "
            f"(sha256 {row['sha256']}, incident {row['incident_id']})",
            type="EvidenceConflict",
            non_retryable=True,
        )
    return FixedEvidence(
        evidence_id=row["evidence_id"],
        kind=row["kind"],
        source_url=row["source_url"],
        description=row["description"],
        captured_at=row["captured_at"],
        sha256=row["sha256"],
        size_bytes=row["size_bytes"],
    )
