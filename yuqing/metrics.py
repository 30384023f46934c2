"""Prometheus metrics: the Temporal SDK's and the service's own, on each process's `/metrics`.

The SDK's metrics come from its Rust core (`temporalio.runtime.PrometheusConfig`), which serves
them on a loopback port of its own; `SdkMetrics` reads that page at each scrape and hands its
families to the process's registry, so one `/metrics` carries both and Prometheus scrapes one
port per process.

The service's own metrics, and where each is counted:

- `yuqing_deadlines_breached_total{workflow, deadline}` and
  `yuqing_draft_approval_seconds`: by `TrailMetrics`, an activity interceptor on the
  worker that watches the audit projection (`record_trail`). Every line of every trail passes
  through that activity once it is in the history; counting the lines its answer says were
  written *now* counts each breach exactly once, whatever the retries, replays or worker deaths
  (a workflow-side meter would be replay-safe too, but would reach into the workflow code and
  count a breach again when a workflow task is retried after the timer fired).
- `yuqing_api_requests_total` and `yuqing_api_request_duration_seconds`: the API's middleware.
- `yuqing_email_intake_messages_total`: the SMTP intake.
- `yuqing_incidents_open{grade, stage}`, `yuqing_incidents_task_failing`,
  `yuqing_deliveries_pending`, `yuqing_deliveries_retrying` and
  `yuqing_delivery_oldest_pending_seconds`: `StateMetrics`, read from Temporal's visibility and
  PostgreSQL at most every `STATE_REFRESH` by each API process (every replica reports the same
  figures: dashboards and alerts take `max` over them).
"""

from __future__ import annotations

import asyncio
import time
import urllib.request
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import asyncpg
import structlog
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.registry import Collector
from temporalio import activity
from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import (
    ActivityInboundInterceptor,
    ExecuteActivityInput,
    Interceptor,
)

log = structlog.get_logger("yuqing.metrics")

# `*_created` series double every family for a timestamp no dashboard or alert reads.
disable_created_metrics()

__all__ = [
    "API_LATENCY",
    "API_REQUESTS",
    "CONTENT_TYPE_LATEST",
    "DEADLINES_BREACHED",
    "DRAFT_APPROVAL",
    "EMAIL_INTAKE",
    "SdkMetrics",
    "StateMetrics",
    "TrailMetrics",
    "exposition",
    "install_sdk_runtime",
]

# -- the service's own ---------------------------------------------------------------------

DEADLINES_BREACHED = Counter(
    "yuqing_deadlines_breached",
    "Deadlines that passed unmet and were escalated (one per deadline_breached trail line)",
    ["workflow", "deadline"],
)
DRAFT_APPROVAL = Histogram(
    "yuqing_draft_approval_seconds",
    "Time from a draft's submission to the completion of its approval chain",
    # Minutes to days: the plan's statement deadline is 24 h from discovery.
    buckets=(60, 300, 900, 1800, 3600, 2 * 3600, 4 * 3600, 8 * 3600, 86400, 2 * 86400, 7 * 86400),
)
API_REQUESTS = Counter(
    "yuqing_api_requests",
    "HTTP requests answered by the API, by route template and status code",
    ["method", "route", "status"],
)
API_LATENCY = Histogram(
    "yuqing_api_request_duration_seconds",
    "Time the API took to answer, by route template",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
EMAIL_INTAKE = Counter(
    "yuqing_email_intake_messages",
    "E-mails the SMTP intake answered: reported (250), refused (554) or deferred (451)",
    ["outcome"],
)

# The grade label of an incident not yet assessed.
UNASSESSED = "unassessed"
STATE_REFRESH = 15.0


def exposition(registry: CollectorRegistry = REGISTRY) -> bytes:
    """The text a scrape of `/metrics` gets."""
    return generate_latest(registry)


# -- the SDK's -----------------------------------------------------------------------------


def install_sdk_runtime(bind_address: str) -> Runtime:
    """Make the SDK's Prometheus exporter (on `bind_address`, loopback) the process's default
    runtime, before any client is made, and add its metrics to the registry.

    Names follow Prometheus' conventions: counters end in `_total`, durations are in seconds
    with a `_seconds` suffix (e.g. `temporal_workflow_task_schedule_to_start_latency_seconds`).
    """
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=bind_address,
                counters_total_suffix=True,
                unit_suffix=True,
                durations_as_seconds=True,
            )
        )
    )
    Runtime.set_default(runtime, error_if_already_set=False)
    REGISTRY.register(SdkMetrics(f"http://{bind_address}/metrics"))
    log.info("Temporal SDK metrics", internal=f"http://{bind_address}/metrics")
    return runtime


