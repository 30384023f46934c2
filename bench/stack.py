"""The bench's own stack: PostgreSQL, a Temporal dev server, Yuqing's worker and API, and the
bare worker, each its own process (so /proc tells their CPU apart), on free ports, with all
data under the bench's data directory.

The servers come from the same code as `./dev serve` (`yuqing.stack`); the worker and the API
are started from their real entry points (`worker.py`, `python -m api.server`) with the
settings a deployment gives them.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.proc import children_of
from yuqing.settings import PROJECT_ROOT, Settings
from yuqing.stack import EmbeddedPostgres, TemporalDevServer, start_postgres, start_temporal
from yuqing.stack.common import free_port
from yuqing.stack.keys import ensure_dev_keys
from yuqing.stack.record import notary_running, prepare_record, service_variables

READY_PATIENCE = 120.0


class BenchError(RuntimeError):
    pass


@dataclass
class Child:
    """A process of the stack, with its log file and the port its metrics are read from."""

    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    log_file: IO[bytes]
    metrics_url: str | None = None
    profiled: bool = False

    @property
    def pid(self) -> int:
        return self.popen.pid

    def tail(self, lines: int = 30) -> str:
        text = self.log.read_text(errors="replace").splitlines()
        return "\n".join(text[-lines:])

    async def stop(self, grace: float = 20.0) -> None:
        if self.popen.poll() is None:
            # Under py-spy, the process it runs is told: py-spy writes its profile as it ends.
            targets = children_of(self.popen.pid) if self.profiled else []
            for pid in targets or [self.popen.pid]:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGTERM)
            try:
                await asyncio.wait_for(asyncio.to_thread(self.popen.wait), grace)
            except TimeoutError:
                self.popen.kill()
                await asyncio.to_thread(self.popen.wait)
        self.log_file.close()

    async def metrics(self) -> dict[str, float]:
        """The SDK's Prometheus samples, summed over labels: {name: value}."""
        if self.metrics_url is None:
            return {}
        async with httpx.AsyncClient(timeout=10) as http:
            text = (await http.get(self.metrics_url)).text
        totals: dict[str, float] = {}
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                totals[sample.name] = totals.get(sample.name, 0.0) + sample.value
        return totals


