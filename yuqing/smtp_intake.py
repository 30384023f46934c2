"""The SMTP intake as its own process (`yuqing-smtp-intake`, `python -m yuqing.smtp_intake`):
every e-mail it accepts becomes an incident report (`yuqing.email_intake`).

    TEMPORAL_ADDRESS=... YUQING_SMTP_INTAKE_HOST=0.0.0.0 YUQING_SMTP_INTAKE_PORT=2525 \\
        YUQING_OPS_PORT=9000 yuqing-smtp-intake

It needs Temporal only (the worker fixes the evidence in PostgreSQL). Readiness is 503 while
Temporal is unreachable: the mail server in front then holds the mail, as it does on a 451.
On SIGTERM it stops accepting connections and gives the messages being reported
YUQING_DRAIN_SECONDS to finish; a sender cut off after that retries (SMTP does).
"""

from __future__ import annotations

import asyncio
import contextlib

import structlog
from aiosmtpd.smtp import SMTP, Envelope, Session
from temporalio.client import Client

from yuqing import metrics, process
from yuqing.email_intake import SmtpIntake
from yuqing.health import Readiness, temporal_check
from yuqing.probes import serving_probes
from yuqing.settings import Settings

log = structlog.get_logger("yuqing.smtp_intake")

DEFAULT_PORT = 2525


class CountedIntake(SmtpIntake):
    """The intake, counting its answers and the messages in progress (for a graceful stop)."""

    def __init__(self, client: Client, settings: Settings, *, port: int) -> None:
        super().__init__(client, settings, port=port)
        self.in_progress = 0
        self.idle = asyncio.Event()
        self.idle.set()

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        self.in_progress += 1
        self.idle.clear()
        try:
            reply = await super().handle_DATA(server, session, envelope)
        finally:
            self.in_progress -= 1
            if not self.in_progress:
                self.idle.set()
        outcome = {"250": "reported", "554": "refused", "451": "deferred"}.get(reply[:3], "other")
        metrics.EMAIL_INTAKE.labels(outcome).inc()
        return reply


async def run_intake(
    settings: Settings, stop: asyncio.Event, options: process.ProcessSettings
) -> None:
    from yuqing.client import connect

    client = await process.wait_for(
        f"Temporal at {settings.temporal_address}", lambda: connect(settings), options.start_timeout
    )
    port = settings.smtp_intake_port if settings.smtp_intake_port is not None else DEFAULT_PORT
    intake = CountedIntake(client, settings, port=port)
    readiness = Readiness({"temporal": temporal_check(client)})
    try:
        await intake.start()
    except ValueError as err:  # the intake's unit has no unit head in the roster
        raise SystemExit(f"the SMTP intake cannot start: {err}") from err
    except OSError as err:
        raise SystemExit(
            f"the SMTP intake cannot listen on {settings.smtp_intake_host}:{port}"
            f" ({err.strerror}); set YUQING_SMTP_INTAKE_PORT"
        ) from err
    try:
        async with serving_probes(
            readiness, options.listen_host, options.ops_port, what="SMTP intake"
        ):
            await stop.wait()
            readiness.stopping = True
            await intake.stop()  # no new connections
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(intake.idle.wait(), options.drain_seconds)
            if intake.in_progress:
                log.warning("messages cut off at shutdown", count=intake.in_progress)
    finally:
        await intake.stop()


def cli() -> None:
    async def main(stop: asyncio.Event) -> None:
        try:
            settings = Settings.from_env()
        except ValueError as err:
            raise SystemExit(str(err)) from err
        await run_intake(settings, stop, process.ProcessSettings.from_env())

    process.run(main, name="smtp-intake")


if __name__ == "__main__":
    cli()