class SdkMetrics(Collector):
    """The SDK core's Prometheus page, re-read at each scrape of the process's registry."""

    def __init__(self, url: str, timeout: float = 2.0) -> None:
        self._url = url
        self._timeout = timeout

    def describe(self) -> list[Metric]:
        # Nothing known in advance; without this the registry would scrape the page on register.
        return []

    def collect(self) -> Iterator[Metric]:
        try:
            with urllib.request.urlopen(self._url, timeout=self._timeout) as answer:
                text = answer.read().decode("utf-8")
        except OSError as err:
            log.warning("Temporal SDK metrics unavailable", url=self._url, error=str(err))
            return
        yield from text_string_to_metric_families(text)


# -- from the decision trail, in the worker ----------------------------------------------


class TrailMetrics(Interceptor):
    """Counts what the audit projection records: breached deadlines and approval times."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    def intercept_activity(self, next: ActivityInboundInterceptor) -> ActivityInboundInterceptor:
        return _TrailActivity(next, self._pool)


class _TrailActivity(ActivityInboundInterceptor):
    def __init__(self, next: ActivityInboundInterceptor, pool: asyncpg.Pool) -> None:
        super().__init__(next)
        self._pool = pool

    async def execute_activity(self, input: ExecuteActivityInput) -> Any:
        result = await super().execute_activity(input)
        if activity.info().activity_type == "record_trail" and input.args:
            try:
                await observe_trail(self._pool, input.args[0], result)
            except Exception as err:  # metrics must never fail the projection
                log.warning("trail metrics not counted", error=str(err))
        return result


@dataclass(frozen=True)
class _Line:
    seq: int
    at: datetime
    kind: str
    refused: bool


async def observe_trail(pool: asyncpg.Pool, request: Any, result: Any) -> None:
    """Count the lines of `request` (a RecordTrail) that this attempt wrote."""
    entries: Sequence[Any] = getattr(request, "entries", ())
    written = int(getattr(result, "rows", 0) or 0)
    if not entries or written <= 0:
        return  # a retry of lines already recorded: counted by the attempt that wrote them
    first_seq = int(request.first_seq)
    # One transaction writes an attempt's rows: they are the last `written` of its lines.
    new = [
        _Line(first_seq + offset, entry.at, entry.kind, bool(entry.refused))
        for offset, entry in enumerate(entries)
    ][-written:]
    workflow = "post" if getattr(request, "post_id", None) else "incident"
    breached = {
        d.breached_at: d.key
        for d in getattr(request, "deadlines", ())
        if getattr(d, "breached_at", None) is not None
    }
    for line in new:
        if line.kind == "deadline_breached" and not line.refused:
            DEADLINES_BREACHED.labels(workflow, breached.get(line.at, "unknown")).inc()
    for line in new:
        if line.kind == "chain_complete" and not line.refused:
            await _observe_approval(pool, request.workflow_id, entries, first_seq, line)


async def _observe_approval(
    pool: asyncpg.Pool, workflow_id: str, entries: Sequence[Any], first_seq: int, done: _Line
) -> None:
    # The draft a chain approves is the last one submitted before it: a newer draft voids
    # every approval of the older ones, and an approval names the current draft.
    submitted: datetime | None = None
    for offset in range(done.seq - first_seq - 1, -1, -1):
        entry = entries[offset]
        if entry.kind == "draft" and not entry.refused:
            submitted = entry.at
            break
    if submitted is None:
        submitted = await pool.fetchval(
            "SELECT at FROM audit_log WHERE workflow_id = $1 AND kind = 'draft'"
            " AND NOT refused AND seq < $2 ORDER BY seq DESC LIMIT 1",
            workflow_id,
            done.seq,
        )
    if submitted is not None:
        DRAFT_APPROVAL.observe((done.at - submitted).total_seconds())


# -- the service's state, in the API ---------------------------------------------------------


class StateMetrics(Collector):
    """Gauges of what is open now, from Temporal's visibility and PostgreSQL.

    Refreshed in the background at most every `refresh` seconds (a scrape never waits on
    Temporal or PostgreSQL); a figure that could not be read is left out rather than shown
    stale, so an alert on it goes quiet and the readiness probe says why.
    """

    def __init__(
        self,
        client: Client,
        pool: asyncpg.Pool,
        *,
        stages: Iterable[str],
        grades: Iterable[str],
        refresh: float = STATE_REFRESH,
    ) -> None:
        self._client = client
        self._pool = pool
        self._stages = list(stages)
        self._grades = [*grades, UNASSESSED]
        self._refresh = refresh
        self._open: dict[tuple[str, str], int] | None = None
        self._failing: int | None = None
        self._deliveries: dict[str, float] | None = None
        self._task: asyncio.Task[None] | None = None

    def describe(self) -> list[Metric]:
        return []

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._keep_fresh())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except asyncio.CancelledError:
                pass
            self._task = None

    async def refresh_now(self) -> None:
        self._open, self._failing = await self._read_incidents()
        self._deliveries = await self._read_deliveries()

    async def _keep_fresh(self) -> None:
        while True:
            started = time.monotonic()
            try:
                self._open, self._failing = await self._read_incidents()
            except Exception as err:
                self._open = self._failing = None
                log.debug("incident gauges unavailable", error=str(err))
            try:
                self._deliveries = await self._read_deliveries()
            except Exception as err:
                self._deliveries = None
                log.debug("delivery gauges unavailable", error=str(err))
            await asyncio.sleep(max(1.0, self._refresh - (time.monotonic() - started)))

    async def _read_incidents(self) -> tuple[dict[tuple[str, str], int], int]:
        running = 'WorkflowType = "IncidentWorkflow" AND ExecutionStatus = "Running"'
        counts: dict[tuple[str, str], int] = {}
        for stage in self._stages:
            total = await self._count(f'{running} AND IncidentStage = "{stage}"')
            if not total:
                for grade in self._grades:
                    counts[(grade, stage)] = 0
                continue
            seen = 0
            for grade in self._grades:
                if grade == UNASSESSED:
                    counts[(grade, stage)] = total - seen
                    continue
                n = await self._count(
                    f'{running} AND IncidentStage = "{stage}" AND IncidentGrade = "{grade}"'
                )
                counts[(grade, stage)] = n
                seen += n
        # Temporal marks a workflow whose tasks fail again and again (5 in a row by default).
        failing = await self._count(
            'WorkflowType IN ("IncidentWorkflow", "NetizenPostWorkflow")'
            ' AND ExecutionStatus = "Running" AND TemporalReportedProblems IS NOT NULL'
        )
        return counts, failing

    async def _count(self, query: str) -> int:
        answer = await self._client.count_workflows(query)
        return int(answer.count)

    async def _read_deliveries(self) -> dict[str, float]:
        # A notice not yet sent to everyone, and each delivery that failed and will be retried.
        row = await self._pool.fetchrow(
            "SELECT"
            " (SELECT count(*) FROM notification_outbox WHERE status <> 'sent') AS pending,"
            " (SELECT min(created_at) FROM notification_outbox WHERE status <> 'sent')"
            "   AS oldest,"
            " (SELECT count(*) FROM deliveries WHERE status IN ('failed', 'sending'))"
            "   AS retrying"
        )
        assert row is not None
        oldest: datetime | None = row["oldest"]
        age = 0.0 if oldest is None else (datetime.now(UTC) - oldest).total_seconds()
        return {
            "pending": float(row["pending"]),
            "retrying": float(row["retrying"]),
            "oldest": max(0.0, age),
        }

    def collect(self) -> Iterator[Metric]:
        if self._open is not None:
            family = GaugeMetricFamily(
                "yuqing_incidents_open",
                "Incidents running now, by grade (unassessed until graded) and stage",
                labels=["grade", "stage"],
            )
            for (grade, stage), count in sorted(self._open.items()):
                family.add_metric([grade, stage], count)
            yield family
        if self._failing is not None:
            yield GaugeMetricFamily(
                "yuqing_incidents_task_failing",
                "Incidents and posts whose workflow task keeps failing"
                " (Temporal's TemporalReportedProblems is set)",
                value=self._failing,
            )
        if self._deliveries is not None:
            yield GaugeMetricFamily(
                "yuqing_deliveries_pending",
                "Notices written to the outbox and not yet sent to every recipient",
                value=self._deliveries["pending"],
            )
            yield GaugeMetricFamily(
                "yuqing_deliveries_retrying",
                "Deliveries to one target that failed (or died mid-send) and will be retried",
                value=self._deliveries["retrying"],
            )
            yield GaugeMetricFamily(
                "yuqing_delivery_oldest_pending_seconds",
                "Age of the oldest notice not yet sent to every recipient (0: none waits)",
                value=self._deliveries["oldest"],
            )
