"""The two adapter interfaces, one for notices and one for statements, and what they answer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from enum import StrEnum

from yuqing.effects import PublishStatement, SendNotification


class DeliveryStatus(StrEnum):
    delivered = "delivered"
    # Worth another try later: the receiver is down, busy or misconfigured.
    failed = "failed"
    # Refused for good by the final authority (a mail server's 5xx for a mailbox): trying the
    # same message again cannot succeed, so the notice goes on without this target.
    rejected = "rejected"
    # Sent in full, but no answer came within the deadline: the receiver may well have it. Not
    # settled (nothing may be lost), but the next copy is held back a while (see the ledger).
    unconfirmed = "unconfirmed"


@dataclass(frozen=True)
class Outcome:
    status: DeliveryStatus
    detail: str
    address: str | None = None

    @classmethod
    def delivered(cls, detail: str, address: str | None = None) -> Outcome:
        return cls(DeliveryStatus.delivered, detail, address)

    @classmethod
    def failed(cls, detail: str) -> Outcome:
        return cls(DeliveryStatus.failed, detail)

    @classmethod
    def rejected(cls, detail: str) -> Outcome:
        return cls(DeliveryStatus.rejected, detail)

    @classmethod
    def unconfirmed(cls, detail: str) -> Outcome:
        return cls(DeliveryStatus.unconfirmed, detail)

    @property
    def final(self) -> bool:
        return self.status in (DeliveryStatus.delivered, DeliveryStatus.rejected)


# Delivers the notice of a session to one target, within the channel's deadline.
Send = Callable[[str], Awaitable[Outcome]]


class NoticeChannel(ABC):
    """One way out for notices. A target is what gets one copy: a mailbox, a chat robot."""

    # The `channel` of the deliveries table and of `Notification.channel` ("email", "wecom").
    name: str

    @abstractmethod
    def targets(self, notice: SendNotification) -> list[str]:
        """The targets this notice goes to on this channel (none: not for this channel)."""

    def unreachable(self, notice: SendNotification) -> list[str]:
        """Recipients this channel serves but cannot reach (no e-mail address), by name."""
        return []

    # The most one copy may take, opening the connection included (seconds).
    deadline: float

    @abstractmethod
    def session(self, notice: SendNotification) -> AbstractAsyncContextManager[Send]:
        """The channel opened for one notice: one connection for all its targets. Each copy
        sent through it answers within `deadline` seconds, and leaving the session does too."""


class StatementChannel(ABC):
    """One way out for a statement on a publication channel (Weibo, WeChat, press)."""

    # The target of the deliveries table: where the statement is handed over.
    target: str
    # The most handing it over may take (seconds).
    deadline: float

    @abstractmethod
    async def publish(self, statement: PublishStatement, website_address: str) -> Outcome:
        """Hand the statement over within `deadline` seconds; a delivered outcome carries its
        address if known."""
