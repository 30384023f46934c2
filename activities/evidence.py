"""Evidence fixed at intake (固定证据): content stored with its SHA-256 and capture time."""

from __future__ import annotations

import hashlib

import asyncpg
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from yuqing.db import fetch_one
from yuqing.effects import FixedEvidenceList, FixEvidence
from yuqing.state import FixedEvidence

log = structlog.get_logger(__name__)


class EvidenceActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn
    async def fix_evidence(self, request: FixEvidence) -> FixedEvidenceList:
        stored_at = activity.info().started_time
        fixed: list[FixedEvidence] = []
        async with self._pool.acquire() as conn, conn.transaction():
            for offset, item in enumerate(request.items):
                content = item.content
                digest = hashlib.sha256(content).hexdigest()
                evidence_id = f"{request.incident_id}-e{request.first_index + offset + 1}"
                # A retry finds the row already there and returns it unchanged.
                await conn.execute(
                    "INSERT INTO evidence (evidence_id, incident_id, kind, source_url,"
                    " description, content, sha256, size_bytes, captured_at)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    " ON CONFLICT (evidence_id) DO NOTHING",
                    evidence_id,
                    request.incident_id,
                    item.kind.value,
                    item.source_url,
                    item.description,
                    content,
                    digest,
                    len(content),
                    item.captured_at or stored_at,
                )
                row = await fetch_one(
                    conn, "SELECT * FROM evidence WHERE evidence_id = $1", evidence_id
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
                fixed.append(
                    FixedEvidence(
                        evidence_id=row["evidence_id"],
                        kind=row["kind"],
                        source_url=row["source_url"],
                        description=row["description"],
                        captured_at=row["captured_at"],
                        sha256=row["sha256"],
                        size_bytes=row["size_bytes"],
                    )
                )
        log.info("evidence fixed", incident_id=request.incident_id, items=len(fixed))
        return FixedEvidenceList(items=fixed)
