"""How Yuqing's command-line tools (`yuqing`, `python -m starter`) run their work and end.

One way to end, whatever went wrong: one sentence on standard error that names what is wrong
and what to do, and an exit code a script can rely on; never a traceback, never an abort after
the work is done.

| code | meaning |
|---|---|
| 0 | done |
| 1 | refused: the incident, the API or Temporal said no (the reason is given) |
| 2 | bad input: a file, field, option or path is wrong (it is named) |
| 3 | a service cannot be reached: Temporal, PostgreSQL or the API (named, with its address) |
| 4 | something nobody foresaw, i.e. a bug; `YUQING_DEBUG=1` prints its traceback |
| 130 | interrupted (Ctrl-C) |

Every message a tool prints is written once, here or where it is raised, so the i18n catalog
can take each over as one entry.

Ending cleanly. The Temporal SDK answers each call from a thread of its own (a Rust/Tokio
thread): it takes the GIL, calls `loop.call_soon_threadsafe`, whose wake-up write lets the main
thread run on, and only then lets go of the GIL. When the main thread has meanwhile reached
interpreter finalization, Python 3.11 ends that thread with `pthread_exit` as it asks for the
GIL back, and the unwinding releases a thread state that is no longer current: "Fatal Python
error: PyGILState_Release", exit 134, or a segmentation fault (temporalio/sdk-python#300,
PyO3/pyo3-async-runtimes#40). `run` therefore waits, after the work and before returning,
until every such hand-over has left Python; and the tools bound their waits with the SDK's
own timeouts (RPC deadlines, HTTP/2 keep-alive) rather than by cancelling its futures, since a
cancelled call still comes back to Python from its thread later.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from contextvars import Context
from functools import cache
from typing import Any, NoReturn, TypeVar, TypeVarTuple

T = TypeVar("T")
Ts = TypeVarTuple("Ts")

DONE = 0
REFUSED = 1
BAD_INPUT = 2
UNREACHABLE = 3
BUG = 4
INTERRUPTED = 130

# A wait longer than this says what it waits for.
PATIENCE_S = 1.0
# How long the SDK's answering threads may take to leave Python once the work is done; in
# practice microseconds, once the main thread lets go of the GIL.
_HAND_OVER_S = 2.0


class ToolFailure(Exception):
    """The command cannot do what was asked: `message` says why and what to do."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def language() -> str:
    """The language the tools speak: Chinese unless YUQING_LANG (or, without it, the locale:
    LC_ALL, LC_MESSAGES, LANG) names English (`en`, `en_US.UTF-8`)."""
    for name in ("YUQING_LANG", "LC_ALL", "LC_MESSAGES", "LANG"):
        value = os.environ.get(name)
        if value:
            return "en" if value.lower().startswith("en") else "zh"
    return "zh"


def said(key: str, /, **params: Any) -> str:
    """A message of the catalog (`yuqing.i18n.Said`): English where read as a string, shown
    in `language()` when a tool says it."""
    from yuqing.i18n import Said

    return Said(key, **params)


def shown(message: str) -> str:
    """`message` in the tools' language, if it is kept as a catalog message."""
    in_ = getattr(message, "in_", None)
    return str(in_(language())) if in_ is not None else message


def refused(message: str) -> ToolFailure:
    return ToolFailure(REFUSED, message)


def bad_input(message: str) -> ToolFailure:
    return ToolFailure(BAD_INPUT, message)


def unreachable(message: str) -> ToolFailure:
    return ToolFailure(UNREACHABLE, message)


# -- the messages every tool shares ----------------------------------------------------------


def temporal_unreachable(address: str, why: str) -> ToolFailure:
    return unreachable(said("cli.temporal_unreachable", address=address, why=why))


def postgres_unreachable(url: str, why: str) -> ToolFailure:
    return unreachable(said("cli.postgres_unreachable", url=redact(url), why=why))


def database_url_missing(what: str) -> ToolFailure:
    return bad_input(said("cli.database_url_missing", what=what))


def unknown_incident(incident_id: str, where: str) -> ToolFailure:
    return refused(said("cli.unknown_incident", incident_id=incident_id, where=where))


def ended_incident(incident_id: str) -> ToolFailure:
    return refused(said("cli.ended_incident", incident_id=incident_id))


def cannot_write(path: object, why: str) -> ToolFailure:
    return bad_input(said("cli.cannot_write", path=str(path), why=why))


def redact(url: str) -> str:
    """The URL without its password, fit to print."""
    from urllib.parse import urlsplit, urlunsplit

    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


# -- saying so ---------------------------------------------------------------------------------