@dataclass
class BenchStack:
    data_dir: Path
    postgres: EmbeddedPostgres
    temporal: TemporalDevServer
    settings: Settings
    yuqing_queue: str
    bare_queue: str
    children: dict[str, Child] = field(default_factory=dict)
    api_url: str = ""
    # Profile these processes with py-spy (its raw output, in the data directory): for finding
    # where the time goes, not for figures (the sampler's own CPU counts with the process).
    profile: frozenset[str] = frozenset()

    @property
    def address(self) -> str:
        return self.temporal.address

    def pids(self) -> dict[str, int]:
        """The process trees whose CPU the bench reads."""
        found = {"temporal": self.temporal.process.pid}
        pid = self.postgres.pid
        if pid is not None:
            found["postgres"] = pid
        for name, child in self.children.items():
            found[name] = child.pid
        return found

    def env(self, extra: dict[str, str] | None = None) -> dict[str, str]:
        """The environment the service's processes (and its tools) are given."""
        settings = self.settings
        env = {
            **os.environ,
            "TEMPORAL_ADDRESS": self.address,
            "TEMPORAL_NAMESPACE": settings.temporal_namespace,
            "YUQING_TASK_QUEUE": self.yuqing_queue,
            "DATABASE_URL": str(settings.database_url),
            "YUQING_LISTEN_HOST": "127.0.0.1",
            "YUQING_KEYS": str(settings.keys_path),
            "YUQING_SIGNING_KEY": str(settings.signing_key_path),
            "YUQING_SIGNING_KEY_ID": str(settings.signing_key_id),
            "YUQING_DRAIN_SECONDS": "5",
            # The archive sweeper every 10 s instead of 60 s: the lifecycle section waits for
            # each chunk's runs to be archived (their cost is counted with the chunk).
            "YUQING_ARCHIVE_SWEEP_SECONDS": "10",
            # The payload keys (every payload is encrypted), as ./dev serve hands them over.
            **service_variables(settings),
            **(extra or {}),
        }
        return env

    def _spawn(self, name: str, command: list[str], env: dict[str, str]) -> Child:
        log = self.data_dir / f"{name}.log"
        if name in self.profile:
            spy = Path(sys.executable).parent / "py-spy"
            out = self.data_dir / f"{name}-{int(time.time())}.profile.txt"
            command = [
                str(spy),
                "record",
                "--format",
                "raw",
                "--rate",
                "200",
                "-o",
                str(out),
                "--",
                *command,
            ]
        log_file = log.open("wb")
        popen = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        return Child(name, popen, log, log_file, profiled=name in self.profile)

    async def _until(self, child: Child, ready: str) -> None:
        deadline = time.monotonic() + READY_PATIENCE
        async with httpx.AsyncClient(timeout=2) as http:
            while True:
                if child.popen.poll() is not None:
                    raise BenchError(f"the {child.name} exited while starting:\n{child.tail()}")
                try:
                    if (await http.get(ready)).status_code == 200:
                        return
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline:
                    raise BenchError(f"the {child.name} is not ready:\n{child.tail()}")
                await asyncio.sleep(0.2)

    async def start_worker(self, extra: dict[str, str] | None = None) -> Child:
        """Yuqing's worker (`python worker.py`), its SDK metrics on a port of its own."""
        await self.stop_child("worker")
        ops, sdk = free_port(), free_port()
        env = self.env(
            {"YUQING_OPS_PORT": str(ops), "YUQING_SDK_METRICS_PORT": str(sdk), **(extra or {})}
        )
        child = self._spawn("worker", [sys.executable, "worker.py"], env)
        child.metrics_url = f"http://127.0.0.1:{sdk}/metrics"
        self.children["worker"] = child
        await self._until(child, f"http://127.0.0.1:{ops}/health/ready")
        return child

    async def start_api(self) -> Child:
        await self.stop_child("api")
        port, sdk = free_port(), free_port()
        env = self.env(
            {
                "YUQING_API_PORT": str(port),
                "YUQING_SDK_METRICS_PORT": str(sdk),
                "YUQING_STATEMENT_BASE_URL": f"http://localhost:{port}/statements",
            }
        )
        child = self._spawn("api", [sys.executable, "-m", "api.server"], env)
        self.children["api"] = child
        self.api_url = f"http://127.0.0.1:{port}"
        await self._until(child, f"{self.api_url}/health/ready")
        return child

    async def start_bare_worker(self, shape_file: Path, max_cached: int = 0) -> Child:
        await self.stop_child("bare")
        metrics = free_port()
        command = [
            sys.executable,
            "-m",
            "bench.bare_worker",
            "--address",
            self.address,
            "--namespace",
            self.settings.temporal_namespace,
            "--task-queue",
            self.bare_queue,
            "--shape",
            str(shape_file),
            "--metrics-port",
            str(metrics),
        ]
        if max_cached:
            command += ["--max-cached-workflows", str(max_cached)]
        child = self._spawn("bare", command, {**os.environ})
        child.metrics_url = f"http://127.0.0.1:{metrics}/metrics"
        self.children["bare"] = child
        await self._until(child, child.metrics_url)
        return child

    async def stop_child(self, name: str) -> None:
        child = self.children.pop(name, None)
        if child is not None:
            await child.stop()


def _fresh(data_dir: Path) -> None:
    if data_dir.exists():
        shutil.rmtree(data_dir)
    data_dir.mkdir(parents=True)


@contextlib.asynccontextmanager
async def bench_stack(
    data_dir: Path, *, keep: bool = False, persist: bool = False
) -> AsyncIterator[BenchStack]:
    """PostgreSQL and Temporal under `data_dir` (removed afterwards unless `keep`).

    Temporal keeps its state in memory unless `persist` (SQLite in `data_dir`, as `./dev serve`
    does): the dev server's SQLite file costs it about twice the CPU per workflow, a cost of
    the dev server, not of Temporal on its production databases, nor of the code measured.
    """
    await asyncio.to_thread(_fresh, data_dir)
    postgres = await asyncio.to_thread(start_postgres, data_dir)
    try:
        temporal = await start_temporal(
            data_dir,
            port=0,
            ui_port=0,
            headless=True,
            persist=persist,
            http_port=0,
            metrics_port=0,
        )
        try:
            settings = Settings.from_env(
                {"TEMPORAL_ADDRESS": temporal.address, "DATABASE_URL": postgres.url}
            )
            settings = ensure_dev_keys(data_dir, settings)
            # As ./dev serve: payload keys, database roles, migrations as the owner, the notary.
            record = await prepare_record(data_dir, settings, admin_url=postgres.admin_url)
            settings = dataclasses.replace(record.settings, temporal_address=temporal.address)
            stack = BenchStack(
                data_dir=data_dir,
                postgres=postgres,
                temporal=temporal,
                settings=settings,
                yuqing_queue=f"bench-yuqing-{uuid.uuid4().hex[:8]}",
                bare_queue=f"bench-bare-{uuid.uuid4().hex[:8]}",
            )
            try:
                async with notary_running(record):
                    yield stack
            finally:
                for name in list(stack.children):
                    await stack.stop_child(name)
        finally:
            await temporal.stop()
    finally:
        await asyncio.to_thread(postgres.stop)
        if not keep:
            shutil.rmtree(data_dir, ignore_errors=True)
