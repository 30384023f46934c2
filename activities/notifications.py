"""Notices (reports, reminders, escalations, the major-incident notice): outbox, then channels.

The PostgreSQL outbox is the record of every notice: the row is written before delivery and
keyed by the workflow and step, so a retried activity finds it. Delivery goes through the
channels of the channels file (e-mail, chat robots), each copy recorded per channel and target
in `deliveries`: a retry sends only to the targets still owed the notice, and a channel that is
down makes the activity fail, so that Temporal tries again (workflows/delivery.py says how
often, and how the workflow learns that the notice is waiting) until every target has it. With
no channel configured the notice is recorded for the duty officer.

A notice that comes as data (`SendNotification.text`, console's i18n) is rendered here, before
anything is recorded: in the notices' language (a setting, Chinese by default) for the outbox
and the chat robots, and in each recipient's own language (the roster's) for their e-mail;
its body ends with the link to the incident's page in the console.

Each copy keeps to its channel's deadline; after each one, the activity heartbeats once the
attempt has run 3 s (`yuqing.channels.pulse`). It starts no copy that could not end
before its own timeout, so a long notice goes on in the next attempt instead of being cut off
mid-copy.
"""

from __future__ import annotations

import asyncio
import json
import time
from functools import partial

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy
from temporalio import activity
from temporalio.exceptions import ApplicationError

from yuqing.channels import NO_CHANNELS, Channels, DeliveryStatus, NoticeChannel, notice_channels
from yuqing.channels.ledger import OVERRUN_SECONDS, Delivery, Ledger, hold_back
from yuqing.channels.pulse import Pulse
from yuqing.db import fetch_one
from yuqing.effects import SendNotification
from yuqing.i18n import DEFAULT, LANGUAGES, language
from yuqing.i18n.notices import NoticeCopy, incident_link
from yuqing.state import Notification

log = structlog.get_logger(__name__)

OUTBOX_CHANNEL = "outbox"


# The outbox row of an attempt, in one round trip: written if new, else counted (attempts + 1,
# the channels of this attempt) unless it was sent already, when nothing is returned and the
# row is read as it is. With status 'sent' ($8) and a result ($9), the attempt that needs no
# delivery is entered and finished at once.
_ENTER = (
    "INSERT INTO notification_outbox AS o (idempotency_key, incident_id, kind, subject, body,"
    " recipients, channel, attempts, status, result, sent_at)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, 1, $8::text, $9::text,"
    " CASE WHEN $8::text = 'sent' THEN now() END)"
    " ON CONFLICT (idempotency_key) DO UPDATE SET attempts = o.attempts + 1,"
    " channel = EXCLUDED.channel, status = EXCLUDED.status,"
    " result = coalesce(EXCLUDED.result, o.result), sent_at = EXCLUDED.sent_at"
    " WHERE o.status <> 'sent'"
    " RETURNING *"
)


def _outbox_values(request: SendNotification, channel: str) -> tuple[str, ...]:
    recipients = [r.model_dump(mode="json") for r in request.recipients]
    return (
        request.idempotency_key,
        request.incident_id,
        request.kind,
        request.subject,
        request.body,
        json.dumps(recipients, ensure_ascii=False),
        channel,
    )


async def _sent_row(
    conn: asyncpg.Connection | PoolConnectionProxy, request: SendNotification
) -> asyncpg.Record:
    return await fetch_one(
        conn,
        "SELECT * FROM notification_outbox WHERE idempotency_key = $1",
        request.idempotency_key,
    )


class NotificationActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        channels: Channels = NO_CHANNELS,
        *,
        notice_language: str = DEFAULT,
        console_url: str | None = None,
    ) -> None:
        self._pool = pool
        self._configured = channels.configured
        self._channels = notice_channels(channels)
        self._language = language(notice_language)
        self._console_url = console_url

    @activity.defn
    async def send_notification(self, request: SendNotification) -> Notification:
        pulse = Pulse()
        request = self._rendered(request)
        routes = [(c, c.targets(request)) for c in self._channels]
        routes = [(c, targets) for c, targets in routes if targets]
        label = "+".join(dict.fromkeys(c.name for c, _ in routes)) or OUTBOX_CHANNEL
        if not routes:
            # Nothing to deliver: the outbox row is the notice, written sent in one statement.
            return await self._record_unrouted(request, label)
        row = await self._enter(request, label)
        if row["status"] == "sent":
            return _notification(row)

        ledger = Ledger(
            self._pool,
            key=request.idempotency_key,
            incident_id=request.incident_id,
            purpose="notice",
        )
        settled = {(d.channel, d.target) for d in await ledger.deliveries() if d.settled}
        budget = Budget.of_this_attempt()
        # Channels are independent: one robot that times out must not hold up the e-mail.
        outcomes = await asyncio.gather(
            *(
                _deliver(
                    ledger,
                    channel,
                    request,
                    [t for t in ts if (channel.name, t) not in settled],
                    budget,
                    pulse,
                )
                for channel, ts in routes
            )
        )
        planned = {(c.name, t) for c, targets in routes for t in targets}
        deliveries = await ledger.deliveries()
        done = {(d.channel, d.target) for d in deliveries if d.settled}
        waiting = [d for d in deliveries if (d.channel, d.target) in planned and not d.settled]
        untried = sorted(planned - done - {(d.channel, d.target) for d in waiting})
        result = _tally(planned, deliveries, self._unreachable(request), waiting, untried)
        if waiting or untried:
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
            unanswered = any(o is DeliveryStatus.unconfirmed for per in outcomes for o in per)
            # Retryable on purpose: the workflow's delivery rounds try again until it is through.
            raise ApplicationError(
                result,
                {"channel": label},
                type="ChannelUnavailable",
                next_retry_delay=hold_back(activity.info().attempt) if unanswered else None,
            )
        return await self._finish(request, result)

    async def _enter(self, request: SendNotification, channel: str) -> asyncpg.Record:
        """The outbox row, written before anything leaves; this attempt counted on it (one
        statement: a row already sent is returned as it is)."""
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_ENTER, *_outbox_values(request, channel), "pending", None)
            return row if row is not None else await _sent_row(conn, request)

    async def _record_unrouted(self, request: SendNotification, channel: str) -> Notification:
        """A notice no channel takes: recorded for the duty officer, entered and finished at
        once (as `_enter` then `_finish` would leave it, in one statement)."""
        result = self._unrouted(request)
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(_ENTER, *_outbox_values(request, channel), "sent", result)
            if row is None:
                return _notification(await _sent_row(conn, request))
        self._log_sent(request, row, result)
        return _notification(row)

    async def _finish(self, request: SendNotification, result: str) -> Notification:
        async with self._pool.acquire() as conn:
            row = await fetch_one(
                conn,
                "UPDATE notification_outbox SET status = 'sent', result = $2, sent_at = now()"
                " WHERE idempotency_key = $1 RETURNING *",
                request.idempotency_key,
                result,
            )
        self._log_sent(request, row, result)
        return _notification(row)

    @staticmethod
    def _log_sent(request: SendNotification, row: asyncpg.Record, result: str) -> None:
        log.info(
            "notice sent",
            incident_id=request.incident_id,
            kind=request.kind,
            key=request.idempotency_key,
            channel=row["channel"],
            result=result,
            recipients=[r.id for r in request.recipients],
        )

    def _rendered(self, request: SendNotification) -> SendNotification:
        return rendered(request, self._language, self._console_url)

    def _unrouted(self, request: SendNotification) -> str:
        recorded = f"recorded for {len(request.recipients)} recipient(s)"
        if not self._configured:
            return f"{recorded}; no channel is configured"
        return f"{recorded}; no configured channel reaches them" + _unreachable_note(
            self._unreachable(request)
        )

    def _unreachable(self, request: SendNotification) -> list[str]:
        return [name for c in self._channels for name in c.unreachable(request)]


def rendered(
    request: SendNotification, lang: str = DEFAULT, console_url: str | None = None
) -> SendNotification:
    """A notice kept as data, rendered in every language; `lang`'s in subject and body (the
    outbox, the robots), the others in `copies` (a recipient who reads another)."""
    text = request.text
    if text is None:
        return request
    link = incident_link(console_url, request.incident_id) if console_url else None
    copies = {
        lang: NoticeCopy(subject=text.subject(lang), body=text.body(lang, link))
        for lang in LANGUAGES
    }
    own = copies[language(lang)]
    return request.model_copy(update={"subject": own.subject, "body": own.body, "copies": copies})


class Budget:
    """The time this activity attempt has left, so that no copy starts that could not end."""

    # Left over after the last copy, to record it and answer before the activity's timeout.
    MARGIN_SECONDS = 5.0

    def __init__(self, seconds: float | None) -> None:
        self._ends = None if seconds is None else time.monotonic() + seconds
        self._started = False

    @classmethod
    def of_this_attempt(cls) -> Budget:
        timeout = activity.info().start_to_close_timeout
        return cls(timeout.total_seconds() if timeout else None)

    def allows(self, deadline: float) -> bool:
        """Whether a copy with this deadline may start; the first of an attempt always may,
        so that every attempt gets somewhere."""
        fits = self._ends is None or (
            time.monotonic() + deadline + OVERRUN_SECONDS + self.MARGIN_SECONDS < self._ends
        )
        if fits or not self._started:
            self._started = True
            return True
        return False


async def _deliver(
    ledger: Ledger,
    channel: NoticeChannel,
    request: SendNotification,
    targets: list[str],
    budget: Budget,
    pulse: Pulse,
) -> list[DeliveryStatus]:
    """Each target's outcome; targets left when the attempt's time ran out have none."""
    if not targets:
        return []
    statuses: list[DeliveryStatus] = []
    async with channel.session(request) as send:
        for target in targets:
            if not budget.allows(channel.deadline):
                break  # the next attempt takes the rest
            outcome = await ledger.attempt(
                channel.name, target, partial(send, target), deadline=channel.deadline
            )
            statuses.append(outcome.status)
            # A notice to many mailboxes takes a while: say that this attempt is alive (from
            # the first copy that ends 3 s into the attempt on: yuqing.channels.pulse).
            pulse.beat(len(statuses))
    return statuses


def _tally(
    planned: set[tuple[str, str]],
    deliveries: list[Delivery],
    unreachable: list[str],
    waiting: list[Delivery],
    untried: list[tuple[str, str]],
) -> str:
    # Targets settled under an earlier configuration still count: they did get the notice.
    counted = planned | {(d.channel, d.target) for d in deliveries if d.settled}
    delivered = [d for d in deliveries if d.status == "delivered"]
    rejected = [d for d in deliveries if d.status == "rejected"]
    result = f"delivered to {len(delivered)} of {len(counted)}"
    if waiting or untried:
        # One line per reason: a mail server that is down is said once, not per mailbox.
        reasons: dict[str, list[str]] = {}
        for d in waiting:
            reasons.setdefault(d.detail, []).append(_name(d))
        if untried:
            reasons["not tried yet (this attempt ran out of time)"] = [
                f"{channel} {target}" for channel, target in untried
            ]
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
        attempts=row["attempts"],
    )