def say(message: str) -> None:
    """A line for the person at the terminal (standard error, so output stays clean)."""
    sys.stderr.write(shown(message) + "\n")
    sys.stderr.flush()


def error_line(message: str) -> str:
    """`错误：…` / `error: …`, the message in the tools' language."""
    if language() == "en":
        return f"error: {shown(message)}"
    from yuqing import i18n

    return i18n.t("cli.error", "zh", message=shown(message))


def bug_line(error: BaseException) -> str:
    return error_line(
        said("cli.bug", kind=type(error).__name__, error=str(error) or "(no message)")
    )


def report(error: BaseException) -> int:
    """Say what `error` means for the person and return the exit code it stands for."""
    if isinstance(error, ToolFailure):
        say(error_line(error.message))
        return error.code
    if isinstance(error, KeyboardInterrupt):
        say(error_line(said("cli.interrupted")))
        return INTERRUPTED
    if os.environ.get("YUQING_DEBUG") == "1":
        import traceback

        traceback.print_exception(error)
    say(bug_line(error))
    return BUG


def end(main: Callable[[], int | None]) -> NoReturn:
    """Run a tool's `main` and exit with its code, every failure reported as one line."""
    try:
        code = main() or DONE
    except SystemExit:
        raise
    except BaseException as error:
        code = report(error)
    sys.stdout.flush()
    raise SystemExit(code)


def quiet_logs() -> None:
    """The service code a tool runs logs only its warnings, to standard error, never into the
    tool's output. Call again once a module that logs through structlog is imported (structlog
    would otherwise print to standard output); the tools import it only when they need it."""
    import logging

    if "structlog" in sys.modules:
        from yuqing.log import configure

        configure("WARNING")
    elif not logging.getLogger().handlers:
        logging.basicConfig(level=logging.WARNING, stream=sys.stderr)


# -- running async work ------------------------------------------------------------------------


@cache
def _hand_over_loop() -> type[Any]:
    """An event loop that knows when other threads are handing it results (see the module
    doc): `call_soon_threadsafe` from another thread is counted while it runs. Made on first
    use, so a tool that runs nothing asynchronous never imports asyncio."""
    import asyncio

    class HandOverLoop(asyncio.SelectorEventLoop):
        def __init__(self) -> None:
            super().__init__()
            self._own_thread = threading.get_ident()
            self._lock = threading.Lock()
            self.handing_over = 0

        def call_soon_threadsafe(
            self,
            callback: Callable[[*Ts], object],
            *args: *Ts,
            context: Context | None = None,
        ) -> asyncio.Handle:
            if threading.get_ident() == self._own_thread:
                return super().call_soon_threadsafe(callback, *args, context=context)
            with self._lock:
                self.handing_over += 1
            try:
                return super().call_soon_threadsafe(callback, *args, context=context)
            finally:
                with self._lock:
                    self.handing_over -= 1

        def wait_for_hand_overs(self, patience: float = _HAND_OVER_S) -> None:
            # Sleeping lets go of the GIL, which the handing thread needs to finish.
            give_up = time.monotonic() + patience
            while self.handing_over and time.monotonic() < give_up:
                time.sleep(0.0005)

    return HandOverLoop


def run(work: Coroutine[Any, Any, T]) -> T:
    """`asyncio.run(work)`, returning only once no SDK thread is still inside Python."""
    import asyncio

    with asyncio.Runner(loop_factory=_hand_over_loop()) as runner:
        loop = runner.get_loop()
        try:
            return runner.run(work)
        finally:
            loop.wait_for_hand_overs()  # type: ignore[attr-defined]


async def waiting(what: str, work: Awaitable[T], *, patience: float = PATIENCE_S) -> T:
    """Await `work`; if it takes longer than `patience`, say once that we wait for `what`.

    The work is never cancelled here: it ends by its own deadline (see the module doc).
    """
    import asyncio

    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait({task}, timeout=patience)
    if not done:
        say(f"waiting for {what} … (Ctrl-C stops)")
    return await task


# -- Temporal ----------------------------------------------------------------------------------

# Each call to Temporal gives up after this long (the SDK's own deadline, see the module doc).
CALL_DEADLINE_S = 10.0
# HTTP/2 pings: a server that stops answering (frozen, or its machine gone) is given up after
# interval + timeout. Temporal refuses pings more often than every 10 s (keepAliveMinTime).
KEEP_ALIVE_INTERVAL_MS = 10_000
KEEP_ALIVE_TIMEOUT_MS = 2_000


