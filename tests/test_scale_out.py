"""Scale-out on one machine, no Docker (issue 14): one Temporal dev server, one PostgreSQL,
three worker processes and two API processes, each started from its real entry point. Two
hundred incidents are driven through both APIs, every one from report to review; two workers
are killed with SIGKILL while it runs (and replaced, as their Deployment would replace them).
Every incident finishes, each notice and each publication is recorded exactly once, and the
audit chain is intact."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import WorkflowExecutionStatus

from tests import keys
from tests.test_api import STATEMENT, incident, who
from tests.test_processes import Process, answers, started, until
from yuqing import db, incident_workflow_id
from yuqing.audit.projection import verify
from yuqing.client import connect
from yuqing.settings import Settings
from yuqing.stack import EmbeddedPostgres, TemporalDevServer, free_port, start_postgres
from yuqing.state import IncidentSummary

INCIDENTS = int(os.environ.get("YUQING_SCALE_INCIDENTS", "200"))
CONCURRENCY = 40
APPROVE = {"decision": "approve", "draft_version": 1, "comment": "同意"}
UPWARD = {
    "medium": "新浪微博",
    "facts": {
        "time": "2026-11-28 09:10",
        "place": "西乡塘区某超市",
        "units_involved": ["西乡塘分局"],
        "course": "网民发帖称超市销售过期牛奶，配图三张",
        "outcome": "分局执法人员已到场核查，下架涉事商品",
    },
    "comment_tendency": "负面，要求监管部门回应",
}
REVIEW = {"what_happened": "网民曝光", "what_worked": "按时通报", "what_to_change": "加强巡查"}


@pytest.fixture(scope="module")
async def own_postgres() -> AsyncIterator[EmbeddedPostgres]:
    """A database of its own, so the audit chain checked is this test's alone."""
    server = await asyncio.to_thread(
        start_postgres, Path(tempfile.mkdtemp(prefix="yuqing-test-scale-pg-")), ephemeral=True
    )
    yield server
    await asyncio.to_thread(server.stop)


ENGLISH = {"Accept-Language": "en"}
# Told "send it again in a few seconds", a caller does, until this long has passed.
RESEND_PATIENCE = 90.0
RESEND_PAUSE = 1.0


