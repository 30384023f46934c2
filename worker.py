"""The Yuqing worker: runs incident workflows and their activities on the task queue.

    TEMPORAL_ADDRESS=localhost:7233 DATABASE_URL=postgresql://... python worker.py

`create_worker(client, pool, settings)` builds the same worker for tests and tools, against
any server.
"""

from __future__ import annotations

import asyncio
import signal
from concurrent.futures import ThreadPoolExecutor

import asyncpg
import structlog
from temporalio.client import Client
from temporalio.worker import Worker

from activities import all_activities
from activities.post_deadlines import PostDeadlineActivities
from workflows.incident import IncidentWorkflow
from workflows.post import NetizenPostWorkflow
from yuqing import db, log
from yuqing.authorization import load_authorization
from yuqing.channels import load_channels
from yuqing.client import connect
from yuqing.policy import load_policy
from yuqing.roster import load_roster
from yuqing.settings import Settings
from yuqing.signing import KeysError, load_keyring

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
) -> Worker:
    check_configuration(settings)
    return Worker(
        client,
        task_queue=task_queue or settings.task_queue,
        workflows=[IncidentWorkflow, NetizenPostWorkflow],
        activities=all_activities(settings, pool),
        # Activities are all async; the executor is only for the SDK's own sync needs.
        activity_executor=ThreadPoolExecutor(max_workers=4),
    )


async def run_worker(settings: Settings, *, stop: asyncio.Event | None = None) -> None:
    """Run until `stop` is set (or forever), then finish the tasks in hand and return."""
    if not settings.database_url:
        raise SystemExit("DATABASE_URL is not set: the worker keeps its records in PostgreSQL")
    pool = await db.create_pool(settings.database_url)
    try:
        await db.migrate(pool)
        client = await connect(settings)
        worker = create_worker(client, pool, settings)
        logger.info(
            "worker started",
            temporal=settings.temporal_address,
            namespace=settings.temporal_namespace,
            task_queue=settings.task_queue,
        )
        async with worker:
            await (stop or asyncio.Event()).wait()
        logger.info("worker stopped")
    finally:
        await pool.close()


def cli() -> None:
    log.configure()
    stop = asyncio.Event()

    async def main() -> None:
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        await run_worker(Settings.from_env(), stop=stop)

    asyncio.run(main())


if __name__ == "__main__":
    cli()
