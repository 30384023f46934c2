"""E-mail intake (SPEC §2.1): an e-mail becomes an incident report, its content fixed as evidence.

    report = parse_email(data, roster=..., default_reporter=..., unit=...)  # refuses bad mail
    await report_email(client, settings, data)        # parse, then report (signal-with-start)
    intake = await run_smtp_intake(client, settings)  # an SMTP port that does both per message

The incident is keyed like every other intake (yuqing.intake): by the first link in the body
when there is one, so the e-mail about a Weibo post joins the incident the monitoring system
opened for it; otherwise by the Message-ID. The e-mail as received and each attachment are
evidence items, with the Date header as their capture time.

A From header proves nothing by itself. The mail is reported in its roster sender's name only
when a DKIM signature of the bureau's domain verifies (`Senders`, with dkimpy) or when it came
through a trusted relay; otherwise the intake account reports it, and the trail's source says
the sender is unverified.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import re
import tomllib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import errors, policy
from email.message import EmailMessage
from email.parser import BytesParser
from html.parser import HTMLParser
from pathlib import Path
from types import TracebackType
from typing import Any, cast

import asyncpg
import dkim
import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from pydantic import ValidationError
from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from activities.evidence import stage_evidence
from starter import InvalidInput, report_incident
from yuqing import db
from yuqing.decider import describe
from yuqing.intake import incident_id_for, intake_key, normalise_url
from yuqing.limits import EVIDENCE_BYTES, INLINE_EVIDENCE_BYTES, TEXT_CHARS
from yuqing.models import (
    EvidenceKind,
    IncidentReport,
    IntakeChannel,
    Sensitivity,
    report_time_problem,
)
from yuqing.roles import Role
from yuqing.roster import Roster, load_roster
from yuqing.settings import Settings

log = structlog.get_logger(__name__)

# The e-mail is kept as evidence twice: as received, and attachment by attachment. With a
# database, evidence is stored there first (activities.evidence.stage_evidence) and an e-mail
# may be as large as one evidence item; without one it travels inside the workflow input and
# must be small. Larger mail is refused with a reason, rather than failing at Temporal.
MAX_REPORT_BYTES = EVIDENCE_BYTES
MAX_INLINE_REPORT_BYTES = INLINE_EVIDENCE_BYTES // 2
MAX_SUMMARY_CHARS = TEXT_CHARS

# Defects after which the parsed message is not the message that was sent.
_FATAL_DEFECTS = (
    errors.MissingHeaderBodySeparatorDefect,
    errors.NoBoundaryInMultipartDefect,
    errors.StartBoundaryNotFoundDefect,
    errors.MultipartInvariantViolationDefect,
)
_URL = re.compile(r"https?://[^\s<>\"'，。；！？、）】」]+", re.IGNORECASE)
_URL_TAIL = ".,;:!?)]}'\""


class EmailRefused(InvalidInput):
    """The e-mail was refused before anything was started; the message says what is wrong."""


DnsTxt = Callable[..., bytes | None]


@dataclass(frozen=True)
class Senders:
    """How an e-mail's sender is proven: a DKIM signature of `domain` that verifies (its key
    from DNS, or from `records` instead), or delivery by one of `relays` (addresses)."""

    domain: str | None = None
    relays: frozenset[str] = frozenset()
    records: dict[str, str] | None = None
    dns: DnsTxt | None = field(default=None, compare=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> Senders:
        records = None
        if settings.dkim_keys_path is not None:
            records = _dkim_records(settings.dkim_keys_path)
        return cls(
            domain=settings.email_domain,
            relays=frozenset(settings.email_trusted_relays),
            records=records,
        )

    def _lookup(self) -> DnsTxt:
        if self.dns is not None:
            return self.dns
        if self.records is not None:
            records = {name.lower().rstrip("."): text for name, text in self.records.items()}

            def from_file(name: bytes, timeout: int = 5) -> bytes | None:
                text = records.get(name.decode("ascii", "replace").lower().rstrip("."))
                return text.encode("ascii") if text is not None else None

            return from_file
        return cast(DnsTxt, dkim.get_txt)

    def proof(self, data: bytes, sender: str, peer: str | None = None) -> str | None:
        """How the sender is proven ("DKIM d=…", "trusted relay …"), or None if it is not."""
        if peer is not None and peer in self.relays:
            return f"trusted relay {peer}"
        if self.domain is None or not sender.endswith("@" + self.domain):
            return None
        try:
            message = dkim.DKIM(data, minkey=1024)
            signatures = sum(1 for name, _ in message.headers if name.lower() == b"dkim-signature")
            for index in range(signatures):
                if not message.verify(index, dnsfunc=self._lookup()):
                    continue
                domain = (message.domain or b"").decode("ascii", "replace").lower()
                fields = message.signature_fields or {}
                # Aligned with the From domain, covering From, and the whole body (no l=).
                if domain == self.domain and b"from" in message.include_headers:
                    if b"l" not in fields:
                        return f"DKIM d={domain} s={fields.get(b's', b'').decode()}"
        except dkim.DKIMException as err:
            log.info("DKIM signature not usable", sender=sender, error=str(err))
        return None


def _dkim_records(path: Path) -> dict[str, str]:
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise ValueError(f"DKIM keys file {path} (YUQING_DKIM_KEYS) cannot be read: {err}") from err
    records = data.get("records")
    if not isinstance(records, dict) or not all(isinstance(v, str) for v in records.values()):
        raise ValueError(
            f"DKIM keys file {path} needs a [records] table of "
            '"<selector>._domainkey.<domain>" = "<TXT record>"'
        )
    return {str(name): str(text) for name, text in records.items()}


def parse_email(
    data: bytes,
    *,
    roster: Roster,
    default_reporter: str,
    unit: str,
    senders: Senders | None = None,
    peer: str | None = None,
    staged: bool = False,
    now: datetime | None = None,
) -> IncidentReport:
    """The incident report an e-mail (RFC 822 bytes) makes, or EmailRefused saying why not.

    Its reporter is the roster person who sent it only when `senders` proves the sender
    (DKIM, or `peer` a trusted relay); otherwise `default_reporter`. The report's `source`
    says which, for the trail.
    """
    if not data.strip():
        raise EmailRefused("the e-mail is empty")
    # policy.default parses each header into an object (addresses, dates) and notes defects.
    msg = BytesParser(policy=policy.default).parsebytes(data)
    if not list(msg.keys()):
        raise EmailRefused("not an RFC 822 message: it has no header fields")
    for part in msg.walk():
        fatal = [d for d in part.defects if isinstance(d, _FATAL_DEFECTS)]
        if fatal:
            raise EmailRefused(f"the message is malformed: {_defect(fatal[0])}")

    title = str(msg.get("Subject", "")).strip()
    if not title:
        raise EmailRefused("the e-mail has no Subject: its subject is the incident's title")
    sender = _sender(msg)
    captured_at = _date(msg)
    message_id = str(msg.get("Message-ID", "")).strip() or None
    text = _body_text(msg)
    url = _first_url(text)
    try:
        key = intake_key(IntakeChannel.email, external_id=message_id, url=url)
    except ValueError as err:
        raise EmailRefused(
            "the e-mail has neither a link to the story nor a Message-ID: one of them keys"
            " the incident"
        ) from err

    raw = {
        "kind": EvidenceKind.other,
        "description": f"the e-mail as received (message/rfc822) from {sender}"
        + (f", Message-ID {message_id}" if message_id else ""),
        "content_base64": base64.b64encode(data).decode("ascii"),
        "captured_at": captured_at,
    }
    person = _reporter(roster, sender)
    proven = (senders or Senders()).proof(data, sender, peer)
    if proven is not None:
        source = f"e-mail from {sender} (sender verified: {proven})"
    else:
        source = f"e-mail from {sender} (sender unverified: no DKIM signature of the bureau's"
        source += " domain verifies, and it came through no trusted relay)"
    fields: dict[str, Any] = {
        "incident_id": incident_id_for(key),
        "title": title,
        "channel": IntakeChannel.email,
        "reporter_id": (person if proven is not None else None) or default_reporter,
        "source": source,
        "unit": unit,
        "sensitivity": Sensitivity.important,
        "summary": _clip(text),
        "source_url": url,
        "evidence": [raw, *_attachments(msg, captured_at)],
        "intake_key": key,
        # A mail system may deliver one message twice; the incident adds it once.
        "submission_id": "email:"
        + (message_id or "sha256:" + hashlib.sha256(data).hexdigest()[:32]),
    }
    limit = MAX_REPORT_BYTES if staged else MAX_INLINE_REPORT_BYTES
    if len(data) > limit:
        raise EmailRefused(
            f"the e-mail is too large to fix as evidence: {len(data)} bytes, at most {limit}"
            + ("" if staged else " without a database to store it in first")
        )
    try:
        # `staged`: the evidence is stored in PostgreSQL before the report goes anywhere.
        context = {"staging": True} if staged else None
        report = IncidentReport.model_validate(fields, context=context)
    except ValidationError as err:
        raise EmailRefused(f"the e-mail makes no valid report: {describe(err)}") from err
    problem = report_time_problem(report, now or datetime.now(UTC))
    if problem is not None:
        raise EmailRefused(f"the e-mail's Date makes no sense: {problem}")
    return report


def check_intake_unit(roster: Roster, unit: str) -> None:
    """Refuse a default unit that no incident could start with (it needs a unit head)."""
    if not roster.recipients([Role.unit_head], unit):
        raise ValueError(
            f"the e-mail intake's unit {unit!r} (YUQING_EMAIL_UNIT) has no unit head in roster"
            f" {roster.version}"
        )


async def report_email(
    client: Client,
    settings: Settings,
    data: bytes,
    *,
    peer: str | None = None,
    pool: asyncpg.Pool | None = None,
) -> IncidentReport:
    """Report the incident an e-mail describes: a new one, or evidence for the open one.
    `peer`: the address it was delivered from (a trusted relay proves its sender); `pool`:
    where its evidence is stored first (without one, only a small e-mail can be taken)."""
    roster = load_roster(settings.roster_path)
    check_intake_unit(roster, settings.email_intake_unit)
    # DKIM asks DNS for the signer's key: off the event loop.
    report = await asyncio.to_thread(
        parse_email,
        data,
        roster=roster,
        default_reporter=settings.email_intake_reporter,
        unit=settings.email_intake_unit,
        senders=Senders.from_settings(settings),
        peer=peer,
        staged=pool is not None,
    )
    if pool is not None:
        report = report.model_copy(
            update={"evidence": await stage_evidence(pool, report.evidence)}
        )
    try:
        answer = await report_incident(client, report, settings.task_queue)
    except WorkflowAlreadyStartedError as err:
        raise EmailRefused(
            f"incident {report.incident_id}, which this e-mail is about, is already over"
        ) from err
    except RPCError as err:
        if err.status is RPCStatusCode.ALREADY_EXISTS:
            raise EmailRefused(
                f"incident {report.incident_id}, which this e-mail is about, is already over"
            ) from err
        raise
    if answer.refused:
        raise EmailRefused(f"incident {report.incident_id} refused the e-mail: {answer.detail}")
    log.info(
        "e-mail reported",
        incident_id=report.incident_id,
        reporter=report.reporter_id,
        source_url=report.source_url,
        evidence=len(report.evidence),
    )
    return report


# -- the SMTP intake -------------------------------------------------------------------------


class SmtpIntake:
    """An SMTP server on a local port: each message it accepts is reported as an incident.

    A message that makes no report is refused for good (554, with the reason), so the sender
    gets a bounce that says why; one that could not be reported now (Temporal unreachable) is
    deferred (451), so the sending mail server tries again later.
    """

    def __init__(
        self, client: Client, settings: Settings, *, port: int, host: str | None = None
    ) -> None:
        self._client = client
        self._settings = settings
        self._host = host or settings.smtp_intake_host
        self._port = port
        self._server: asyncio.Server | None = None
        # Where evidence is stored before the incident starts (DATABASE_URL).
        self._pool: asyncpg.Pool | None = None

    @property
    def port(self) -> int:
        """The port listened on (the one chosen, when asked for port 0)."""
        if self._server is None:
            return self._port
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def start(self) -> None:
        check_intake_unit(load_roster(self._settings.roster_path), self._settings.email_intake_unit)
        if self._settings.database_url:
            self._pool = await db.create_pool(self._settings.database_url)
        limit = MAX_REPORT_BYTES if self._pool is not None else MAX_INLINE_REPORT_BYTES
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(
                self,
                hostname="yuqing-intake",
                ident="Yuqing e-mail intake",
                # Base64 makes attachments a third larger on the wire than once decoded.
                data_size_limit=limit * 4 // 3 + 64 * 1024,
                enable_SMTPUTF8=True,
                loop=loop,
            ),
            host=self._host,
            port=self._port,
        )
        log.info("SMTP intake listening", host=self._host, port=self.port)

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
            log.info("SMTP intake stopped")
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def __aenter__(self) -> SmtpIntake:
        await self.start()
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        await self.stop()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        data = envelope.original_content or b""
        peer = session.peer[0] if isinstance(session.peer, tuple) else None
        try:
            report = await report_email(
                self._client, self._settings, data, peer=peer, pool=self._pool
            )
        except EmailRefused as err:
            log.warning("e-mail refused", sender=envelope.mail_from, reason=str(err))
            return f"554 5.6.0 {_reply_text(str(err))}"
        except Exception as err:
            log.exception("e-mail not reported; the sender will try again", error=str(err))
            return "451 4.3.0 the incident could not be reported just now; try again later"
        return f"250 2.0.0 reported as incident {report.incident_id}"


async def run_smtp_intake(
    client: Client, settings: Settings, *, port: int, host: str | None = None
) -> SmtpIntake:
    """Start the SMTP intake beside the worker; stop it with `await intake.stop()`."""
    intake = SmtpIntake(client, settings, port=port, host=host)
    await intake.start()
    return intake


# -- reading the message ---------------------------------------------------------------------


def _defect(defect: errors.MessageDefect) -> str:
    name = re.sub(r"(?<!^)(?=[A-Z])", " ", type(defect).__name__.removesuffix("Defect")).lower()
    return f"{name}{f' ({defect})' if str(defect) else ''}"


def _sender(msg: EmailMessage) -> str:
    header = msg.get("From")
    addresses = getattr(header, "addresses", ())
    if header is None or not addresses:
        raise EmailRefused("the e-mail has no From address: the reporter must be known")
    address = str(addresses[0].addr_spec).strip().lower()
    if "@" not in address or address.endswith("@"):
        raise EmailRefused(f"the From header {str(header)!r} is not an e-mail address")
    return address


def _date(msg: EmailMessage) -> datetime | None:
    header = msg.get("Date")
    if header is None:
        return None  # the capture time is then the time the evidence is stored
    when = getattr(header, "datetime", None)
    if not isinstance(when, datetime):
        raise EmailRefused(f"the Date header {str(header)!r} is not a date")
    # RFC 5322's "-0000" (time zone unknown) parses naive; it is UTC by definition.
    return when if when.tzinfo is not None else when.replace(tzinfo=UTC)


def _reporter(roster: Roster, address: str) -> str | None:
    return next(
        (p.id for p in roster.people if p.email and p.email.strip().lower() == address), None
    )


def _body_text(msg: EmailMessage) -> str:
    body = msg.get_body(preferencelist=("plain", "html"))
    if body is None:
        return ""
    try:
        content = body.get_content()
    except (LookupError, UnicodeError, ValueError) as err:
        raise EmailRefused(f"the text of the e-mail cannot be decoded: {err}") from err
    if not isinstance(content, str):
        return ""
    content = content.replace("\r\n", "\n")
    if body.get_content_subtype() == "html":
        return _html_text(content)
    return content.strip()


class _TextAndLinks(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.text: list[str] = []
        self.links: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "a":
            self.links.extend(v for k, v in attrs if k == "href" and v)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _html_text(html: str) -> str:
    parser = _TextAndLinks()
    parser.feed(html)
    text = re.sub(r"[ \t]+", " ", "".join(parser.text)).strip()
    # A link's address is part of what the e-mail says, even when only its words show.
    links = [link for link in parser.links if _URL.match(link)]
    return text + ("\n\n" + "\n".join(links) if links else "")


def _first_url(text: str) -> str | None:
    for match in _URL.finditer(text):
        url = match.group(0).rstrip(_URL_TAIL)
        try:
            normalise_url(url)
        except ValueError:
            continue
        return url
    return None


def _clip(text: str) -> str:
    if len(text) <= MAX_SUMMARY_CHARS:
        return text
    return text[: MAX_SUMMARY_CHARS - 1].rstrip() + "…"


def _attachments(msg: EmailMessage, captured_at: datetime | None) -> list[dict[str, Any]]:
    items = []
    for part in _leaves(msg):
        filename = part.get_filename()
        content_type = part.get_content_type()
        if part.get_content_maintype() == "text" and not filename and not part.is_attachment():
            continue  # the body (or its other version): kept in the e-mail as received
        if content_type == "message/rfc822":
            inner = part.get_payload(0)
            content = inner.as_bytes() if isinstance(inner, EmailMessage) else b""
        else:
            payload = part.get_payload(decode=True)
            content = payload if isinstance(payload, bytes) else b""
        items.append(
            {
                "kind": _kind(content_type),
                "description": f"attachment {filename or '(unnamed)'} ({content_type},"
                f" {len(content)} bytes)",
                "content_base64": base64.b64encode(content).decode("ascii"),
                "captured_at": captured_at,
            }
        )
    return items


def _leaves(part: EmailMessage) -> Iterator[EmailMessage]:
    """The parts that hold content; a forwarded e-mail is one part, not opened up."""
    if part.get_content_type() == "message/rfc822" or not part.is_multipart():
        yield part
        return
    for child in part.iter_parts():
        yield from _leaves(cast(EmailMessage, child))


def _kind(content_type: str) -> EvidenceKind:
    if content_type.startswith("image/"):
        return EvidenceKind.screenshot
    if content_type.startswith("audio/"):
        return EvidenceKind.audio_clip
    if content_type == "text/html":
        return EvidenceKind.web_page
    return EvidenceKind.other


def _reply_text(reason: str) -> str:
    # One line of ASCII: every SMTP client can show it in the bounce.
    line = " ".join(reason.split())
    return line.encode("ascii", "backslashreplace").decode("ascii")[:400]
