"""`serve`: the whole stack in the foreground, started in order and stopped in reverse.

PostgreSQL and the Temporal dev server are started here; the service's own processes (the
workers, the API, the SMTP intake) are started as the separate processes a deployment runs,
from their real entry points, and supervised: one that ends by itself stops the stack.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import signal
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import structlog
from temporalio.client import Client

from yuqing.process import ProcessSettings
from yuqing.settings import Settings
from yuqing.stack.children import Child, python_command
from yuqing.stack.common import (
    DataDirLock,
    StackError,
    check_port_free,
    free_port,
    prepare_dir,
    redact,
    tail,
)
from yuqing.stack.keys import ensure_dev_keys
from yuqing.stack.postgres import EmbeddedPostgres, start_postgres
from yuqing.stack.record import (
    codec_endpoint,
    notary_running,
    prepare_record,
    service_variables,
    ui_origins,
)
from yuqing.stack.temporal import (
    DEFAULT_RETENTION,
    TemporalDevServer,
    ensure_search_attributes,
    start_temporal,
)

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


@dataclasses.dataclass(frozen=True)
class Ports:
    """Every TCP port the stack opens (0: a free one, chosen at start and reported)."""

    temporal: int = 7233
    ui: int = 8233
    temporal_http: int = 7243
    temporal_metrics: int = 7244
    api: int | None = None  # None: $YUQING_API_PORT or 8000
    # The workers' probe and metrics ports are ops, ops+1, ...; the SMTP intake's follows them.
    ops: int = 8001


async def serve(
    data_dir: Path,
    *,
    port: int = 7233,
    ui_port: int = 8233,
    headless: bool = False,
    api_port: int | None = None,
    ports: Ports | None = None,
    workers: int = 1,
    retention: timedelta = DEFAULT_RETENTION,
) -> None:
    """Run PostgreSQL, Temporal, the workers and the HTTP API (and the SMTP intake when its port
    is set) until SIGINT/SIGTERM, then stop them in reverse (the API, the intake and the workers
    together, first).

    `DATABASE_URL` / `TEMPORAL_ADDRESS` in the environment replace the embedded servers.
    """
    ports = ports or Ports(port, ui_port, api=api_port)
    data_dir = prepare_dir(data_dir)
    lock = DataDirLock(data_dir)
    lock.acquire()  # before anything is started: a second stack here touches nothing
    try:
        await _serve(data_dir, ports, headless=headless, workers=workers, retention=retention)
    finally:
        lock.release()


async def _serve(
    data_dir: Path, ports: Ports, *, headless: bool, workers: int, retention: timedelta
) -> None:
    settings = Settings.from_env()
    options = ProcessSettings.from_env()
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
            # record: keys, database roles, migrations as the owner, the notary, and the UI's
            # codec endpoint (so the API's and the UI's ports are fixed here, before either).
            ports, settings = _record_ports(ports, settings, headless)
            record = await prepare_record(
                data_dir,
                dataclasses.replace(settings, database_url=database_url),
                admin_url=None if settings.database_url else database_url,
                ui_origins=() if headless else ui_origins(ports.ui),
            )
            settings, database_url = record.settings, record.settings.database_url
            await stack.enter_async_context(notary_running(record))

            opened: dict[str, str] = {}
            temporal_address = os.environ.get("TEMPORAL_ADDRESS") or None
            if temporal_address is None:
                started = time.monotonic()
                temporal = await start_temporal(
                    data_dir,
                    port=ports.temporal,
                    ui_port=ports.ui,
                    http_port=ports.temporal_http,
                    metrics_port=ports.temporal_metrics,
                    namespace=settings.temporal_namespace,
                    headless=headless,
                    retention=retention,
                    ui_codec_endpoint=codec_endpoint(settings.api_port),
                )
                stack.push_async_callback(_stop_temporal, temporal)
                temporal_address = temporal.address
                stack.enter_context(_stop_when_gone(temporal, stop))
                log.info(
                    "Temporal ready",
                    ui=temporal.ui_url or "(headless)",
                    grpc=temporal.address,
                    http=temporal.http_url,
                    metrics=temporal.metrics_url,
                    namespace=temporal.namespace,
                    retention_days=retention / timedelta(days=1),
                    sqlite=str(data_dir / "temporal.sqlite"),
                    log=str(temporal.log_path),
                    seconds=round(time.monotonic() - started, 1),
                )
                opened["Temporal gRPC"] = temporal.address
                if temporal.ui_url:
                    opened["Temporal UI"] = temporal.ui_url
                opened["Temporal HTTP API"] = str(temporal.http_url)
                opened["Temporal server metrics"] = str(temporal.metrics_url)
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
            if ports.api is not None:
                settings = dataclasses.replace(settings, api_port=ports.api)
            children = _children(settings, ports, workers)
            for child in children:
                for what, number in child.ports.items():
                    opened[f"{child.name} {what}"] = f"127.0.0.1:{number}"
            stack.push_async_callback(_stop_children, children, options.drain_seconds + 5)
            for child in children:
                await child.start()
                stack.enter_context(_stop_when_ended(child, stop))
            if not await _until_ready(children, stop):
                return
            log.info(
                "stack ready",
                api=f"http://127.0.0.1:{children[0].ports['HTTP']}",
                docs=f"http://127.0.0.1:{children[0].ports['HTTP']}/docs",
                ports=opened,
                data_dir=str(data_dir),
            )
            await stop.wait()
    finally:
        for sig in signals:
            loop.remove_signal_handler(sig)
        log.info("stack stopped")


def _record_ports(ports: Ports, settings: Settings, headless: bool) -> tuple[Ports, Settings]:
    """record: the API's and the UI's ports chosen now (0: a free one), as the UI is told the
    codec endpoint's address when it starts and the codec the UI's origin."""
    api = ports.api if ports.api is not None else settings.api_port
    api = api or free_port()
    ui = ports.ui if headless else ports.ui or free_port()
    return dataclasses.replace(ports, api=api, ui=ui), dataclasses.replace(settings, api_port=api)


def _children(settings: Settings, ports: Ports, workers: int) -> list[Child]:
    """The service's processes, on the ports asked for (0: free ones), every port checked free
    first so that a busy one is named here rather than by a child's failure."""
    host = "127.0.0.1"

    def pick(number: int, what: str) -> int:
        number = number or free_port(host)
        check_port_free(host, number, what)
        return number

    api_port = pick(settings.api_port, "API")
    base = {
        **os.environ,
        "TEMPORAL_ADDRESS": settings.temporal_address,
        "TEMPORAL_NAMESPACE": settings.temporal_namespace,
        "YUQING_TASK_QUEUE": settings.task_queue,
        "DATABASE_URL": str(settings.database_url),
        "YUQING_LISTEN_HOST": host,
        # The keys decisions are checked against, and the API's own signing key.
        **_key_variables(settings),
        # record: the payload keys, and who may call the codec endpoint.
        **service_variables(settings),
        # Publications record their address: make it the page this API serves.
        "YUQING_STATEMENT_BASE_URL": os.environ.get("YUQING_STATEMENT_BASE_URL")
        or f"http://localhost:{api_port}/statements",
    }

    def child(name: str, command: list[str], env: dict[str, str], ready: int) -> Child:
        # The SDK's exporter, read by the process's own /metrics: loopback, pinned here too.
        sdk = free_port(host)
        return Child(
            name,
            command,
            {**base, **env, "YUQING_SDK_METRICS_PORT": str(sdk)},
            ready_url=f"http://{host}:{ready}/health/ready",
            ports={
                **{what: int(env[var]) for what, var in _PORT_VARIABLES.items() if var in env},
                "SDK metrics (loopback)": sdk,
            },
        )

    children = [
        child(
            "API", python_command("-m", "api.server"), {"YUQING_API_PORT": str(api_port)}, api_port
        )
    ]
    ops = ports.ops
    for index in range(1, workers + 1):
        probes = pick(ops, f"worker {index} probes")
        ops = ops and ops + 1
        children.append(
            child(
                f"worker {index}" if workers > 1 else "worker",
                python_command("worker.py"),
                {"YUQING_OPS_PORT": str(probes)},
                probes,
            )
        )
    if settings.smtp_intake_port is not None:
        probes = pick(ops, "SMTP intake probes")
        smtp = pick(settings.smtp_intake_port, "SMTP intake")
        children.append(
            child(
                "SMTP intake",
                python_command("-m", "yuqing.smtp_intake"),
                {"YUQING_SMTP_INTAKE_PORT": str(smtp), "YUQING_OPS_PORT": str(probes)},
                probes,
            )
        )
    return children


