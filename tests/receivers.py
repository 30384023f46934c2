"""The far ends of the channels, as small real servers on 127.0.0.1, and a worker wired to them.

The bureau's mail server, a chat robot and a publishing gateway: each can fail the first
requests, be down for a while, or (the robot and the gateway) take a request in full and then
trickle its answer a byte at a time, as slow receivers do.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from types import TracebackType
from typing import Any

import asyncpg
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.client import Client
from temporalio.testing import ActivityEnvironment
from temporalio.worker import Worker

from activities import all_activities
from activities.notifications import NotificationActivities
from activities.publications import PublicationActivities
from worker import check_configuration
from workflows.delivery import DELIVERY_HEARTBEAT, DELIVERY_TIMEOUT
from workflows.incident import IncidentWorkflow
from workflows.post import NetizenPostWorkflow
from yuqing.channels import load_channels
from yuqing.settings import Settings


class MailCollector:
    """The bureau's mail server: defers the first `deferrals` messages (451), refuses the
    mailboxes in `unknown` (550), and keeps every other message it is given. `stop()` takes it
    off the network (connections refused) and `start()` brings it back on the same port."""

    def __init__(self, *, deferrals: int = 0, unknown: tuple[str, ...] = ()) -> None:
        self.deferrals = deferrals
        self.unknown = unknown
        self.deferred = 0
        self.messages: list[tuple[list[str], EmailMessage]] = []
        self._server: asyncio.Server | None = None
        self._port = 0

    async def __aenter__(self) -> MailCollector:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        loop = asyncio.get_running_loop()
        self._server = await loop.create_server(
            lambda: SMTP(self, hostname="mail.test", loop=loop), "127.0.0.1", self._port
        )
        self._port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None

    @property
    def port(self) -> int:
        assert self._port, "start the collector first"
        return self._port

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if address in self.unknown:
            return "550 5.1.1 no such mailbox here"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        if self.deferred < self.deferrals:
            self.deferred += 1
            return "451 4.3.0 busy, try again later"
        msg = message_from_bytes(envelope.original_content or b"", policy=policy.default)
        assert isinstance(msg, EmailMessage)
        self.messages.append((list(envelope.rcpt_tos), msg))
        return "250 OK"

    def to(self, address: str) -> list[EmailMessage]:
        return [msg for rcpt, msg in self.messages if address in rcpt]


# The status of a request whose answer was trickled: no answer ever came in full.
TRICKLED = 0


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: dict[str, Any]
    status: int


@dataclass
class WebhookReceiver:
    """A chat robot or a publishing gateway: answers 500 to the first `failures` requests on
    each path, then 200 with `answer`. While `down`, it answers 503 to everything; while
    `trickling`, it reads each request in full and then sends its answer one byte every
    `trickle_seconds`, which no per-read timeout ever catches."""

    failures: int = 0
    answer: dict[str, Any] = field(default_factory=lambda: {"errcode": 0, "errmsg": "ok"})
    down: bool = False
    trickling: bool = False
    trickle_seconds: float = 0.2
    requests: list[Request] = field(default_factory=list)
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> WebhookReceiver:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(
        self, kind: type[BaseException] | None, err: BaseException | None, tb: TracebackType | None
    ) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    def url(self, path: str) -> str:
        assert self._server is not None
        return f"http://127.0.0.1:{self._server.sockets[0].getsockname()[1]}{path}"

    def to(self, path: str) -> list[Request]:
        return [r for r in self.requests if r.path == path]

    def delivered(self, path: str) -> list[Request]:
        return [r for r in self.to(path) if r.status == 200]

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        _, target, _ = (await reader.readline()).decode().split(" ", 2)
        headers = {}
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.decode().partition(":")
            headers[name.strip().lower()] = value.strip()
        body = json.loads(await reader.readexactly(int(headers.get("content-length", "0"))))
        path = target.split("?")[0]
        if self.trickling:
            self.requests.append(Request(path, headers, body, TRICKLED))
            await self._trickle(writer)
            return
        failing = len(self.to(path)) < self.failures
        status = 503 if self.down else 500 if failing else 200
        answer = json.dumps({"error": "down"} if status != 200 else self.answer).encode()
        self.requests.append(Request(path, headers, body, status))
        reason = {200: "OK", 500: "Internal Server Error", 503: "Service Unavailable"}[status]
        writer.write(
            f"HTTP/1.1 {status} {reason}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(answer)}\r\n"
            "Connection: close\r\n\r\n".encode()
            + answer
        )
        await writer.drain()
        writer.close()

    async def _trickle(self, writer: asyncio.StreamWriter) -> None:
        answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
        try:
            for byte in answer:
                await asyncio.sleep(self.trickle_seconds)
                writer.write(bytes([byte]))
                await writer.drain()
                if writer.transport.is_closing():
                    return
        except ConnectionError:
            return  # the client gave up, as it should
        finally:
            writer.close()


def channel_worker(
    client: Client, pool: asyncpg.Pool, settings: Settings, task_queue: str
) -> Worker:
    """The real worker, its notices and statements going out through `settings.channels_path`."""
    check_configuration(settings)
    channels = load_channels(settings.channels_path)
    wired = {
        "send_notification": NotificationActivities(pool, channels).send_notification,
        "publish_statement": PublicationActivities(
            pool, settings.statement_base_url, channels
        ).publish_statement,
    }
    activities = [wired.get(a.__name__, a) for a in all_activities(settings, pool)]
    return Worker(
        client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow, NetizenPostWorkflow],
        activities=activities,
        activity_executor=ThreadPoolExecutor(max_workers=4),
    )


def delivery_env(attempt: int = 1) -> ActivityEnvironment:
    """An activity run as the delivery rounds schedule it (workflows/delivery.py)."""
    env = ActivityEnvironment()
    env.info = dataclasses.replace(
        env.info,
        attempt=attempt,
        start_to_close_timeout=DELIVERY_TIMEOUT,
        heartbeat_timeout=DELIVERY_HEARTBEAT,
    )
    return env


def write_channels(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


@dataclass
class TricklingMailServer:
    """A mail server that is slow rather than down: it trickles one reply a byte at a time,
    either its greeting (`at="greeting"`) or its answer to a message it has taken in full
    (`at="data"`), so that the client's per-read timeout never fires."""

    at: str = "data"
    trickle_seconds: float = 0.2
    messages: int = 0
    _server: asyncio.Server | None = None

    async def __aenter__(self) -> TricklingMailServer:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    @property
    def port(self) -> int:
        assert self._server is not None
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        slow = b"250 2.0.0 queued, but the answer takes its time to arrive\r\n"
        try:
            if self.at == "greeting":
                await self._trickle(writer, b"220 mail.test ESMTP slowly, very slowly\r\n")
                return
            writer.write(b"220 mail.test ESMTP\r\n")
            while line := await reader.readline():
                command = line[:4].upper()
                if command == b"DATA":
                    writer.write(b"354 go ahead\r\n")
                    await reader.readuntil(b"\r\n.\r\n")
                    self.messages += 1
                    await self._trickle(writer, slow)
                    return
                writer.write(b"221 bye\r\n" if command == b"QUIT" else b"250 OK\r\n")
                await writer.drain()
        except (ConnectionError, asyncio.IncompleteReadError):
            return  # the client gave up, as it should
        finally:
            writer.close()

    async def _trickle(self, writer: asyncio.StreamWriter, reply: bytes) -> None:
        for byte in reply:
            await asyncio.sleep(self.trickle_seconds)
            if writer.transport.is_closing():
                return
            writer.write(bytes([byte]))
            await writer.drain()