class Lifecycle:
    """One incident, report to review, each call through one of the API processes in turn."""

    def __init__(self, apis: list[httpx.AsyncClient], index: int) -> None:
        self.apis = apis
        self.index = index
        self.calls = 0
        self.incident_id = ""

    async def call(self, path: str, body: dict[str, Any], person: str, ok: int = 200) -> Any:
        # Right after a worker was killed mid-task Temporal turns updates away until another
        # worker has taken the incident over, and the API sends them again itself
        # (starter.decide). Past its patience it answers 503 "nothing was decided: send it
        # again", and the caller does what it is told, as an official would, for as long as
        # the take-over lasts (a loaded machine stretches it).
        give_up = asyncio.get_running_loop().time() + RESEND_PATIENCE
        while True:
            api = self.apis[(self.index + self.calls) % len(self.apis)]
            self.calls += 1
            response = await api.post(path, json=body, headers=who(person))
            if response.status_code != 503 or "send it again" not in response.text:
                break
            if asyncio.get_running_loop().time() > give_up:
                break
            await asyncio.sleep(RESEND_PAUSE)
        if response.status_code != ok:
            trail = await self.trail()
            raise AssertionError(f"{path}: {response.status_code} {response.text}\n{trail}")
        return response.json()

    async def trail(self) -> str:
        """The incident's whole trail, a line each: what a failure shows."""
        response = await self.apis[0].get(
            f"/incidents/{self.incident_id}/trail", params={"limit": 100}, headers=who("li.ming")
        )
        if response.status_code != 200:
            return f"(no trail: {response.status_code} {response.text})"
        lines = response.json()["lines"]
        return "\n".join(f"  {e['at']} {e['kind']} {e.get('signal')}: {e['detail']}" for e in lines)

    async def state(self) -> dict[str, Any]:
        for _ in range(3):
            api = self.apis[(self.index + self.calls) % len(self.apis)]
            self.calls += 1
            response = await api.get(f"/incidents/{self.incident_id}", headers=who("li.ming"))
            # A read waits for a worker to answer; while one takes over from a killed one, it
            # may be told to try again shortly, and does, as an official would.
            if response.status_code != 503 or "try again" not in response.text:
                break
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state

    async def run(self) -> str:
        body = incident(incident_id=f"scale-{self.index}-{uuid.uuid4().hex[:6]}")
        answer = await self.call("/incidents", body, "chen.jing", ok=201)
        self.incident_id = answer["incident_id"]
        base = f"/incidents/{self.incident_id}"
        await self.call(f"{base}/report", UPWARD, "li.ming")
        await self.call(f"{base}/assessment", {"comment": "local"}, "li.ming")
        await self.call(f"{base}/drafts", {"text": STATEMENT}, "chen.jing")
        await self.call(f"{base}/approvals/unit_head", APPROVE, "huang.wei")
        await self.call(f"{base}/approvals/publicity_lead", APPROVE, "zhou.min")
        for attempt in range(3):
            await self.until_monitoring()
            try:
                await self.call(f"{base}/close", {"reason": "事态平息"}, "li.ming")
                break
            except AssertionError as refused:
                # A worker killed right after answering "monitoring" from a task it never
                # completed: the next worker's task holds both the publication's result and
                # the close, and the close is decided first (updates before activity results),
                # so it is refused as still approving and recorded. The official, seeing
                # "monitoring" again, closes again.
                if attempt == 2 or '"refusal_kind":"conflict"' not in str(refused):
                    raise
        await self.call(f"{base}/review", REVIEW, "li.ming")
        return self.incident_id

    async def until_monitoring(self) -> None:
        deadline = time.monotonic() + 180
        while (await self.state())["stage"] != "monitoring":
            assert time.monotonic() < deadline, f"{self.incident_id} never published"
            await asyncio.sleep(1.0)


