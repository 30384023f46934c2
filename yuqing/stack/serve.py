"""`serve`: the whole stack in the foreground, started in order and stopped in reverse."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import structlog
from temporalio.client import Client

from yuqing.settings import Settings
from yuqing.stack.common import StackError, prepare_dir, redact, tail
from yuqing.stack.keys import ensure_dev_keys
from yuqing.stack.postgres import EmbeddedPostgres, start_postgres
from yuqing.stack.temporal import TemporalDevServer, ensure_search_attributes, start_temporal

log = structlog.get_logger("yuqing.stack")


async def _start_postgres_in_thread(data_dir: Path) -> EmbeddedPostgres:
    starting = asyncio.ensure_future(asyncio.to_thread(start_postgres, data_dir))
    try:
        return await asyncio.shield(starting)
    except asyncio.CancelledError:
        # The thread carries on regardless; wait for it so the server it starts is not orphaned.
        with contextlib.suppress(Exception):
            postgres = await starting
            await asyncio.to_thread(postgres.stop)
        raise


async def serve(
    data_dir: Path,
    *,
    port: int = 7233,
    ui_port: int = 8233,
    headless: bool = False,
    api_port: int | None = None,
) -> None:
    """Run PostgreSQL, Temporal, the worker and the HTTP API until SIGINT/SIGTERM, then stop
    them in reverse (the API and the worker together, first).

    `DATABASE_URL` / `TEMPORAL_ADDRESS` in the environment replace the embedded servers.
    """
    import worker  # the top-level worker module; imported late as it pulls in every workflow

    data_dir = prepare_dir(data_dir)
    settings = Settings.from_env()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    signals = (signal.SIGINT, signal.SIGTERM)

    def on_signal(signum: int) -> None:
        if not stop.is_set():
            log.info(
                "stopping the stack (Ctrl-C again to hurry)",
                signal=signal.Signals(signum).name,
            )
            stop.set()
            return
        log.warning("stopping now, abandoning work in progress")
        # A third signal gets Python's default handling, i.e. ends the process outright.
        for sig in signals:
            loop.remove_signal_handler(sig)
        if main_task is not None:
            main_task.cancel()

    for sig in signals:
        loop.add_signal_handler(sig, on_signal, sig)

    try:
        async with contextlib.AsyncExitStack() as stack:
            database_url = settings.database_url
            if database_url is None:
                started = time.monotonic()
                postgres = await _start_postgres_in_thread(data_dir)
                stack.push_async_callback(_stop_postgres, postgres)
                database_url = postgres.url
                log.info(
                    "PostgreSQL ready",
                    database_url=database_url,
                    pgdata=str(postgres.pgdata),
                    seconds=round(time.monotonic() - started, 1),
                )
            else:
                log.info("using PostgreSQL from DATABASE_URL", database_url=redact(database_url))
            if stop.is_set():
                return

            temporal_address = os.environ.get("TEMPORAL_ADDRESS") or None
            if temporal_address is None:
                started = time.monotonic()
                temporal = await start_temporal(
                    data_dir,
                    port=port,
                    ui_port=ui_port,
                    namespace=settings.temporal_namespace,
                    headless=headless,
                )
                stack.push_async_callback(_stop_temporal, temporal)
                temporal_address = temporal.address
                stack.enter_context(_stop_when_gone(temporal, stop))
                log.info(
                    "Temporal ready",
                    ui=temporal.ui_url or "(headless)",
                    grpc=temporal.address,
                    namespace=temporal.namespace,
                    sqlite=str(data_dir / "temporal.sqlite"),
                    log=str(temporal.log_path),
                    seconds=round(time.monotonic() - started, 1),
                )
            else:
                log.info("using Temporal from TEMPORAL_ADDRESS", grpc=temporal_address)
                await _ensure_search_attributes_elsewhere(
                    temporal_address, settings.temporal_namespace
                )
            if stop.is_set():
                return

            settings = dataclasses.replace(
                settings, temporal_address=temporal_address, database_url=database_url
            )
            # Decisions are signed: the stack's own keys on first start (yuqing.stack.keys).
            settings = ensure_dev_keys(data_dir, settings)
            if api_port is not None:
                settings = dataclasses.replace(settings, api_port=api_port)
            if not os.environ.get("YUQING_STATEMENT_BASE_URL"):
                # Publications record their address: make it the page this API serves.
                settings = dataclasses.replace(
                    settings,
                    statement_base_url=f"http://localhost:{settings.api_port}/statements",
                )
            await _start_api(stack, settings, stop)
            if settings.smtp_intake_port is not None:
                from yuqing.client import connect
                from yuqing.email_intake import run_smtp_intake  # late: it pulls in workflows

                intake = await run_smtp_intake(
                    await connect(settings), settings, port=settings.smtp_intake_port
                )
                stack.push_async_callback(intake.stop)
            log.info("starting worker", task_queue=settings.task_queue, data_dir=str(data_dir))
            await worker.run_worker(settings, stop=stop)
            if not stop.is_set():
                log.warning("worker ended by itself; stopping the stack")
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        log.info("stack stopped")


async def _start_api(
    stack: contextlib.AsyncExitStack, settings: Settings, stop: asyncio.Event
) -> None:
    """Serve the HTTP API beside the worker; the stack's unwinding stops it before Temporal
    and PostgreSQL, and `stop` makes it stop taking requests at once."""
    from api import create_app  # imported late, like the worker: it pulls in FastAPI
    from api.server import serving
    from yuqing import db
    from yuqing.client import connect

    assert settings.database_url is not None
    pool = await db.create_pool(settings.database_url)
    # The worker applies the migrations as it starts; until then a statement page says
    # "unavailable" (503).
    stack.push_async_callback(pool.close)
    client = await connect(settings)
    try:
        app = create_app(client, pool, settings)
    except ValueError as err:  # the roster or the tokens file
        raise StackError(f"the API cannot start: {err}") from err

    @contextlib.asynccontextmanager
    async def served() -> AsyncIterator[str]:
        async with serving(app, "127.0.0.1", settings.api_port, stop=stop) as url:
            yield url
        log.info("API stopped")

    try:
        url = await stack.enter_async_context(served())
    except OSError as err:
        raise StackError(
            f"the API cannot listen on 127.0.0.1:{settings.api_port} ({err.strerror}); "
            "choose another port with --api-port or YUQING_API_PORT"
        ) from err
    log.info(
        "API ready",
        url=url,
        docs=f"{url}/docs",
        statements=f"{url}/statements/<incident_id>-v<version>",
        tokens=str(settings.tokens_path),
    )


async def _stop_postgres(postgres: EmbeddedPostgres) -> None:
    await asyncio.to_thread(postgres.stop)
    log.info("PostgreSQL stopped")


async def _stop_temporal(temporal: TemporalDevServer) -> None:
    await temporal.stop()
    log.info("Temporal stopped")


@contextlib.contextmanager
def _stop_when_gone(
    temporal: TemporalDevServer, stop: asyncio.Event
) -> Iterator[asyncio.Task[None]]:
    # A worker facing a dead server only retries forever; better to end with a pointer to the log.
    async def watch() -> None:
        code = await temporal.wait()
        if not stop.is_set():
            log.error(
                "Temporal dev server died; stopping the stack",
                exit_code=code,
                log=str(temporal.log_path),
                tail=tail(temporal.log_path, 15),
            )
            stop.set()

    task = asyncio.create_task(watch())
    try:
        yield task
    finally:
        task.cancel()


async def _ensure_search_attributes_elsewhere(address: str, namespace: str) -> None:
    # A server we did not start may predate our search attributes. Some (Temporal Cloud) refuse
    # operator calls; workflows then fail loudly enough on their own, so only warn.
    try:
        client = await Client.connect(address, namespace=namespace)
        await ensure_search_attributes(client, namespace)
    except StackError:
        raise
    except Exception as err:
        log.warning("could not check search attributes", address=address, error=str(err))
