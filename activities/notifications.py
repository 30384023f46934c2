"""Notices (reports, reminders, escalations, the major-incident notice): outbox, then channels.

The PostgreSQL outbox is the record of every notice: the row is written before delivery and
keyed by the workflow and step, so a retried activity finds it. Delivery goes through the
channels of the channels file (e-mail, chat robots), each copy recorded per channel and target
in `deliveries`: a retry sends only to the targets still owed the notice, and a channel that is
down makes the activity fail, so that Temporal retries it with backoff (DELIVERY_RETRY) until
every target has it. With no channel configured the notice is recorded for the duty officer.
"""

from __future__ import annotations

import asyncio
import json
from functools import partial

import asyncpg
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from yuqing.channels import NO_CHANNELS, Channels, NoticeChannel, notice_channels
from yuqing.channels.ledger import Delivery, Ledger
from yuqing.db import fetch_one
from yuqing.effects import SendNotification
from yuqing.state import Notification

log = structlog.get_logger(__name__)

OUTBOX_CHANNEL = "outbox"


class NotificationActivities:
    def __init__(self, pool: asyncpg.Pool, channels: Channels = NO_CHANNELS) -> None:
        self._pool = pool
        self._configured = channels.configured
        self._channels = notice_channels(channels)

    @activity.defn
    async def send_notification(self, request: SendNotification) -> Notification:
        routes = [(c, c.targets(request)) for c in self._channels]
        routes = [(c, targets) for c, targets in routes if targets]
        label = "+".join(dict.fromkeys(c.name for c, _ in routes)) or OUTBOX_CHANNEL
        row = await self._enter(request, label)
        if row["status"] == "sent":
            return _notification(row)

        if not routes:
            return await self._finish(request, self._unrouted(request))

        ledger = Ledger(
            self._pool,
            key=request.idempotency_key,
            incident_id=request.incident_id,
            purpose="notice",
        )
        settled = {(d.channel, d.target) for d in await ledger.deliveries() if d.settled}
        # Channels are independent: one robot that times out must not hold up the e-mail.
        await asyncio.gather(
            *(
                _deliver(
                    ledger, channel, request, [t for t in ts if (channel.name, t) not in settled]
                )
                for channel, ts in routes
            )
        )
        planned = {(c.name, t) for c, targets in routes for t in targets}
        deliveries = await ledger.deliveries()
        waiting = [d for d in deliveries if (d.channel, d.target) in planned and not d.settled]
        result = _tally(planned, deliveries, self._unreachable(request), waiting)
        if waiting:
            await self._pool.execute(
                "UPDATE notification_outbox SET result = $2 WHERE idempotency_key = $1",
                request.idempotency_key,
                result,
            )
            log.warning(
                "notice not delivered yet",
                incident_id=request.incident_id,
                kind=request.kind,
                key=request.idempotency_key,
                result=result,
            )
            # Retryable on purpose: DELIVERY_RETRY backs off and tries again until it is through.
            raise ApplicationError(result, type="ChannelUnavailable")
        return await self._finish(request, result)

    async def _enter(self, request: SendNotification, channel: str) -> asyncpg.Record:
        """The outbox row, written before anything leaves; this attempt counted on it."""
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
                channel,
            )
            row = await fetch_one(
                conn,
                "SELECT * FROM notification_outbox WHERE idempotency_key = $1 FOR UPDATE",
                request.idempotency_key,
            )
            if row["status"] == "sent":
                return row
            return await fetch_one(
                conn,
                "UPDATE notification_outbox SET attempts = attempts + 1, channel = $2"
                " WHERE idempotency_key = $1 RETURNING *",
                request.idempotency_key,
                channel,
            )

    async def _finish(self, request: SendNotification, result: str) -> Notification:
        async with self._pool.acquire() as conn:
            row = await fetch_one(
                conn,
                "UPDATE notification_outbox SET status = 'sent', result = $2, sent_at = now()"
                " WHERE idempotency_key = $1 RETURNING *",
                request.idempotency_key,
                result,
            )
        log.info(
            "notice sent",
            incident_id=request.incident_id,
            kind=request.kind,
            key=request.idempotency_key,
            channel=row["channel"],
            result=result,
            recipients=[r.id for r in request.recipients],
        )
        return _notification(row)

    def _unrouted(self, request: SendNotification) -> str:
        recorded = f"recorded for {len(request.recipients)} recipient(s)"
        if not self._configured:
            return f"{recorded}; no channel is configured"
        return f"{recorded}; no configured channel reaches them" + _unreachable_note(
            self._unreachable(request)
        )

    def _unreachable(self, request: SendNotification) -> list[str]:
        return [name for c in self._channels for name in c.unreachable(request)]


async def _deliver(
    ledger: Ledger, channel: NoticeChannel, request: SendNotification, targets: list[str]
) -> None:
    if not targets:
        return
    async with channel.session(request) as send:
        for target in targets:
            await ledger.attempt(channel.name, target, partial(send, target))


def _tally(
    planned: set[tuple[str, str]],
    deliveries: list[Delivery],
    unreachable: list[str],
    waiting: list[Delivery],
) -> str:
    # Targets settled under an earlier configuration still count: they did get the notice.
    counted = planned | {(d.channel, d.target) for d in deliveries if d.settled}
    delivered = [d for d in deliveries if d.status == "delivered"]
    rejected = [d for d in deliveries if d.status == "rejected"]
    result = f"delivered to {len(delivered)} of {len(counted)}"
    if waiting:
        # One line per reason: a mail server that is down is said once, not per mailbox.
        reasons: dict[str, list[str]] = {}
        for d in waiting:
            reasons.setdefault(d.detail, []).append(_name(d))
        result += " so far; waiting on " + "; ".join(
            f"{', '.join(names)}: {detail}" for detail, names in reasons.items()
        )
    if rejected:
        result += "; rejected: " + "; ".join(f"{_name(d)} ({d.detail})" for d in rejected)
    return result + _unreachable_note(unreachable)


def _unreachable_note(names: list[str]) -> str:
    return f"; no e-mail address: {', '.join(names)}" if names else ""


def _name(delivery: Delivery) -> str:
    return f"{delivery.channel} {delivery.target}"


def _notification(row: asyncpg.Record) -> Notification:
    return Notification(
        idempotency_key=row["idempotency_key"],
        kind=row["kind"],
        subject=row["subject"],
        recipients=[r["name"] for r in json.loads(row["recipients"])],
        channel=row["channel"],
        result=row["result"],
        sent_at=row["sent_at"],
    )
