"""The HTTP API as its own process (`yuqing-api`, `python -m api.server`), and `serving` for
those that run it in-process (tests).

    TEMPORAL_ADDRESS=... DATABASE_URL=... YUQING_LISTEN_HOST=0.0.0.0 YUQING_API_PORT=8000 yuqing-api

Stateless: run as many replicas as the load needs behind one address. It answers
`/health/live`, `/health/ready` (503 while Temporal or PostgreSQL is unreachable, or once it is
shutting down) and `/metrics` on its own port. On SIGTERM it reports not ready at once, stops
accepting connections and gives requests in progress YUQING_DRAIN_SECONDS to finish.
"""

from __future__ import annotations

import asyncio
import logging
import os
from datetime import timedelta

import structlog

from yuqing import process
from yuqing.http_server import EmbeddedServer, bind, serving
from yuqing.settings import Settings

__all__ = ["EmbeddedServer", "bind", "cli", "run_api", "serving"]

log = structlog.get_logger("yuqing.api")

# Probes and scrapes come every few seconds; the access log keeps to the calls people make.
_QUIET_PATHS = ('"GET /health', '"GET /metrics')


class _QuietProbes(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not any(path in record.getMessage() for path in _QUIET_PATHS)


async def run_api(
    settings: Settings, stop: asyncio.Event, options: process.ProcessSettings
) -> None:
    """Serve the API until `stop` is set, then drain and return."""
    from api import create_app  # late: it pulls in FastAPI and every route
    from yuqing import db, metrics
    from yuqing.client import connect
    from yuqing.models import Grade
    from yuqing.state import Stage

    if not settings.database_url:
        raise SystemExit("DATABASE_URL is not set: the API reads statements and records there")
    url = settings.database_url
    # The worker applies the migrations; until then a statement page answers 503.
    pool = await process.wait_for("PostgreSQL", lambda: db.create_pool(url), options.start_timeout)
    try:
        client = await process.wait_for(
            f"Temporal at {settings.temporal_address}",
            # (core) HTTP/2 pings as the tools send them: a frozen Temporal fails calls in
            # ~12 s (503) instead of the SDK's default 45 s (issue 8).
            lambda: connect(settings, keep_alive_config=_keep_alive()),
            options.start_timeout,
        )
        try:
            app = create_app(client, pool, settings, patience=_patience())
        except ValueError as err:  # the roster or the tokens file
            raise SystemExit(f"the API cannot start: {err}") from err
        gauges = metrics.StateMetrics(
            client, pool, stages=[s.value for s in Stage], grades=[g.value for g in Grade]
        )
        metrics.REGISTRY.register(gauges)
        gauges.start()
        logging.getLogger("uvicorn.access").addFilter(_QuietProbes())
        host, port = options.listen_host, settings.api_port
        try:
            async with serving(app, host, port, stop=stop, grace=options.drain_seconds) as base:
                log.info(
                    "API ready",
                    url=base,
                    docs=f"{base}/docs",
                    ready=f"{base}/health/ready",
                    metrics=f"{base}/metrics",
                    tokens=str(settings.tokens_path),
                )
                await stop.wait()
                # Load balancers stop sending here; requests in progress still finish.
                app.state.readiness.stopping = True
        except OSError as err:
            raise SystemExit(
                f"the API cannot listen on {host}:{port} ({err.strerror}); choose another"
                " port with YUQING_API_PORT"
            ) from err
        finally:
            await gauges.stop()
            metrics.REGISTRY.unregister(gauges)
        log.info("API stopped")
    finally:
        await pool.close()


def _keep_alive() -> object:
    from temporalio.client import KeepAliveConfig

    from yuqing.tool import KEEP_ALIVE_INTERVAL_MS, KEEP_ALIVE_TIMEOUT_MS

    return KeepAliveConfig(
        interval_millis=KEEP_ALIVE_INTERVAL_MS, timeout_millis=KEEP_ALIVE_TIMEOUT_MS
    )


def _patience() -> timedelta:
    """How long a call waits for the incident's decision before answering 504
    (`YUQING_DECISION_PATIENCE`, seconds; default 30)."""
    value = os.environ.get("YUQING_DECISION_PATIENCE") or "30"
    try:
        seconds = float(value)
    except ValueError:
        seconds = 0
    if seconds <= 0:
        raise SystemExit(f"YUQING_DECISION_PATIENCE={value!r} is not a number of seconds")
    return timedelta(seconds=seconds)


def cli() -> None:
    async def main(stop: asyncio.Event) -> None:
        try:
            settings = Settings.from_env()
        except ValueError as err:
            raise SystemExit(str(err)) from err
        await run_api(settings, stop, process.ProcessSettings.from_env())

    process.run(main, name="api")


if __name__ == "__main__":
    cli()
