"""Channels in and out of the building: e-mail and chat robots for notices, gateways for
statements, each behind one interface (`NoticeChannel`, `StatementChannel`) and chosen by the
channels file. With no file, notices and statements are recorded in PostgreSQL only.
"""

from __future__ import annotations

from yuqing.channels.base import (
    DeliveryStatus,
    NoticeChannel,
    Outcome,
    StatementChannel,
)
from yuqing.channels.config import NO_CHANNELS, Channels, ChannelsError, load_channels
from yuqing.channels.smtp import EmailChannel
from yuqing.channels.webhook import GatewayChannel, RobotChannel
from yuqing.models import PublicationChannel

__all__ = [
    "NO_CHANNELS",
    "Channels",
    "ChannelsError",
    "DeliveryStatus",
    "NoticeChannel",
    "Outcome",
    "StatementChannel",
    "load_channels",
    "notice_channels",
    "statement_channel",
]


def notice_channels(channels: Channels) -> list[NoticeChannel]:
    """Every way out for notices that the file configures, e-mail first."""
    found: list[NoticeChannel] = []
    if channels.smtp is not None:
        found.append(EmailChannel(channels.smtp))
    found.extend(RobotChannel(hook) for hook in channels.webhooks)
    return found


def statement_channel(channels: Channels, channel: PublicationChannel) -> StatementChannel | None:
    """The gateway that publishes on `channel`; None when the record is the publication."""
    gateway = channels.publications.get(channel)
    return GatewayChannel(gateway) if gateway is not None else None
