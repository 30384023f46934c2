"""The drill sink (§5.3): where a drill's notices, statements and evidence go instead of out.

Nothing a drill does reaches a real channel: no e-mail, no robot, no gateway, no statement page.
Each notice and statement is kept here as it would have gone, marked 演练, keyed like the real
ones so a retry keeps one copy; bodies outside the bureau (the propaganda department, the
police …) are never among its recipients, not even in the sink: they are listed as withheld.
The store is the `drill_sink` table, or memory for `yuqing drill --simulate`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Protocol

import asyncpg
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.configuration import ConfigurationSnapshots
from activities.notifications import rendered
from yuqing.chain import chain_complete, missing_steps
from yuqing.effects import FixedEvidenceList, FixEvidence, PublishStatement, SendNotification
from yuqing.policy import Policy
from yuqing.roles import OUTSIDE_BODIES
from yuqing.state import FixedEvidence, Notification, Publication

log = structlog.get_logger(__name__)

SINK = "drill-sink"


@dataclass(frozen=True)
class SinkEntry:
    idempotency_key: str
    incident_id: str
    kind: str
    subject: str
    body: str
    recipients: list[str] = field(default_factory=list)
    withheld: list[str] = field(default_factory=list)
    content_sha256: str | None = None
    recorded_at: datetime = field(default_factory=lambda: datetime.now(UTC))


class DrillStore(Protocol):
    async def keep(self, entry: SinkEntry) -> SinkEntry:
        """Keep `entry` unless its key is kept already; the entry as kept."""


class MemoryDrillStore:
    """For simulations: nothing outlives the process."""

    def __init__(self) -> None:
        self.entries: dict[str, SinkEntry] = {}

    async def keep(self, entry: SinkEntry) -> SinkEntry:
        return self.entries.setdefault(entry.idempotency_key, entry)


class PostgresDrillStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def keep(self, entry: SinkEntry) -> SinkEntry:
        async with self._pool.acquire() as conn:
            await conn.execute(
                "INSERT INTO drill_sink (idempotency_key, incident_id, kind, subject, body,"
                " recipients, withheld, content_sha256) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                entry.idempotency_key,
                entry.incident_id,
                entry.kind,
                entry.subject,
                entry.body,
                json.dumps(entry.recipients, ensure_ascii=False),
                json.dumps(entry.withheld, ensure_ascii=False),
                entry.content_sha256,
            )
            row = await conn.fetchrow(
                "SELECT * FROM drill_sink WHERE idempotency_key = $1", entry.idempotency_key
            )
        assert row is not None
        return SinkEntry(
            idempotency_key=row["idempotency_key"],
            incident_id=row["incident_id"],
            kind=row["kind"],
            subject=row["subject"],
            body=row["body"],
            recipients=json.loads(row["recipients"]),
            withheld=json.loads(row["withheld"]),
            content_sha256=row["content_sha256"],
            recorded_at=row["recorded_at"],
        )


class DrillSinkActivities:
    def __init__(self, store: DrillStore, snapshots: ConfigurationSnapshots | None = None) -> None:
        self._store = store
        # The policies statements name by digest (the worker's own cache and table).
        self._snapshots = snapshots or ConfigurationSnapshots(None)

    async def _policy(self, request: PublishStatement) -> Policy:
        if request.policy is not None:
            return request.policy
        if request.policy_sha256 is None:
            raise ApplicationError(
                "the statement names no policy to check its chain against",
                type="ApprovalChainIncomplete",
                non_retryable=True,
            )
        return await self._snapshots.policy(request.policy_sha256)

    @activity.defn
    async def drill_notice(self, request: SendNotification) -> Notification:
        request = rendered(request)  # console (i18n): a notice kept as data, in Chinese
        kept = [r for r in request.recipients if r.role not in OUTSIDE_BODIES]
        withheld = [r.name for r in request.recipients if r.role in OUTSIDE_BODIES]
        entry = await self._store.keep(
            SinkEntry(
                idempotency_key=request.idempotency_key,
                incident_id=request.incident_id,
                kind=f"notice:{request.kind}",
                subject=request.subject,
                body=request.body,
                recipients=[r.name for r in kept],
                withheld=withheld,
            )
        )
        result = (
            f"演练 drill: kept in the drill sink for {len(entry.recipients)} recipient(s), not sent"
        )
        if entry.withheld:
            result += f"; never sent to bodies outside the bureau: {', '.join(entry.withheld)}"
        log.info("drill notice kept", incident_id=request.incident_id, key=request.idempotency_key)
        return Notification(
            idempotency_key=entry.idempotency_key,
            kind=request.kind,
            subject=entry.subject,
            recipients=entry.recipients,
            channel=SINK,
            result=result,
            sent_at=entry.recorded_at,
        )

    @activity.defn
    async def drill_statement(self, request: PublishStatement) -> Publication:
        version = request.draft_version
        policy = await self._policy(request)
        if not chain_complete(policy, request.grade, request.approvals, version):
            missing = ", ".join(
                s.title for s in missing_steps(policy, request.grade, request.approvals, version)
            )
            raise ApplicationError(
                f"draft version {version} of {request.incident_id} lacks approval: {missing}",
                type="ApprovalChainIncomplete",
                non_retryable=True,
            )
        digest = hashlib.sha256(request.text.encode("utf-8")).hexdigest()
        entry = await self._store.keep(
            SinkEntry(
                idempotency_key=request.idempotency_key,
                incident_id=request.incident_id,
                kind=f"statement:{request.channel.value}",
                subject=f"演练 statement v{version} on {request.channel.value}",
                body=request.text,
                content_sha256=digest,
            )
        )
        return Publication(
            channel=request.channel,
            draft_version=version,
            address=f"{SINK}:{request.incident_id}-v{version}#{request.channel.value}",
            content_sha256=entry.content_sha256 or digest,
            published_at=entry.recorded_at,
            idempotency_key=entry.idempotency_key,
        )

    @activity.defn
    async def drill_evidence(self, request: FixEvidence) -> FixedEvidenceList:
        fixed = []
        for offset, item in enumerate(request.items):
            content = item.content
            evidence_id = f"{request.incident_id}-e{request.first_index + offset + 1}"
            entry = await self._store.keep(
                SinkEntry(
                    idempotency_key=f"{request.incident_id}/evidence/{evidence_id}",
                    incident_id=request.incident_id,
                    kind=f"evidence:{item.kind.value}",
                    subject=item.description or evidence_id,
                    body=item.source_url or "",
                    content_sha256=hashlib.sha256(content).hexdigest(),
                )
            )
            fixed.append(
                FixedEvidence(
                    evidence_id=evidence_id,
                    kind=item.kind.value,
                    source_url=item.source_url,
                    description=item.description,
                    captured_at=item.captured_at or entry.recorded_at,
                    sha256=entry.content_sha256 or "",
                    size_bytes=len(content),
                )
            )
        return FixedEvidenceList(items=fixed)