def connection_trouble(error: BaseException) -> str:
    """What the SDK's connection error means, in a few words."""
    text = str(error)
    for marker, meaning in (
        ("ConnectionRefused", "connection refused: nothing listens there"),
        ("KeepAliveTimedOut", "it stopped answering"),
        ("Timeout expired", "it did not answer in time"),
        ("dns error", "unknown host name"),
        ("failed to lookup address", "unknown host name"),
        ("InvalidCertificate", "its TLS certificate was refused"),
        ("HandshakeFailure", "the TLS handshake failed"),
    ):
        if marker in text:
            return meaning
    return text.removeprefix("Failed client connect: ")


async def connect_temporal(settings: Any) -> Any:
    """A client of Temporal at `settings.temporal_address`, made by `yuqing.client`; one that
    cannot be reached is a `ToolFailure` (exit 3), with word within `PATIENCE_S` if it is slow."""
    from temporalio.client import KeepAliveConfig

    from yuqing.client import connect

    address = settings.temporal_address
    keep_alive = KeepAliveConfig(
        interval_millis=KEEP_ALIVE_INTERVAL_MS, timeout_millis=KEEP_ALIVE_TIMEOUT_MS
    )
    try:
        return await waiting(
            f"Temporal at {address}", connect(settings, keep_alive_config=keep_alive)
        )
    except ValueError as error:  # the connection settings (e.g. TLS) named in the message
        raise bad_input(str(error)) from error
    except RuntimeError as error:  # "Failed client connect: …"
        raise temporal_unreachable(address, connection_trouble(error)) from error


async def connect_temporal_reader(settings: Any, converter: Any) -> Any:
    """A reader of histories (`yuqing.audit.history.Reader`) from Temporal at
    `settings.temporal_address`: its service client alone, with the TLS of `yuqing.client`,
    without importing temporalio.client (a third of `yuqing audit`'s start). Fails as
    `connect_temporal` does."""
    from temporalio.service import ConnectConfig, KeepAliveConfig, ServiceClient

    from yuqing.audit.history import Reader
    from yuqing.client import tls_options

    address = settings.temporal_address
    keep_alive = KeepAliveConfig(
        interval_millis=KEEP_ALIVE_INTERVAL_MS, timeout_millis=KEEP_ALIVE_TIMEOUT_MS
    )
    try:
        options = tls_options()
        config = ConnectConfig(target_host=address, keep_alive_config=keep_alive, **options)
        service = await waiting(f"Temporal at {address}", ServiceClient.connect(config))
    except ValueError as error:  # the connection settings (e.g. TLS) named in the message
        raise bad_input(str(error)) from error
    except RuntimeError as error:  # "Failed client connect: …"
        raise temporal_unreachable(address, connection_trouble(error)) from error
    return Reader(service.workflow_service, settings.temporal_namespace, converter)


def call_deadline() -> Any:
    from datetime import timedelta

    return timedelta(seconds=CALL_DEADLINE_S)


def temporal_failure(
    error: BaseException, address: str, incident_id: str, *, asks_worker: bool = False
) -> ToolFailure:
    """What a failed call to Temporal about `incident_id` means for the person; `asks_worker`
    when the call needs a worker to answer (a query, an update)."""
    from temporalio.service import RPCError, RPCStatusCode

    if not isinstance(error, RPCError):
        return temporal_unreachable(address, connection_trouble(error))
    status, message = error.status, error.message
    if status is RPCStatusCode.NOT_FOUND:
        if "already completed" in message:
            return ended_incident(incident_id)
        return unknown_incident(incident_id, said("cli.where.temporal", address=address))
    if status in (RPCStatusCode.UNAVAILABLE, RPCStatusCode.CANCELLED):
        return temporal_unreachable(address, connection_trouble(error))
    if status is RPCStatusCode.DEADLINE_EXCEEDED:
        if asks_worker:
            return unreachable(
                f"no answer for incident {incident_id} within {CALL_DEADLINE_S:g} s: is the "
                f"worker running (./dev serve runs one) and Temporal at {address} not overloaded?"
            )
        return unreachable(
            f"Temporal at {address} did not answer within {CALL_DEADLINE_S:g} s: it is "
            "overloaded or stopped; try again, or look at its log"
        )
    if status in (RPCStatusCode.UNAUTHENTICATED, RPCStatusCode.PERMISSION_DENIED):
        return refused(
            f"Temporal at {address} refused the call ({message}): check TEMPORAL_API_KEY and "
            "the TLS settings"
        )
    if status is RPCStatusCode.INVALID_ARGUMENT:
        return bad_input(f"Temporal at {address} refused the input: {message}")
    return refused(f"Temporal at {address} answered {status.name}: {message}")
