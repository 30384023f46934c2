"""`./dev serve` as a person runs it: the service's processes separate, every port it opens
reported, the namespace's retention set, and one stack per data directory (issue 8: a second
`./dev serve` on a running stack's data directory refuses and touches nothing of the first)."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest
from temporalio.client import Client

from yuqing.settings import PROJECT_ROOT

FREE_PORTS = [
    "--port", "0", "--ui-port", "0", "--http-port", "0", "--metrics-port", "0",
    "--api-port", "0", "--ops-port", "0", "--headless",
]  # fmt: skip


def stack_command(data_dir: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "yuqing.stack", "--data-dir", str(data_dir), *extra]


def stack_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "TEMPORAL_ADDRESS")}
    return {**env, "YUQING_DRAIN_SECONDS": "5"}


def log_lines(path: Path) -> list[dict[str, Any]]:
    lines = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
    return lines


def wait_for_line(path: Path, event: str, process: subprocess.Popen[bytes]) -> dict[str, Any]:
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        for line in log_lines(path):
            if line.get("event") == event:
                return line
        if process.poll() is not None:
            pytest.fail(f"the stack exited ({process.returncode}):\n{path.read_text()[-3000:]}")
        time.sleep(0.2)
    pytest.fail(f"no {event!r} line after 180 s:\n{path.read_text()[-3000:]}")


@pytest.fixture(scope="module")
def running_stack() -> Iterator[tuple[Path, dict[str, Any], subprocess.Popen[bytes]]]:
    data_dir = Path(tempfile.mkdtemp(prefix="yuqing-test-stack-"))
    out = data_dir.parent / f"{data_dir.name}.log"
    with out.open("wb") as sink:
        process = subprocess.Popen(
            stack_command(data_dir, *FREE_PORTS),
            cwd=PROJECT_ROOT,
            env=stack_env(),
            stdout=sink,
            stderr=subprocess.STDOUT,
        )
    try:
        ready = wait_for_line(out, "stack ready", process)
        postgres = wait_for_line(out, "PostgreSQL ready", process)
        yield data_dir, {**ready, "database_url": postgres["database_url"], "log": out}, process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=90)
        shutil.rmtree(data_dir, ignore_errors=True)
        out.unlink(missing_ok=True)


def address(text: str) -> tuple[str, int]:
    hostport = text.split("://")[-1].split("/")[0]
    host, port = hostport.rsplit(":", 1)
    return host, int(port)


async def test_serve_reports_every_port_and_runs_separate_processes(
    running_stack: tuple[Path, dict[str, Any], subprocess.Popen[bytes]],
) -> None:
    _, ready, _ = running_stack
    ports: dict[str, str] = ready["ports"]
    assert {
        "Temporal gRPC",
        "Temporal HTTP API",
        "Temporal server metrics",
        "API HTTP",
        "API SDK metrics (loopback)",
        "worker probes and metrics",
        "worker SDK metrics (loopback)",
    } <= set(ports)
    # Every port reported is one that is really listening.
    for where in ports.values():
        with socket.create_connection(address(where), timeout=5):
            pass
    async with httpx.AsyncClient(timeout=10) as http:
        api = f"http://{ports['API HTTP']}"
        worker = f"http://{ports['worker probes and metrics']}"
        assert (await http.get(f"{api}/health/ready")).status_code == 200
        assert (await http.get(f"{worker}/health/ready")).status_code == 200
        # Temporal's own metrics page is where the stack said it is.
        server_metrics = await http.get(ports["Temporal server metrics"])
        assert server_metrics.status_code == 200 and "# TYPE" in server_metrics.text

    client = await Client.connect(ports["Temporal gRPC"])
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace="default")
    )
    retention = described.config.workflow_execution_retention_ttl.ToTimedelta()
    assert retention == timedelta(days=30)


async def test_second_serve_on_the_same_data_dir_refuses_and_leaves_the_first_alone(
    running_stack: tuple[Path, dict[str, Any], subprocess.Popen[bytes]],
) -> None:
    data_dir, ready, first = running_stack
    # Even with other ports, so nothing but the data directory is shared.
    second = await asyncio.to_thread(
        subprocess.run,
        stack_command(data_dir, *FREE_PORTS),
        cwd=PROJECT_ROOT,
        env=stack_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert second.returncode == 1
    assert "already running on the data directory" in second.stdout + second.stderr
    assert f"pid {first.pid}" in second.stdout + second.stderr
    # The first stack goes on as before: its PostgreSQL serves, its API is ready.
    conn = await asyncpg.connect(ready["database_url"])
    try:
        assert await conn.fetchval("SELECT count(*) FROM schema_migrations") >= 1
    finally:
        await conn.close()
    async with httpx.AsyncClient(timeout=10) as http:
        api = f"http://{ready['ports']['API HTTP']}"
        assert (await http.get(f"{api}/health/ready")).status_code == 200
    assert first.poll() is None
    events = [line.get("event") for line in log_lines(ready["log"])]
    assert "PostgreSQL stopped" not in events and "stack stopped" not in events


# -- record (#11): the stack's database roles and keys (before the stack is stopped below) --


async def test_the_stack_runs_the_service_as_a_role_that_may_only_append_to_the_audit(
    running_stack: tuple[Path, dict[str, Any], subprocess.Popen[bytes]],
) -> None:
    data_dir, ready, _ = running_stack
    import asyncpg

    admin = await asyncpg.connect(ready["database_url"])  # the superuser, as the stack logs it
    try:
        connected = {
            row["usename"]
            for row in await admin.fetch(
                "SELECT usename FROM pg_stat_activity"
                " WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        }
    finally:
        await admin.close()
    # The API and the worker as the service, the notary as itself; nobody as the superuser.
    assert "yuqing_service" in connected and "postgres" not in connected, connected
    roles = [line for line in log_lines(ready["log"]) if line.get("event") == "database roles"]
    assert roles and roles[0]["service"].startswith("postgresql://yuqing_service@")
    notary_key = data_dir / "keys" / "notary-ed25519.pem"
    assert notary_key.stat().st_mode & 0o777 == 0o600
    assert notary_key.with_suffix(".pub").exists()


def test_serve_stops_in_order_on_sigterm(
    running_stack: tuple[Path, dict[str, Any], subprocess.Popen[bytes]],
) -> None:
    _, ready, process = running_stack
    process.send_signal(signal.SIGTERM)
    assert process.wait(timeout=90) == 0
    events = [line.get("event") for line in log_lines(ready["log"])]
    order = [
        "API, workers and intake stopped",
        "Temporal stopped",
        "PostgreSQL stopped",
        "stack stopped",
    ]
    assert [e for e in events if e in order] == order


async def test_a_chosen_port_taken_before_the_server_binds_it_is_chosen_again(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    # The race seen in the suite: a port free when chosen, then another process's socket on it
    # before the dev server binds it. The server's own bind fails; the start tries new ports.
    from yuqing.stack import temporal

    taken = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    taken.bind(("127.0.0.1", 0))
    taken.listen()
    taken_port = taken.getsockname()[1]
    chosen: list[int] = []

    def racing_free_port(host: str = "127.0.0.1") -> int:
        # gRPC, HTTP API, metrics (headless: no UI port): the first attempt's metrics port.
        port = taken_port if len(chosen) == 2 else free_port(host)
        chosen.append(port)
        return port

    free_port = temporal.free_port
    monkeypatch.setattr(temporal, "free_port", racing_free_port)
    # Free when checked: the socket comes between the check and the bind.
    monkeypatch.setattr(temporal, "check_port_free", lambda *args: None)
    try:
        server = await temporal.start_temporal(tmp_path, port=0, headless=True, persist=False)
        try:
            assert server.metrics_url is not None
            assert address(server.metrics_url)[1] != taken_port
            assert len(chosen) == 6, chosen  # three ports, twice
            client = await Client.connect(server.address)
            await client.workflow_service.describe_namespace(
                DescribeNamespaceRequest(namespace="default")
            )
            assert "already in use" in (tmp_path / "temporal.log.1").read_text()
        finally:
            await server.stop()
    finally:
        taken.close()
