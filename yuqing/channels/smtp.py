"""E-mail notices, submitted to the bureau's mail server over SMTP, one message per mailbox.

One message per mailbox makes each recipient a target of its own: a mailbox that took the
notice is never sent it again when another one's server asked us to come back later. Every
copy of a notice carries the same Message-ID, derived from its idempotency key, so a mail
system that sees a copy twice (a worker that died mid-send, a server that took the message but
did not answer in time) can tell.

Each message has a total deadline, opening the session included for the first: the client's
own timeout is per read, and a server that trickles its replies would otherwise hold the
session until the activity itself timed out, with nothing recorded.
"""

from __future__ import annotations

import asyncio
import hashlib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email import policy
from email.message import EmailMessage
from email.utils import formataddr, formatdate

import aiosmtplib
import structlog

from yuqing.channels.base import NoticeChannel, Outcome, Send
from yuqing.channels.config import SmtpSecurity, SmtpServer
from yuqing.effects import SendNotification

log = structlog.get_logger(__name__)


def message_id(idempotency_key: str, domain: str) -> str:
    digest = hashlib.sha256(idempotency_key.encode("utf-8")).hexdigest()[:32]
    return f"<yuqing.{digest}@{domain}>"


class EmailChannel(NoticeChannel):
    name = "email"

    def __init__(self, server: SmtpServer) -> None:
        self._server = server
        self.deadline = server.timeout_seconds

    def targets(self, notice: SendNotification) -> list[str]:
        seen: dict[str, str] = {}
        for recipient in notice.recipients:
            if recipient.email:
                seen.setdefault(recipient.email.lower(), recipient.email)
        return list(seen.values())

    def unreachable(self, notice: SendNotification) -> list[str]:
        return [r.name for r in notice.recipients if not r.email]

    def message(self, notice: SendNotification, address: str) -> EmailMessage:
        server = self._server
        mailbox = [r for r in notice.recipients if (r.email or "").lower() == address.lower()]
        names = [r.name for r in mailbox]
        # console (i18n): the copy in the language its reader reads, if the roster says one.
        subject, body = notice.copy_for(mailbox[0].language if mailbox else None)
        msg = EmailMessage()
        msg["Subject"] = subject
        msg["From"] = formataddr((server.from_name, server.from_address))
        msg["To"] = formataddr((names[0] if names else "", address))
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id(notice.idempotency_key, server.domain)
        msg["X-Yuqing-Incident"] = notice.incident_id
        msg["X-Yuqing-Idempotency-Key"] = notice.idempotency_key
        msg.set_content(body)
        return msg

    @asynccontextmanager
    async def session(self, notice: SendNotification) -> AsyncIterator[Send]:
        connection = _Connection(self._server)

        async def send(address: str) -> Outcome:
            return await connection.send(self.message(notice, address), address)

        try:
            yield send
        finally:
            await connection.close()


# Saying goodbye is a courtesy: every message's outcome is known by then.
QUIT_DEADLINE_SECONDS = 2.0


class _Connection:
    """One SMTP session, opened at the first message."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server
        self._smtp: aiosmtplib.SMTP | None = None
        # Once the server cannot be reached, every other message of the session fails alike,
        # rather than each waiting out its own deadline.
        self._broken: str | None = None

    async def send(self, msg: EmailMessage, address: str) -> Outcome:
        if self._broken is not None:
            return Outcome.failed(self._broken)
        server = self._server
        if not address.isascii():
            # The envelope is ASCII here; such a mailbox needs SMTPUTF8, which we do not ask.
            return Outcome.rejected(f"{address}: not an ASCII address")
        data = msg.as_bytes(policy=policy.SMTP)
        in_data = False
        try:
            async with asyncio.timeout(server.timeout_seconds):
                if self._smtp is None:
                    self._smtp = await self._connect()
                smtp = self._smtp
                await smtp.mail(server.from_address)
                await smtp.rcpt(address)
                in_data = True
                await smtp.data(data)
        except aiosmtplib.SMTPRecipientRefused as err:
            await self._reset()
            return _refused(err.code, err.message, "recipient refused")
        except aiosmtplib.SMTPDataError as err:
            await self._reset()
            return _refused(err.code, err.message, "message refused")
        except (TimeoutError, OSError, aiosmtplib.SMTPException) as err:
            what = (
                f"no answer within {server.timeout_seconds:g} s"
                if isinstance(err, TimeoutError) and not isinstance(err, aiosmtplib.SMTPException)
                else _describe(err)
            )
            self._drop()
            where = f"{server.host}:{server.port}"
            if in_data:
                # The message may have gone in full; its copies share the Message-ID.
                self._broken = f"{where}: the session ended with an unanswered message"
                return Outcome.unconfirmed(f"{where}: sent, but {what}")
            # Connection, TLS, login or a refused sender: the server or our settings, not
            # this mailbox. Worth another try once someone has looked.
            self._broken = f"{where}: {what}"
            return Outcome.failed(self._broken)
        return Outcome.delivered(f"accepted by {server.host}")

    async def _connect(self) -> aiosmtplib.SMTP:
        server = self._server
        secure = server.security is not SmtpSecurity.none
        smtp = aiosmtplib.SMTP(
            hostname=server.host,
            port=server.port,
            timeout=server.timeout_seconds,
            use_tls=server.security is SmtpSecurity.tls,
            # Exactly as configured: no opportunistic upgrade of a relay set to "none".
            start_tls=server.security is SmtpSecurity.starttls,
            tls_context=ssl.create_default_context() if secure else None,
        )
        try:
            await smtp.connect()
            if server.username is not None:
                await smtp.login(server.username, server.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    async def _reset(self) -> None:
        """End the refused transaction so that the next message starts afresh."""
        if self._smtp is None:
            return
        try:
            async with asyncio.timeout(self._server.timeout_seconds):
                await self._smtp.rset()
        except (TimeoutError, OSError, aiosmtplib.SMTPException):
            self._drop()  # the next message opens a new session

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    async def close(self) -> None:
        if self._smtp is None:
            return
        try:
            async with asyncio.timeout(QUIT_DEADLINE_SECONDS):
                await self._smtp.quit()
        except (TimeoutError, OSError, aiosmtplib.SMTPException):
            pass  # every message's outcome is known already; a rude goodbye changes nothing
        finally:
            self._drop()


def _refused(code: int, text: str, what: str) -> Outcome:
    detail = f"{what}: {code} {text}".strip()
    # RFC 5321 §4.2.1: 5yz is permanent, the same message must not be tried again.
    return Outcome.rejected(detail) if 500 <= code < 600 else Outcome.failed(detail)


def _describe(err: BaseException) -> str:
    if isinstance(err, aiosmtplib.SMTPResponseException):
        return f"{err.code} {err.message}"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
