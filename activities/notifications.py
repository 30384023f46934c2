"""Notices (reports, reminders, escalations, the major-incident notice) through the outbox.

The PostgreSQL outbox is the record of every notice: the row is written before delivery and
keyed by the workflow and step, so a retried activity finds it and never delivers twice.
"""

from __future__ import annotations

import json

import asyncpg
import structlog
from temporalio import activity

from yuqing.db import fetch_one
from yuqing.effects import SendNotification
from yuqing.state import Notification

log = structlog.get_logger(__name__)

# Deliveries leave the building through adapters (SMTP, chat robots) chosen by settings; with
# none configured a notice is recorded in the outbox for the duty officer to read.
OUTBOX_CHANNEL = "outbox"


class NotificationActivities:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @activity.defn
    async def send_notification(self, request: SendNotification) -> Notification:
        recipients = [r.model_dump(mode="json") for r in request.recipients]
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "INSERT INTO notification_outbox (idempotency_key, incident_id, kind, subject,"
                " body, recipients, channel) VALUES ($1, $2, $3, $4, $5, $6, $7)"
                " ON CONFLICT (idempotency_key) DO NOTHING",
                request.idempotency_key,
                request.incident_id,
                request.kind,
                request.subject,
                request.body,
                json.dumps(recipients, ensure_ascii=False),
                OUTBOX_CHANNEL,
            )
            row = await fetch_one(
                conn,
                "SELECT * FROM notification_outbox WHERE idempotency_key = $1 FOR UPDATE",
                request.idempotency_key,
            )
            if row["status"] != "sent":
                row = await fetch_one(
                    conn,
                    "UPDATE notification_outbox SET status = 'sent', attempts = attempts + 1,"
                    " result = $2, sent_at = now() WHERE idempotency_key = $1 RETURNING *",
                    request.idempotency_key,
                    f"recorded for {len(recipients)} recipient(s)",
                )
                log.info(
                    "notice sent",
                    incident_id=request.incident_id,
                    kind=request.kind,
                    key=request.idempotency_key,
                    recipients=[r["id"] for r in recipients],
                )
        return Notification(
            idempotency_key=row["idempotency_key"],
            kind=row["kind"],
            subject=row["subject"],
            recipients=[r["name"] for r in json.loads(row["recipients"])],
            channel=row["channel"],
            result=row["result"],
            sent_at=row["sent_at"],
        )
