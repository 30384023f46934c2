"""E-mail notices, submitted to the bureau's mail server over SMTP, one message per mailbox.

One message per mailbox makes each recipient a target of its own: a mailbox that took the
notice is never sent it again when another one's server asked us to come back later. Every
copy of a notice carries the same Message-ID, derived from its idempotency key, so a mail
system that sees a copy twice (a worker that died mid-send) can tell.
"""

from __future__ import annotations

import asyncio
import hashlib
import smtplib
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from email.message import EmailMessage
from email.utils import formataddr, formatdate

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
        names = [r.name for r in notice.recipients if (r.email or "").lower() == address.lower()]
        msg = EmailMessage()
        msg["Subject"] = notice.subject
        msg["From"] = formataddr((server.from_name, server.from_address))
        msg["To"] = formataddr((names[0] if names else "", address))
        msg["Date"] = formatdate(usegmt=True)
        msg["Message-ID"] = message_id(notice.idempotency_key, server.domain)
        msg["X-Yuqing-Incident"] = notice.incident_id
        msg["X-Yuqing-Idempotency-Key"] = notice.idempotency_key
        msg.set_content(notice.body)
        return msg

    @asynccontextmanager
    async def session(self, notice: SendNotification) -> AsyncIterator[Send]:
        connection = _Connection(self._server)

        async def send(address: str) -> Outcome:
            return await connection.send(self.message(notice, address), address)

        try:
            yield send
        finally:
            await asyncio.to_thread(connection.close)


class _Connection:
    """One SMTP session, opened at the first message; smtplib blocks, so it runs in a thread."""

    def __init__(self, server: SmtpServer) -> None:
        self._server = server
        self._smtp: smtplib.SMTP | None = None
        # Once the server cannot be reached, every other message of the session fails alike,
        # rather than each waiting out its own connection timeout.
        self._broken: str | None = None

    async def send(self, msg: EmailMessage, address: str) -> Outcome:
        if self._broken is not None:
            return Outcome.failed(self._broken)
        try:
            if self._smtp is None:
                self._smtp = await asyncio.to_thread(self._connect)
            smtp = self._smtp
            await asyncio.to_thread(smtp.send_message, msg, self._server.from_address, [address])
        except smtplib.SMTPRecipientsRefused as err:
            code, text = err.recipients.get(address, (0, b""))
            return _refused(code, text, "recipient refused")
        except smtplib.SMTPDataError as err:
            return _refused(err.smtp_code, err.smtp_error, "message refused")
        except (OSError, smtplib.SMTPException) as err:
            # Connection, TLS, login or a refused sender: the server or our settings, not
            # this mailbox. Worth another try once someone has looked.
            self._broken = f"{self._server.host}:{self._server.port}: {_describe(err)}"
            self._drop()
            return Outcome.failed(self._broken)
        return Outcome.delivered(f"accepted by {self._server.host}")

    def _connect(self) -> smtplib.SMTP:
        server = self._server
        smtp: smtplib.SMTP
        if server.security is SmtpSecurity.tls:
            smtp = smtplib.SMTP_SSL(
                server.host,
                server.port,
                timeout=server.timeout_seconds,
                context=ssl.create_default_context(),
            )
        else:
            smtp = smtplib.SMTP(server.host, server.port, timeout=server.timeout_seconds)
        try:
            smtp.ehlo_or_helo_if_needed()
            if server.security is SmtpSecurity.starttls:
                smtp.starttls(context=ssl.create_default_context())
                smtp.ehlo()
            if server.username is not None:
                smtp.login(server.username, server.password or "")
        except BaseException:
            smtp.close()
            raise
        return smtp

    def _drop(self) -> None:
        if self._smtp is not None:
            self._smtp.close()
            self._smtp = None

    def close(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.quit()
        except (OSError, smtplib.SMTPException):
            pass  # every message's outcome is known already; a rude goodbye changes nothing
        finally:
            self._drop()


def _refused(code: int, text: bytes | str, what: str) -> Outcome:
    reply = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    detail = f"{what}: {code} {reply}".strip()
    # RFC 5321 §4.2.1: 5yz is permanent, the same message must not be tried again.
    return Outcome.rejected(detail) if 500 <= code < 600 else Outcome.failed(detail)


def _describe(err: BaseException) -> str:
    if isinstance(err, smtplib.SMTPResponseException):
        reply = err.smtp_error
        text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
        return f"{err.smtp_code} {text}"
    return f"{type(err).__name__}: {err}" if str(err) else type(err).__name__
