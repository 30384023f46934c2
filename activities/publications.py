"""Statements published in the bureau's name, one channel per call (SPEC §2.5).

The activity checks the approval chain once more itself: whatever calls it, nothing is
published without the chain for its grade complete. Each publication is keyed by workflow,
draft version and channel, so a retry returns the first publication instead of a second one.

The website's publication is the row itself: the HTTP API serves it at its address. Another
channel with a gateway in the channels file is handed to the gateway first (the attempt
recorded in `deliveries`, like a notice's, within the gateway's deadline), and its row is
written once the gateway has taken it; a channel without a gateway is recorded only, for the
Office to post by hand. A gateway that took the statement but did not answer in time is asked
again only after a pause (`hold_back`), like a notice's receiver.
"""

from __future__ import annotations

import hashlib
import json

import asyncpg
import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.configuration import ConfigurationSnapshots
from yuqing.chain import chain_complete, missing_steps
from yuqing.channels import NO_CHANNELS, Channels, DeliveryStatus, statement_channel
from yuqing.channels.ledger import Ledger, hold_back
from yuqing.channels.pulse import Pulse
from yuqing.db import fetch_one
from yuqing.effects import PublishStatement
from yuqing.models import PublicationChannel
from yuqing.policy import Policy
from yuqing.state import Publication

log = structlog.get_logger(__name__)


# A publication with the most attempts any delivery of it took (its gateway's, if it has one),
# in one round trip.
_ATTEMPTS = "(SELECT max(attempts) FROM deliveries WHERE idempotency_key = $1) AS delivery_attempts"
_PUBLISHED = f"SELECT *, {_ATTEMPTS} FROM publications WHERE idempotency_key = $1"
# Written once: a row there already is left as it is (nothing returned; it is read instead).
_PUBLISH = (
    "INSERT INTO publications (idempotency_key, incident_id, channel, draft_version,"
    " address, content, content_sha256, approvals)"
    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8)"
    f" ON CONFLICT (idempotency_key) DO NOTHING RETURNING *, {_ATTEMPTS}"
)


class PublicationActivities:
    def __init__(
        self,
        pool: asyncpg.Pool,
        base_url: str,
        channels: Channels = NO_CHANNELS,
        snapshots: ConfigurationSnapshots | None = None,
    ) -> None:
        self._pool = pool
        self._base_url = base_url.rstrip("/")
        self._channels = channels
        self._snapshots = snapshots or ConfigurationSnapshots(pool)

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
    async def publish_statement(self, request: PublishStatement) -> Publication:
        pulse = Pulse()
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
        if self._hands_over(request):
            # Read first: a statement a gateway took already is not handed to it again.
            async with self._pool.acquire() as conn:
                row = await conn.fetchrow(_PUBLISHED, request.idempotency_key)
            if row is None:
                row = await self._publish(request, pulse)
        else:
            # perf (issue 9): the row is the publication, and writing it is idempotent (a row
            # there already is kept and read): written first, one round trip in the usual case.
            row = await self._publish(request, pulse, retried_quietly=True)
        return Publication(
            channel=row["channel"],
            draft_version=row["draft_version"],
            address=row["address"],
            content_sha256=row["content_sha256"],
            published_at=row["published_at"],
            idempotency_key=row["idempotency_key"],
            attempts=row["delivery_attempts"] or 1,
        )

    def _hands_over(self, request: PublishStatement) -> bool:
        """Whether publishing on the request's channel hands the statement to a gateway."""
        return request.channel is not PublicationChannel.website and (
            statement_channel(self._channels, request.channel) is not None
        )

    async def _publish(
        self, request: PublishStatement, pulse: Pulse, *, retried_quietly: bool = False
    ) -> asyncpg.Record:
        """The publication's row, written now or (another attempt's) found; `retried_quietly`:
        a row found is not logged as published now (it was, by the attempt that wrote it)."""
        version = request.draft_version
        website = f"{self._base_url}/{request.incident_id}-v{version}"
        address, how = await self._hand_over(request, website, pulse)
        approvals = [
            a.model_dump(mode="json")
            for a in request.approvals
            if a.draft_version == version and not a.void
        ]
        async with self._pool.acquire() as conn:
            row = await conn.fetchrow(
                _PUBLISH,
                request.idempotency_key,
                request.incident_id,
                request.channel.value,
                version,
                address,
                request.text,
                hashlib.sha256(request.text.encode("utf-8")).hexdigest(),
                json.dumps(approvals, ensure_ascii=False),
            )
            if row is None:  # published meanwhile by another attempt: that one stands
                row = await fetch_one(conn, _PUBLISHED, request.idempotency_key)
                if retried_quietly:
                    return row
        log.info(
            "statement published",
            incident_id=request.incident_id,
            channel=row["channel"],
            draft_version=version,
            address=row["address"],
            how=how,
        )
        return row

    async def _hand_over(
        self, request: PublishStatement, website: str, pulse: Pulse
    ) -> tuple[str, str]:
        """The statement's address on its channel, and how it got there."""
        if request.channel is PublicationChannel.website:
            return website, "served by the website from the publications table"
        # Distinct from the website's own address, and from every other channel's.
        fallback = f"{website}#{request.channel.value}"
        gateway = statement_channel(self._channels, request.channel)
        if gateway is None:
            return fallback, "recorded only: no gateway is configured for the channel"
        ledger = Ledger(
            self._pool,
            key=request.idempotency_key,
            incident_id=request.incident_id,
            purpose="statement",
        )
        outcome = await ledger.attempt(
            request.channel.value,
            gateway.target,
            lambda: gateway.publish(request, website),
            deadline=gateway.deadline,
        )
        pulse.beat()
        if outcome.status is not DeliveryStatus.delivered:
            log.warning(
                "statement not published yet",
                incident_id=request.incident_id,
                channel=request.channel.value,
                gateway=gateway.target,
                detail=outcome.detail,
            )
            unanswered = outcome.status is DeliveryStatus.unconfirmed
            # Retryable on purpose: the workflow's delivery rounds try again until it is taken.
            raise ApplicationError(
                f"the {request.channel.value} gateway {gateway.target} did not take statement"
                f" v{request.draft_version} of {request.incident_id}: {outcome.detail}",
                type="ChannelUnavailable",
                next_retry_delay=hold_back(activity.info().attempt) if unanswered else None,
            )
        return outcome.address or fallback, f"handed to {gateway.target} ({outcome.detail})"