async def test_three_workers_two_apis_two_killed_every_incident_exactly_once(
    dev_server: TemporalDevServer, own_postgres: EmbeddedPostgres
) -> None:
    task_queue = f"scale-{uuid.uuid4()}"
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": dev_server.address,
        "TEMPORAL_NAMESPACE": dev_server.namespace,
        "YUQING_TASK_QUEUE": task_queue,
        "DATABASE_URL": own_postgres.url,
        "YUQING_DRAIN_SECONDS": "5",
        # A decision whose worker was just killed waits for Temporal's workflow-task timeout
        # and a replay elsewhere, on two cores shared by everything: more than the usual 30 s.
        "YUQING_DECISION_PATIENCE": "120",
        # The tests' own keys (tests/keys.py): the worker checks signatures, the API signs.
        **keys.settings_env(),
    }
    started_at = time.monotonic()
    with contextlib.ExitStack() as stack:

        def start(name: str, command: list[str], port_variable: str) -> Process:
            port = free_port()
            return stack.enter_context(
                started(name, [sys.executable, *command], {**env, port_variable: str(port)}, port)
            )

        worker1, worker2, worker3 = (
            start(f"worker-{n}", ["worker.py"], "YUQING_OPS_PORT") for n in (1, 2, 3)
        )
        api1, api2 = (start(f"api-{n}", ["-m", "api.server"], "YUQING_API_PORT") for n in (1, 2))
        processes = [worker1, worker2, worker3, api1, api2]
        for process in processes:
            ready = f"{process.base}/health/ready"
            await until(f"{process.name} ready", lambda url=ready: answers(url), process)
        ready_at = time.monotonic()

        limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
        clients = [
            # The callers read the answers' English ("send it again", "try again").
            httpx.AsyncClient(base_url=p.base, timeout=120, limits=limits, headers=ENGLISH)
            for p in (api1, api2)
        ]
        gate = asyncio.Semaphore(CONCURRENCY)
        created = 0
        kills: list[tuple[str, int]] = []

        def kill(victim: Process) -> None:
            # Mid-run, with incidents at every stage. The survivors carry on; a replacement
            # starts, as the worker Deployment (or Compose's restart policy) would start one.
            victim.popen.send_signal(signal.SIGKILL)
            kills.append((victim.name, created))
            processes.append(start(f"{victim.name}-replacement", ["worker.py"], "YUQING_OPS_PORT"))

        async def one(index: int) -> str:
            nonlocal created
            async with gate:
                lifecycle = Lifecycle(clients, index)
                task = asyncio.ensure_future(lifecycle.run())
                created += 1
                if created == INCIDENTS // 4:
                    kill(worker1)
                elif created == INCIDENTS // 2:
                    kill(worker2)
                return await task

        try:
            ids = await asyncio.gather(*(one(i) for i in range(INCIDENTS)))
        finally:
            for client in clients:
                await client.aclose()
        driven_at = time.monotonic()
        assert [name for name, _ in kills] == ["worker-1", "worker-2"]
        assert worker1.popen.wait(timeout=10) == -signal.SIGKILL
        assert worker2.popen.wait(timeout=10) == -signal.SIGKILL

        temporal = await connect(
            Settings(temporal_address=dev_server.address, temporal_namespace=dev_server.namespace)
        )
        summaries: dict[str, IncidentSummary] = {}
        for incident_id in ids:
            handle = temporal.get_workflow_handle(
                incident_workflow_id(incident_id), result_type=IncidentSummary
            )
            summaries[incident_id] = await asyncio.wait_for(handle.result(), 180)
            described = await handle.describe()
            assert described.status is WorkflowExecutionStatus.COMPLETED
        finished_at = time.monotonic()
        # For deploy/README.md's sizing: what the survivors hold after the run.
        memory = {p.name: await resident_mib(p) for p in (worker3, api1, api2)}

    pool = await db.create_pool(own_postgres.url)
    try:
        await check_exactly_once(pool, summaries)
        report = await verify(pool)
        assert report.ok and report.problems == [], report.problems
        rows = await pool.fetch(
            "SELECT incident_id, count(*) AS n FROM audit_log GROUP BY incident_id"
        )
        assert {r["incident_id"] for r in rows} >= set(ids)
    finally:
        await pool.close()
    print(
        f"\nscale-out: {INCIDENTS} incidents, 3 workers (2 SIGKILLed at incidents "
        f"{[at for _, at in kills]}, each replaced), 2 APIs:"
        f" processes ready in {ready_at - started_at:.1f} s,"
        f" driven in {driven_at - ready_at:.1f} s, all finished {finished_at - ready_at:.1f} s;"
        f" resident memory after: {memory} MiB"
    )


async def resident_mib(process: Process) -> int:
    async with httpx.AsyncClient(timeout=10) as http:
        text = (await http.get(f"{process.base}/metrics")).text
    for line in text.splitlines():
        if line.startswith("process_resident_memory_bytes "):
            return round(float(line.split()[1]) / 2**20)
    return -1


async def check_exactly_once(pool: asyncpg.Pool, summaries: dict[str, IncidentSummary]) -> None:
    ids = list(summaries)
    outbox = await pool.fetch(
        "SELECT incident_id, idempotency_key, status FROM notification_outbox"
        " WHERE incident_id = ANY($1::text[])",
        ids,
    )
    assert all(r["status"] == "sent" for r in outbox)
    per_incident = Counter(r["incident_id"] for r in outbox)
    assert {i: per_incident[i] for i in ids} == {i: s.notifications for i, s in summaries.items()}
    publications = await pool.fetch(
        "SELECT incident_id, channel FROM publications WHERE incident_id = ANY($1::text[])", ids
    )
    channels: dict[str, list[str]] = {}
    for row in publications:
        channels.setdefault(row["incident_id"], []).append(row["channel"])
    assert {i: sorted(channels.get(i, [])) for i in ids} == {
        i: ["website", "wechat", "weibo"] for i in ids
    }
    assert all(s.publications == 3 for s in summaries.values())
