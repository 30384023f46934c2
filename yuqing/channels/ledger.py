"""The deliveries table: each target of a notice or statement, and each attempt to reach it.

`attempt` is the one way anything is sent: it refuses to send again to a target whose
delivery is settled (delivered, or rejected for good), so a retried activity only reaches the
targets that are still owed the message. An attempt that sent the message but heard nothing
back in time (`unconfirmed`) leaves the target owed (`failed` here, the attempt `unknown` in
`delivery_attempts`): it is sent again later, and the receiver can tell the copies apart by
the idempotency key.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

import asyncpg
import structlog

from yuqing.channels.base import DeliveryStatus, Outcome
from yuqing.db import fetch_one

log = structlog.get_logger(__name__)

Purpose = Literal["notice", "statement"]
# How far past its own deadline a channel may run before the attempt is cut off regardless.
OVERRUN_SECONDS = 2.0
# A receiver that took a copy but did not answer in time gets the next one no sooner than
# this, doubling with each attempt up to an hour: nothing is lost, and a receiver that is slow
# rather than down is not sent a copy every few seconds.
HOLD_BACK = timedelta(minutes=5)
HOLD_BACK_MAX = timedelta(hours=1)


def hold_back(attempt: int) -> timedelta:
    """The pause before the attempt after `attempt` (1, 2, …), when that one went unanswered."""
    return min(HOLD_BACK * 2 ** min(max(attempt - 1, 0), 8), HOLD_BACK_MAX)


@dataclass(frozen=True)
class Delivery:
    channel: str
    target: str
    status: str
    attempts: int
    detail: str
    address: str | None
    delivered_at: datetime | None

    @property
    def settled(self) -> bool:
        return self.status in (DeliveryStatus.delivered, DeliveryStatus.rejected)


class Ledger:
    """The deliveries of one idempotency key (one notice, or one statement on one channel)."""

    def __init__(self, pool: asyncpg.Pool, *, key: str, incident_id: str, purpose: Purpose) -> None:
        self._pool = pool
        self._key = key
        self._incident_id = incident_id
        self._purpose = purpose

    async def deliveries(self) -> list[Delivery]:
        rows = await self._pool.fetch(
            "SELECT * FROM deliveries WHERE idempotency_key = $1 ORDER BY channel, target",
            self._key,
        )
        return [_delivery(row) for row in rows]

    async def attempt(
        self,
        channel: str,
        target: str,
        send: Callable[[], Awaitable[Outcome]],
        *,
        deadline: float,
    ) -> Outcome:
        """Send to one target unless it is settled already; record the attempt and its end.

        `send` keeps to `deadline` seconds itself; should it overrun, the attempt ends shortly
        after anyway, its outcome unknown, so that nothing waits on it until the activity's
        own timeout (when the attempt would end unrecorded, and the message go out again).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            row = await conn.fetchrow(
                "SELECT * FROM deliveries WHERE idempotency_key = $1 AND channel = $2"
                " AND target = $3 FOR UPDATE",
                self._key,
                channel,
                target,
            )
            if row is not None and _delivery(row).settled:
                return Outcome(DeliveryStatus(row["status"]), row["detail"], row["address"])
            if row is not None and row["status"] == "sending":
                # The worker stopped between sending and hearing back: say so, then resend.
                await conn.execute(
                    "INSERT INTO delivery_attempts (idempotency_key, channel, target, attempt,"
                    " status, detail, started_at) VALUES ($1, $2, $3, $4, 'unknown', $5, $6)",
                    self._key,
                    channel,
                    target,
                    row["attempts"],
                    "the attempt ended before its outcome was recorded",
                    row["last_attempt_at"],
                )
            started = await fetch_one(
                conn,
                "INSERT INTO deliveries (idempotency_key, channel, target, incident_id, purpose,"
                " status, attempts) VALUES ($1, $2, $3, $4, $5, 'sending', 1)"
                " ON CONFLICT (idempotency_key, channel, target) DO UPDATE SET"
                " status = 'sending', attempts = deliveries.attempts + 1,"
                " last_attempt_at = now()"
                " RETURNING attempts, last_attempt_at",
                self._key,
                channel,
                target,
                self._incident_id,
                self._purpose,
            )
        try:
            async with asyncio.timeout(deadline + OVERRUN_SECONDS):
                outcome = await send()
        except TimeoutError:
            outcome = Outcome.unconfirmed(
                f"{channel} {target}: no outcome within {deadline:g} s; it may have it"
            )
        unconfirmed = outcome.status is DeliveryStatus.unconfirmed
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute(
                "UPDATE deliveries SET status = $4, detail = $5, address = $6,"
                " delivered_at = CASE WHEN $4 = 'delivered' THEN now() END"
                " WHERE idempotency_key = $1 AND channel = $2 AND target = $3",
                self._key,
                channel,
                target,
                DeliveryStatus.failed.value if unconfirmed else outcome.status.value,
                outcome.detail,
                outcome.address,
            )
            await conn.execute(
                "INSERT INTO delivery_attempts (idempotency_key, channel, target, attempt,"
                " status, detail, started_at) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                self._key,
                channel,
                target,
                started["attempts"],
                "unknown" if unconfirmed else outcome.status.value,
                outcome.detail,
                started["last_attempt_at"],
            )
        # One per target and attempt; "notice sent" is the notice's one line: debug.
        log.debug(
            "delivery attempt",
            incident_id=self._incident_id,
            key=self._key,
            channel=channel,
            target=target,
            attempt=started["attempts"],
            status=outcome.status.value,
            detail=outcome.detail,
        )
        return outcome


def _delivery(row: asyncpg.Record) -> Delivery:
    return Delivery(
        channel=row["channel"],
        target=row["target"],
        status=row["status"],
        attempts=row["attempts"],
        detail=row["detail"],
        address=row["address"],
        delivered_at=row["delivered_at"],
    )