def _key_variables(settings: Settings) -> dict[str, str]:
    found = {
        "YUQING_KEYS": settings.keys_path,
        "YUQING_SIGNING_KEY": settings.signing_key_path,
        "YUQING_SIGNING_KEY_ID": settings.signing_key_id,
    }
    return {name: str(value) for name, value in found.items() if value is not None}


_PORT_VARIABLES = {
    "HTTP": "YUQING_API_PORT",
    "SMTP": "YUQING_SMTP_INTAKE_PORT",
    "probes and metrics": "YUQING_OPS_PORT",
}


async def _until_ready(children: list[Child], stop: asyncio.Event) -> bool:
    """Wait until every child is ready (False: told to stop first)."""

    async def all_ready() -> None:
        try:
            async with asyncio.TaskGroup() as group:
                for child in children:
                    group.create_task(child.until_ready())
        except* StackError as failed:  # the first child that failed says why
            raise failed.exceptions[0] from None

    async def told_to_stop() -> None:
        await stop.wait()

    ready = asyncio.create_task(all_ready())
    stopping = asyncio.create_task(told_to_stop())
    try:
        await asyncio.wait([ready, stopping], return_when=asyncio.FIRST_COMPLETED)
    finally:
        stopping.cancel()
    if ready.done():
        ready.result()  # a child that failed to start: StackError saying which
        return True
    ready.cancel()
    with contextlib.suppress(asyncio.CancelledError, StackError):
        await ready
    return False


@contextlib.contextmanager
def _stop_when_ended(child: Child, stop: asyncio.Event) -> Iterator[asyncio.Task[None]]:
    # A process of the service that ends by itself leaves the stack half there: stop it all,
    # saying which one and how.
    async def watch() -> None:
        code = await child.wait()
        if not stop.is_set():
            log.error(f"the {child.name} exited; stopping the stack", exit_code=code)
            stop.set()

    task = asyncio.create_task(watch())
    try:
        yield task
    finally:
        task.cancel()


async def _stop_children(children: list[Child], grace: float) -> None:
    await asyncio.gather(*(child.stop(grace) for child in children))
    log.info("API, workers and intake stopped")


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
        from yuqing.client import tls_options  # record: the same TLS as every other client

        client = await Client.connect(address, namespace=namespace, **tls_options())
        await ensure_search_attributes(client, namespace)
    except StackError:
        raise
    except Exception as err:
        log.warning("could not check search attributes", address=address, error=str(err))
