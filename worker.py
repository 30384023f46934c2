"""The Yuqing worker: runs incident workflows and their activities on the task queue.

    TEMPORAL_ADDRESS=localhost:7233 DATABASE_URL=postgresql://... python worker.py
    (or `yuqing-worker`; with YUQING_OPS_PORT set it also serves /health/live, /health/ready
    and /metrics there)

Run as many as the load needs, on as many machines: they share the task queue. On SIGTERM a
worker stops polling, lets the tasks in hand finish (YUQING_DRAIN_SECONDS) and exits 0.
`create_worker(client, pool, settings)` builds the same worker for tests and tools, against
any server.
"""

from __future__ import annotations

import asyncio
import os
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import asyncpg
import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities import all_activities
from activities.post_deadlines import PostDeadlineActivities
from workflows.archive import HistoryArchiveWorkflow
from workflows.incident import IncidentWorkflow
from workflows.post import NetizenPostWorkflow
from yuqing import db, payload_passes, process
from yuqing.audit.sweeper import sweeping
from yuqing.authorization import load_authorization
from yuqing.channels import load_channels
from yuqing.client import connect
from yuqing.health import Readiness, database_check, temporal_check
from yuqing.metrics import TrailMetrics
from yuqing.policy import load_policy
from yuqing.probes import serving_probes
from yuqing.roster import load_roster
from yuqing.sandbox import lean_runner
from yuqing.settings import Settings
from yuqing.signing import KeysError, load_keyring
from yuqing.worker_cache import sticky_cache_size

logger = structlog.get_logger("yuqing.worker")


def check_configuration(settings: Settings) -> None:
    """Refuse to start on a malformed policy, roster or calendar: better now than mid-incident."""
    policy = load_policy(settings.policy_path)
    roster = load_roster(settings.roster_path)
    authorization = load_authorization(settings.authorization_path)
    if settings.keys_path is None:
        raise KeysError(
            "YUQING_KEYS is not set: name the public keys file decisions are checked against "
            "(README, Security)"
        )
    keys = load_keyring(settings.keys_path)
    calendar = PostDeadlineActivities(settings).calendar()
    channels = load_channels(settings.channels_path)
    logger.info(
        "configuration loaded",
        policy=policy.version,
        roster=roster.version,
        authorization=authorization.version,
        keys=f"{keys.version} ({len(keys.keys)} keys)",
        calendar=calendar.version,
        calendar_sources=list(calendar.sources),
        channels=channels.describe(),
    )


def create_worker(
    client: Client,
    pool: asyncpg.Pool,
    settings: Settings,
    *,
    task_queue: str | None = None,
    drain: timedelta = timedelta(seconds=30),
    max_cached_workflows: int | None = None,
) -> Worker:
    """The worker; `drain` is how long activities in progress get to finish at shutdown.

    Its sticky cache holds `max_cached_workflows` incidents, by default as many as half its
    memory holds (yuqing.worker_cache; YUQING_STICKY_CACHE sets it).
    """
    check_configuration(settings)
    if max_cached_workflows is None:
        cache = sticky_cache_size()
        max_cached_workflows = cache.size
        logger.info("sticky cache sized", incidents=cache.size, basis=cache.why)
    # One walk over each activation and completion, for the codec, instead of the SDK's three
    # (no external storage here: yuqing.payload_passes).
    payload_passes.install()
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[IncidentWorkflow, NetizenPostWorkflow, HistoryArchiveWorkflow],
        # The SDK's sandbox, minus its per-payload compile and import-hook work (yuqing.sandbox).
        workflow_runner=lean_runner(),
        activities=all_activities(settings, pool),
        # Activities are all async; the executor is only for the SDK's own sync needs.
        activity_executor=ThreadPoolExecutor(max_workers=4),
        # Breached deadlines and approval times, counted from the audit projection.
        interceptors=[TrailMetrics(pool)],
        graceful_shutdown_timeout=drain,
        max_cached_workflows=max_cached_workflows,
        # The SDK fails a workflow task that holds the thread 2 s. The tests run four pytest
        # processes and their servers on two cores, where replaying a closed incident for a
        # query can take that long without any fault in the code: they turn the timer off.
        debug_mode=os.environ.get("YUQING_NO_DEADLOCK_TIMER") == "1",
    )


async def run_worker(
    settings: Settings,
    *,
    stop: asyncio.Event | None = None,
    options: process.ProcessSettings | None = None,
) -> None:
    """Run until `stop` is set (or forever), then finish the tasks in hand and return."""
    if not settings.database_url:
        raise SystemExit("DATABASE_URL is not set: the worker keeps its records in PostgreSQL")
    options = options or process.ProcessSettings()
    url = settings.database_url
    pool = await process.wait_for("PostgreSQL", lambda: db.create_pool(url), options.start_timeout)
    try:
        # record: migrations run as the owner (YUQING_DB_OWNER_URL), never as the service.
        await db.prepare(pool, settings.owner_database_url)
        client = await process.wait_for(
            f"Temporal at {settings.temporal_address}",
            lambda: connect(settings),
            options.start_timeout,
        )
        worker = create_worker(
            client, pool, settings, drain=timedelta(seconds=options.drain_seconds)
        )
        readiness = Readiness(
            {"temporal": temporal_check(client), "postgresql": database_check(pool)}
        )
        running = asyncio.create_task(worker.run())

        def alive() -> str | None:
            if running.done() and not running.cancelled() and running.exception():
                return f"the worker failed: {running.exception()}"
            return None

        # record: the one sweeper that archives every closed run (yuqing.audit.sweeper).
        every = timedelta(seconds=settings.archive_sweep_seconds)
        async with (
            sweeping(client, pool, every=every),
            serving_probes(
                readiness, options.listen_host, options.ops_port, what="worker", alive=alive
            ),
        ):
            logger.info(
                "worker started",
                temporal=settings.temporal_address,
                namespace=settings.temporal_namespace,
                task_queue=settings.task_queue,
            )
            stopping = asyncio.create_task((stop or asyncio.Event()).wait())
            await asyncio.wait({running, stopping}, return_when=asyncio.FIRST_COMPLETED)
            stopping.cancel()
            readiness.stopping = True
            if running.done():
                running.result()  # a fatal error: raise it, so the process exits non-zero
                raise SystemExit("the worker stopped by itself")
            # Stop polling; activities in hand get `drain` to finish, workflow tasks end now
            # (another worker takes them up from the history).
            await worker.shutdown()
            await running
        logger.info("worker stopped")
    finally:
        await pool.close()


def cli() -> None:
    async def main(stop: asyncio.Event) -> None:
        await run_worker(Settings.from_env(), stop=stop, options=process.ProcessSettings.from_env())

    process.run(main, name="worker")


if __name__ == "__main__":
    cli()
