"""The service's processes from their real entry points (`python worker.py`, `python -m
api.server`, `python -m yuqing.smtp_intake`), as a container runs them: probes, `/metrics`
with the Temporal SDK's metrics and the service's own, a breached deadline counted, every
metric the dashboard and the alert rules use really exported, and a graceful stop on SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import smtplib
import subprocess
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from pathlib import Path

import asyncpg
import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from temporalio.client import Client

from tests import keys
from tests.driver import IncidentDriver, report
from tests.monitoring import (
    SYNTHESIZED,
    alert_queries,
    dashboard_queries,
    family_names,
    metric_names,
)
from yuqing.client import connect
from yuqing.settings import PROJECT_ROOT, Settings
from yuqing.stack import EmbeddedPostgres, TemporalDevServer, free_port
from yuqing.state import DeadlineStatus

PATIENCE = 60.0


@dataclass
class Process:
    name: str
    popen: subprocess.Popen[bytes]
    log: Path
    base: str  # where its probes and /metrics are

    def output(self) -> str:
        return self.log.read_text(errors="replace")[-4000:]


@contextmanager
def started(name: str, command: list[str], env: dict[str, str], port: int) -> Iterator[Process]:
    log = Path(tempfile.mkstemp(prefix=f"yuqing-{name}-", suffix=".log")[1])
    with log.open("wb") as out:
        popen = subprocess.Popen(command, cwd=PROJECT_ROOT, env=env, stdout=out, stderr=out)
    try:
        yield Process(name, popen, log, f"http://127.0.0.1:{port}")
    finally:
        if popen.poll() is None:
            popen.kill()
            popen.wait(timeout=30)
        log.unlink(missing_ok=True)  # a failing test has already quoted its tail


async def until(what: str, check: Callable[[], object], process: Process | None = None) -> None:
    """Wait for a condition (not for time), failing with what was awaited."""
    deadline = asyncio.get_running_loop().time() + PATIENCE
    while True:
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if process is not None and process.popen.poll() is not None:
            pytest.fail(f"{process.name} exited ({process.popen.returncode}):\n{process.output()}")
        if asyncio.get_running_loop().time() > deadline:
            extra = f"\n{process.output()}" if process else ""
            pytest.fail(f"still waiting for {what} after {PATIENCE:.0f} s{extra}")
        await asyncio.sleep(0.2)


async def answers(url: str, status: int = 200) -> bool:
    try:
        async with httpx.AsyncClient(timeout=5) as http:
            return (await http.get(url)).status_code == status
    except httpx.HTTPError:
        return False


async def scrape(process: Process) -> str:
    async with httpx.AsyncClient(timeout=10) as http:
        answer = await http.get(f"{process.base}/metrics")
    assert answer.status_code == 200
    return answer.text


def sample(exposition: str, name: str, **labels: str) -> float:
    """The value of one series (0 when absent)."""
    for family in text_string_to_metric_families(exposition):
        for s in family.samples:
            if s.name == name and all(s.labels.get(k) == v for k, v in labels.items()):
                return float(s.value)
    return 0.0


@dataclass
class Service:
    worker: Process
    api: Process
    intake: Process
    smtp_port: int
    client: Client
    task_queue: str


@pytest.fixture(scope="module")
async def service(
    dev_server: TemporalDevServer, postgres: EmbeddedPostgres, pool: asyncpg.Pool
) -> AsyncIterator[Service]:
    task_queue = f"processes-{uuid.uuid4()}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_server.address,
        "TEMPORAL_NAMESPACE": dev_server.namespace,
        "YUQING_TASK_QUEUE": task_queue,
        "DATABASE_URL": postgres.url,
        "YUQING_DRAIN_SECONDS": "10",
        # The tests' own keys (tests/keys.py): the worker checks signatures, the API signs.
        **keys.settings_env(),
    }
    ops, api_port, smtp_ops, smtp_port = (free_port() for _ in range(4))
    with (
        started(
            "worker", [sys.executable, "worker.py"], {**env, "YUQING_OPS_PORT": str(ops)}, ops
        ) as worker,
        started(
            "api",
            [sys.executable, "-m", "api.server"],
            {**env, "YUQING_API_PORT": str(api_port)},
            api_port,
        ) as api,
        started(
            "smtp-intake",
            [sys.executable, "-m", "yuqing.smtp_intake"],
            {**env, "YUQING_OPS_PORT": str(smtp_ops), "YUQING_SMTP_INTAKE_PORT": str(smtp_port)},
            smtp_ops,
        ) as intake,
    ):
        for process in (worker, api, intake):
            await until(
                f"{process.name} ready",
                lambda p=process: answers(f"{p.base}/health/ready"),
                process,
            )
        client = await connect(
            Settings(temporal_address=dev_server.address, temporal_namespace=dev_server.namespace)
        )
        yield Service(worker, api, intake, smtp_port, client, task_queue)


async def test_probes_answer_on_each_process(service: Service) -> None:
    for process in (service.worker, service.api, service.intake):
        assert await answers(f"{process.base}/health/live"), process.name
        assert await answers(f"{process.base}/health/ready"), process.name


async def test_worker_metrics_count_a_breached_deadline(
    service: Service, pool: asyncpg.Pool
) -> None:
    before = await scrape(service.worker)
    # The SDK's metrics and the service's own, on one page.
    names = family_names(before)
    assert {"temporal_num_pollers", "temporal_worker_task_slots_available"} <= names
    assert {"yuqing_deadlines_breached_total", "yuqing_draft_approval_seconds_bucket"} <= names
    assert sample(before, "temporal_num_pollers", task_queue=service.task_queue) > 0

    # Discovered five hours ago: its 4-hour report deadline has passed by the time it is planned.
    incident = IncidentDriver(service.client, pool, service.task_queue)
    discovered = datetime.now(UTC) - timedelta(hours=5)
    await incident.start(report(discovered_at=discovered))
    state = await incident.until(
        lambda s: any(d.status is DeadlineStatus.breached for d in s.deadlines)
    )
    breached = [d.key for d in state.deadlines if d.status is DeadlineStatus.breached]
    assert breached
    workflow_id = state.workflow_id

    async def projected() -> bool:
        kinds = await pool.fetch(
            "SELECT kind FROM audit_log WHERE workflow_id = $1 AND kind = 'deadline_breached'",
            workflow_id,
        )
        return len(kinds) == len(breached)

    await until("the breach in the audit log", projected, service.worker)

    async def counted() -> bool:
        after = await scrape(service.worker)
        return all(
            sample(after, "yuqing_deadlines_breached_total", workflow="incident", deadline=key)
            == sample(before, "yuqing_deadlines_breached_total", workflow="incident", deadline=key)
            + 1
            for key in breached
        )

    await until("the breach counter to go up by one", counted, service.worker)
    await incident.terminate_if_running()


async def test_email_through_the_smtp_intake_process(service: Service) -> None:
    message = EmailMessage()
    message["From"] = "citizen@example.com"
    message["To"] = "yuqing@bureau.example"
    message["Subject"] = "网传某市场销售过期食品"
    message["Message-ID"] = f"<{uuid.uuid4()}@example.com>"
    message.set_content("https://weibo.example/status/1 网友反映某市场销售过期食品。")

    def send() -> dict[str, tuple[int, bytes]]:
        with smtplib.SMTP("127.0.0.1", service.smtp_port, timeout=30) as smtp:
            return smtp.send_message(message)

    refused = await asyncio.to_thread(send)
    assert refused == {}
    text = await scrape(service.intake)
    assert sample(text, "yuqing_email_intake_messages_total", outcome="reported") == 1


async def test_dashboard_and_alerts_name_only_exported_metrics(service: Service) -> None:
    # Some SDK series appear only once what they count has happened: make it happen.
    stranger = await service.client.start_workflow(
        "NoSuchWorkflow", id=f"stranger-{uuid.uuid4()}", task_queue=service.task_queue
    )
    async with httpx.AsyncClient(base_url=service.api.base, timeout=30) as http:
        # The API's client asks Temporal about an incident that does not exist (NOT_FOUND).
        missing = await http.get(
            "/incidents/no-such-incident", headers={"Authorization": "Bearer dev-li.ming"}
        )
        assert missing.status_code == 404

    async def failed_task_seen() -> bool:
        return "temporal_workflow_task_execution_failed_total" in family_names(
            await scrape(service.worker)
        )

    await until("a failed workflow task in the worker's metrics", failed_task_seen, service.worker)

    async def gauges_seen() -> bool:
        return "yuqing_incidents_open" in family_names(await scrape(service.api))

    await until("the API's state gauges", gauges_seen, service.api)
    await stranger.terminate()

    exported = SYNTHESIZED | set().union(
        *[family_names(await scrape(p)) for p in (service.worker, service.api, service.intake)]
    )
    used = {
        (where, name)
        for where, expr in [*dashboard_queries(), *alert_queries()]
        for name in metric_names(expr)
    }
    assert used, "no queries found"
    missing_names = sorted({f"{name} (in {where})" for where, name in used if name not in exported})
    assert missing_names == []


async def test_processes_stop_gracefully_on_sigterm(service: Service) -> None:
    for process in (service.api, service.intake, service.worker):
        process.popen.send_signal(signal.SIGTERM)
    for process in (service.api, service.intake, service.worker):
        code = await asyncio.to_thread(process.popen.wait, 60)
        assert code == 0, process.output()
    assert "worker stopped" in service.worker.output()
    assert "API stopped" in service.api.output()
