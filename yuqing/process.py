"""What every Yuqing process (worker, API, SMTP intake) does the same way: read its settings
from the environment, export metrics, wait for what it needs, and stop gracefully on SIGTERM.

Their settings, beside the service's own (`yuqing.settings`):

- `YUQING_LISTEN_HOST` (`127.0.0.1`): where the API and the probe ports listen (`0.0.0.0` in a
  container);
- `YUQING_OPS_PORT` (unset: none): the worker's and the SMTP intake's port for `/health/live`,
  `/health/ready` and `/metrics`;
- `YUQING_SDK_METRICS_PORT` (`0`: any free): loopback port of the Temporal SDK's exporter, which
  `/metrics` reads;
- `YUQING_DRAIN_SECONDS` (`30`): on SIGTERM, how long tasks and requests in progress get;
- `YUQING_START_TIMEOUT` (`120`): how long to wait for Temporal and PostgreSQL at start.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import sys
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

import structlog

from yuqing import log as logging_setup
from yuqing import metrics
from yuqing.malloc import tune_malloc

logger = structlog.get_logger("yuqing.process")

T = TypeVar("T")


@dataclass(frozen=True)
class ProcessSettings:
    listen_host: str = "127.0.0.1"
    ops_port: int | None = None
    sdk_metrics_port: int = 0
    drain_seconds: float = 30.0
    start_timeout: float = 120.0

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> ProcessSettings:
        env = os.environ if environ is None else environ
        default = cls()
        ops = env.get("YUQING_OPS_PORT")
        return cls(
            listen_host=env.get("YUQING_LISTEN_HOST") or default.listen_host,
            ops_port=_port("YUQING_OPS_PORT", ops) if ops else None,
            sdk_metrics_port=_port(
                "YUQING_SDK_METRICS_PORT", env.get("YUQING_SDK_METRICS_PORT") or "0"
            ),
            drain_seconds=_seconds(env, "YUQING_DRAIN_SECONDS", default.drain_seconds),
            start_timeout=_seconds(env, "YUQING_START_TIMEOUT", default.start_timeout),
        )


def _port(name: str, value: str) -> int:
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise ValueError(f"{name}={value!r} is not a port number (0-65535)")
    return int(value)


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name)
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = -1
    if seconds < 0:
        raise ValueError(f"{name}={value!r} is not a number of seconds")
    return seconds


def install_sdk_metrics(settings: ProcessSettings) -> None:
    """The SDK's exporter on loopback, added to this process's `/metrics`. Called before any
    Temporal client is made (clients take the default runtime when they are made)."""
    port = settings.sdk_metrics_port
    for attempt in range(5):
        chosen = port or _free_loopback_port()
        try:
            metrics.install_sdk_runtime(f"127.0.0.1:{chosen}")
            return
        except Exception as err:  # a port taken between the look and the bind: pick again
            if port or attempt == 4:
                raise SystemExit(
                    f"the Temporal SDK's metrics cannot listen on {chosen}: {err}"
                ) from err


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


async def wait_for(what: str, attempt: Callable[[], Awaitable[T]], patience: float) -> T:
    """Retry `attempt` until it succeeds or `patience` seconds pass (then exit saying why): a
    process started before Temporal or PostgreSQL is up waits for it instead of crashing."""
    deadline = time.monotonic() + patience
    delay = 0.5
    while True:
        try:
            return await attempt()
        except Exception as err:
            if time.monotonic() + delay > deadline:
                raise SystemExit(f"{what} is unreachable after {patience:g} s: {err}") from err
            logger.warning("waiting for " + what, error=str(err), retry_in_s=delay)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)


def run(main: Callable[[asyncio.Event], Awaitable[None]], *, name: str) -> None:
    """Run `main(stop)` with logging configured; SIGTERM or SIGINT sets `stop` (the process
    drains and exits 0); a second one ends it at once (exit 130)."""
    tune_malloc()
    logging_setup.configure()
    try:
        settings = ProcessSettings.from_env()
    except ValueError as err:
        raise SystemExit(str(err)) from err
    install_sdk_metrics(settings)

    async def supervised() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()

        def on_signal(signum: int) -> None:
            if stop.is_set():
                logger.warning("stopping now, abandoning work in progress", process=name)
                os._exit(130)
            logger.info(
                "stopping: draining work in progress",
                process=name,
                signal=signal.Signals(signum).name,
                drain_s=settings.drain_seconds,
            )
            stop.set()

        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, on_signal, signum)
        await main(stop)

    try:
        asyncio.run(supervised())
    except KeyboardInterrupt:
        sys.exit(130)
    logger.info("stopped", process=name)
