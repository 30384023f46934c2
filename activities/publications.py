"""Statements published in the bureau's name, one channel per call (SPEC §2.5).

The activity checks the approval chain once more itself: whatever calls it, nothing is
published without the chain for its grade complete. Each publication is keyed by workflow,
draft version and channel, so a retry returns the first publication instead of a second one.
"""

from __future__ import annotations

import hashlib
import json

import asyncpg
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from yuqing.chain import chain_complete, missing_steps
from yuqing.db import fetch_one
from yuqing.effects import PublishStatement
from yuqing.state import Publication

log = structlog.get_logger(__name__)


class PublicationActivities:
    def __init__(self, pool: asyncpg.Pool, base_url: str) -> None:
        self._pool = pool
        self._base_url = base_url.rstrip("/")

    @activity.defn
    async def publish_statement(self, request: PublishStatement) -> Publication:
        version = request.draft_version
        if not chain_complete(request.policy, request.grade, request.approvals, version):
            missing = ", ".join(
                s.title
                for s in missing_steps(request.policy, request.grade, request.approvals, version)
            )
            raise ApplicationError(
                f"draft version {version} of {request.incident_id} lacks approval: {missing}",
                type="ApprovalChainIncomplete",
                non_retryable=True,
            )
        address = f"{self._base_url}/{request.incident_id}-v{version}#{request.channel.value}"
        approvals = [
            a.model_dump(mode="json")
            for a in request.approvals
            if a.draft_version == version and not a.void
        ]
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO publications (idempotency_key, incident_id, channel, draft_version,"
                " address, content, content_sha256, approvals)"
                " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                request.idempotency_key,
                request.incident_id,
                request.channel.value,
                version,
                address,
                request.text,
                hashlib.sha256(request.text.encode("utf-8")).hexdigest(),
                json.dumps(approvals, ensure_ascii=False),
            )
            row = await fetch_one(
                conn,
                "SELECT * FROM publications WHERE idempotency_key = $1",
                request.idempotency_key,
            )
        log.info(
            "statement published",
            incident_id=request.incident_id,
            channel=row["channel"],
            draft_version=version,
            address=row["address"],
        )
        return Publication(
            channel=row["channel"],
            draft_version=row["draft_version"],
            address=row["address"],
            content_sha256=row["content_sha256"],
            published_at=row["published_at"],
            idempotency_key=row["idempotency_key"],
        )
