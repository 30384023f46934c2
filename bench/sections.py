"""The bench's sections, each measuring Yuqing and the bare workflow in the same run.

Every section interleaves the two (ABBA: A, B, B, A, ... so that a machine that gets busier or
quieter as the section goes weighs on both alike) and returns plain numbers; `bench.report`
turns them into the table.
"""

from __future__ import annotations

import asyncio
import functools
import os
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from temporalio.api.common.v1 import WorkflowExecution
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest
from temporalio.client import Client

from bench import bare_trail
from bench.drive import (
    AFTER_PUBLICATION,
    BEFORE_PUBLICATION,
    Drivers,
    demo,
    gather_limited,
    history_of,
    until_stage,
)
from bench.proc import CpuMeter, rss, tree_cpu
from bench.stack import BenchStack
from yuqing.settings import PROJECT_ROOT

KINDS = ("yuqing", "bare")


def abba(chunks: int, first: int = 0) -> list[tuple[int, str]]:
    """(chunk, kind) in ABBA order: yuqing, bare, bare, yuqing, ... (or bare first)."""
    order = []
    for chunk in range(chunks):
        pair = KINDS if (chunk + first) % 2 == 0 else KINDS[::-1]
        order += [(chunk, kind) for kind in pair]
    return order


async def quiesce(pids: dict[str, int], *, quiet: float = 0.02, patience: float = 30.0) -> None:
    """Wait until no process tree uses more than `quiet` CPU seconds in half a second: what a
    section's incidents still do after their last answer (a last projection, archiving) is
    counted in that section, not in the next."""
    deadline = time.monotonic() + patience
    calm = 0
    before = {name: tree_cpu(pid) for name, pid in pids.items()}
    while time.monotonic() < deadline and calm < 2:
        await asyncio.sleep(0.5)
        now = {name: tree_cpu(pid) for name, pid in pids.items()}
        busy = max(now[name] - before[name] for name in pids)
        calm = calm + 1 if busy <= quiet else 0
        before = now


def percentile(values: list[float], fraction: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(fraction * (len(ordered) - 1))))
    return ordered[index]


@dataclass
class Tally:
    """What one kind did in a section: how many, how long, the CPU of each process."""

    count: int = 0
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    latencies: list[float] = field(default_factory=list)

    def add(self, count: int, wall: float, cpu: dict[str, float], latencies: list[float]) -> None:
        self.count += count
        self.wall += wall
        for name, seconds in cpu.items():
            self.cpu[name] = self.cpu.get(name, 0.0) + seconds
        self.latencies += latencies

    def per(self, name: str) -> float:
        return self.cpu.get(name, 0.0) / self.count if self.count else float("nan")


async def _nth(call: Callable[[str], Awaitable[Any]], ids: list[str], index: int) -> None:
    await call(ids[index])


def _ids(tag: str, kind: str, chunk: int, count: int) -> list[str]:
    return [f"{tag}-{kind[0]}{chunk}-{i}" for i in range(count)]


# -- the full general lifecycle -----------------------------------------------------------------


async def lifecycles(
    stack: BenchStack,
    drivers: Drivers,
    *,
    count: int,
    concurrency: int,
    chunks: int,
    tag: str,
    first: int = 0,
    samples: int = 10,
) -> dict[str, Any]:
    """`count` lifecycles of each kind, `concurrency` at a time, in `chunks` interleaved parts."""
    measured = {name: pid for name, pid in stack.pids().items() if name != "api"}
    tallies = {kind: Tally() for kind in KINDS}
    done: dict[str, list[str]] = {kind: [] for kind in KINDS}
    per_chunk = max(1, count // chunks)
    for chunk, kind in abba(chunks, first):
        ids = _ids(tag, kind, chunk, per_chunk)
        run = drivers.lifecycle(kind)
        meter = CpuMeter(measured)
        await quiesce(measured)
        meter.start()
        started = time.perf_counter()
        took = await gather_limited(len(ids), concurrency, functools.partial(_nth, run, ids))
        wall = time.perf_counter() - started
        if kind == "yuqing":
            # The worker's sweeper copies each closed run into the archive: its cost is the
            # incident's, so the chunk's meter runs until every run of it is archived.
            await archived(stack, [drivers.workflow_id(kind, i) for i in ids])
        await quiesce(measured)
        tallies[kind].add(len(ids), wall, meter.stop(), took)
        done[kind] += ids
    result: dict[str, Any] = {}
    for kind in KINDS:
        tally = tallies[kind]
        client = drivers.client(kind)
        sampled = [drivers.workflow_id(kind, i) for i in done[kind][-samples:]]
        histories = [await history_of(client, workflow_id) for workflow_id in sampled]
        read_ms = await _history_read_ms(stack, client, sampled)
        result[kind] = {
            "count": tally.count,
            "throughput": tally.count / tally.wall,
            "history_read_server_ms": read_ms,
            "cpu_ms": {name: 1000 * tally.per(name) for name in measured},
            "lifecycle_p50_ms": 1000 * percentile(tally.latencies, 0.5),
            "history_events": statistics.mean(len(h.events) for h in histories),
            "history_bytes": statistics.mean(h.ByteSize() for h in histories),
        }
    return result


# Each sampled history is read this many times for the figure below: /proc counts in 10 ms ticks,
# about what one read costs Temporal.
HISTORY_READS = 5


async def _history_read_ms(stack: BenchStack, client: Client, workflow_ids: list[str]) -> float:
    """Temporal's CPU for reading one closed history whole, as the archive's sweeper does once
    for each closed incident (`yuqing.audit.archive.fetch_closed_run`), here one read at a time
    on a quiet stack: what the archive costs Temporal itself, for a Yuqing history and for a bare
    one of the same shape. (The worker's sweeper may list closed runs meanwhile, every 10 s
    here: a little more on Yuqing's figure.)"""
    server = {"temporal": stack.pids()["temporal"]}
    await quiesce(stack.pids())
    meter = CpuMeter(server)
    meter.start()
    for _ in range(HISTORY_READS):
        for workflow_id in workflow_ids:
            token = b""
            while True:
                page = await client.workflow_service.get_workflow_execution_history(
                    GetWorkflowExecutionHistoryRequest(
                        namespace=client.namespace,
                        execution=WorkflowExecution(workflow_id=workflow_id),
                        next_page_token=token,
                    )
                )
                token = page.next_page_token
                if not token:
                    break
    used = meter.stop()["temporal"]
    return 1000 * used / (HISTORY_READS * max(1, len(workflow_ids)))


async def archived(stack: BenchStack, workflow_ids: list[str], patience: float = 300.0) -> None:
    """Until the history archive holds a run of every one of `workflow_ids`."""
    import asyncpg

    deadline = time.monotonic() + patience
    conn = await asyncpg.connect(str(stack.settings.database_url))
    try:
        while True:
            count = await conn.fetchval(
                "SELECT count(DISTINCT workflow_id) FROM history_archive"
                " WHERE workflow_id = ANY($1::text[])",
                workflow_ids,
            )
            if count >= len(workflow_ids):
                return
            if time.monotonic() > deadline:
                raise TimeoutError(f"only {count} of {len(workflow_ids)} runs archived")
            await asyncio.sleep(0.5)
    finally:
        await conn.close()


# -- decision latency: one approval through the HTTP API, and bare execute_update ------------------


async def _to_draft(drivers: Drivers, kind: str, incident_id: str) -> str:
    """An incident (or a bare workflow) with its first draft submitted, awaiting approval."""
    if kind == "yuqing":
        workflow_id = await drivers.yuqing_report(incident_id)
        step = drivers.yuqing_decide
    else:
        workflow_id = await drivers.bare_report(incident_id)
        step = drivers.bare_decide
    for signal, name in BEFORE_PUBLICATION[:3]:
        await step(workflow_id, signal, demo(name))
    return workflow_id


APPROVAL = {"decision": "approve", "draft_version": 1, "comment": "同意"}
UNIT_HEAD = "huang.wei"
REPORTER = "chen.jing"


def _bearer(person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-{person}"}


async def approvals(
    stack: BenchStack,
    drivers: Drivers,
    http: aiohttp.ClientSession,
    *,
    concurrency: int,
    rounds: int,
    per_round: int,
    tag: str,
    first: int = 0,
) -> dict[str, Any]:
    """The unit head's approval: `POST /incidents/{id}/approvals/unit_head` (200) against the
    same update sent straight to a bare workflow (`execute_update`), each timed alone."""
    total = rounds * per_round * concurrency
    ready: dict[str, list[str]] = {}
    # "client": the same approval sent to a Yuqing incident through its Temporal client (the
    # `decide` update, as `yuqing` and the starter send it): what the HTTP API adds is the
    # difference between it and "yuqing"; what the workflow adds, between it and "bare".
    kinds = (*KINDS, "client")
    for kind in kinds:
        ids = [f"{tag}-a{kind[0]}{concurrency}-{i}" for i in range(total)]
        ready[kind] = ids

        async def prepare(i: int, kind: str = kind, ids: list[str] = ids) -> None:
            await _to_draft(drivers, "bare" if kind == "bare" else "yuqing", ids[i])

        await gather_limited(total, 10, prepare)
    await quiesce(stack.pids())
    timings: dict[str, list[float]] = {kind: [] for kind in kinds}
    queues = {kind: list(ready[kind]) for kind in kinds}

    async def approve(kind: str) -> float:
        incident_id = queues[kind].pop()
        started = time.perf_counter()
        if kind == "yuqing":
            async with http.post(
                f"/incidents/{incident_id}/approvals/unit_head",
                json=APPROVAL,
                headers=_bearer(UNIT_HEAD),
            ) as response:
                answer = await response.read()  # the whole answer, as the caller would
            took = time.perf_counter() - started
            if response.status != 200:
                said = answer.decode(errors="replace")
                raise RuntimeError(f"approval of {incident_id}: {response.status} {said}")
        elif kind == "client":
            await drivers.yuqing_decide(
                drivers.workflow_id("yuqing", incident_id),
                "unit_head_approval",
                {"approver_id": UNIT_HEAD, **APPROVAL},
            )
            took = time.perf_counter() - started
        else:
            await drivers.bare_decide(
                f"bare-{incident_id}", "unit_head_approval", {"approver_id": UNIT_HEAD, **APPROVAL}
            )
            took = time.perf_counter() - started
        return took

    # The client's rounds go beside Yuqing's, in the same ABBA order (Y C B B C Y).
    order = [
        step for chunk, kind in abba(rounds, first) for step in _with_client(chunk, kind, first)
    ]
    for _chunk, kind in order:
        await _closed_loop(concurrency, per_round, functools.partial(approve, kind), timings[kind])
        await quiesce(stack.pids())
    return {kind: _latency(timings[kind]) for kind in kinds}


def _with_client(chunk: int, kind: str, first: int) -> list[tuple[int, str]]:
    """Yuqing's round with its client round beside it: after it in one chunk, before it in the
    next, so that neither is always the one that follows the other kind (or the preparation)."""
    if kind != "yuqing":
        return [(chunk, kind)]
    pair = [(chunk, kind), (chunk, "client")]
    return pair if (chunk + first) % 2 == 0 else pair[::-1]


async def intakes(
    stack: BenchStack,
    drivers: Drivers,
    http: aiohttp.ClientSession,
    *,
    concurrency: int,
    rounds: int,
    per_round: int,
    tag: str,
    first: int = 0,
) -> dict[str, Any]:
    """A report: `POST /incidents` (201) against bare update-with-start, each timed alone."""
    timings: dict[str, list[float]] = {kind: [] for kind in KINDS}
    counter = iter(range(10**9))

    async def report(kind: str) -> float:
        incident_id = f"{tag}-r{kind[0]}{concurrency}-{next(counter)}"
        started = time.perf_counter()
        if kind == "yuqing":
            body = {**demo("01-incident.json"), "incident_id": incident_id}
            async with http.post("/incidents", json=body, headers=_bearer(REPORTER)) as response:
                answer = await response.read()
            took = time.perf_counter() - started
            if response.status != 201:
                raise RuntimeError(
                    f"report {incident_id}: {response.status} {answer.decode(errors='replace')}"
                )
        else:
            await drivers.bare_report(incident_id)
            took = time.perf_counter() - started
        return took

    for _chunk, kind in abba(rounds, first):
        await _closed_loop(concurrency, per_round, functools.partial(report, kind), timings[kind])
        await quiesce(stack.pids())
    return {kind: _latency(timings[kind]) for kind in KINDS}


async def _closed_loop(
    concurrency: int, each: int, call: Callable[[], Awaitable[float]], into: list[float]
) -> None:
    """`concurrency` callers, each making `each` calls one after the other."""

    async def caller() -> None:
        for _ in range(each):
            into.append(await call())

    await asyncio.gather(*(caller() for _ in range(concurrency)))


def _latency(values: list[float]) -> dict[str, float]:
    return {
        "count": len(values),
        "p50_ms": 1000 * percentile(values, 0.5),
        "p99_ms": 1000 * percentile(values, 0.99),
    }


# -- parked incidents: memory and the sticky cache ------------------------------------------------


async def parked(
    stack: BenchStack,
    drivers: Drivers,
    *,
    count: int,
    concurrency: int,
    tag: str,
    bare_shape: Any,
    max_cached: int,
    yuqing_cache: int | None = None,
) -> dict[str, Any]:
    """`count` incidents reported and left waiting (their deadline timers live) on a fresh
    worker; its memory, its cache, and whether any was evicted. The same for bare ones.

    With `yuqing_cache` (YUQING_STICKY_CACHE) smaller than `count`, incidents parked earliest
    are evicted as later ones come in: evictions are then expected; cache misses are not (a
    miss while parking is an incident evicted before its intake was done)."""
    result: dict[str, Any] = {}
    for kind in KINDS:
        if kind == "yuqing":
            extra = {"YUQING_STICKY_CACHE": str(yuqing_cache)} if yuqing_cache else None
            worker = await stack.start_worker(extra)
            report: Callable[[str], Awaitable[str]] = drivers.yuqing_report
        else:
            worker = await stack.start_bare_worker(bare_shape, max_cached=max_cached)
            report = drivers.bare_report
        # One incident first, so what every process loads once is in the baseline.
        await report(f"{tag}-p{kind[0]}-warm")
        await quiesce(stack.pids())
        before = rss(worker.pid)
        metrics_before = await worker.metrics()
        ids = [f"{tag}-p{kind[0]}-{i}" for i in range(count)]
        started = time.perf_counter()
        took = await gather_limited(count, concurrency, functools.partial(_nth, report, ids))
        wall = time.perf_counter() - started
        await quiesce(stack.pids())
        after = rss(worker.pid)
        metrics = await worker.metrics()
        result[kind] = {
            "count": count,
            "rss_before": before,
            "rss_after": after,
            "rss_per_incident": (after - before) / count,
            "intake_per_s": count / wall,
            "intake_p50_ms": 1000 * percentile(took, 0.5),
            **_cache(metrics_before, metrics),
        }
        if max_cached < count:
            # What eviction costs: one decision to the incidents parked first (evicted, so
            # replayed before it is decided) beside one to those parked last (still cached).
            # After the memory is read: these decisions change what the worker holds.
            decide = drivers.yuqing_decide if kind == "yuqing" else drivers.bare_decide
            workflow_ids = [drivers.workflow_id(kind, incident_id) for incident_id in ids]
            probes = min(EVICTION_PROBES, count // 2)
            for name, chosen in (
                ("evicted", workflow_ids[:probes]),
                ("cached", workflow_ids[-probes:]),
            ):
                result[kind][f"decision_{name}"] = await _decisions(stack, worker, decide, chosen)
    return result


# Decisions sent one by one to each group of parked incidents to price an eviction.
EVICTION_PROBES = 20


async def _decisions(
    stack: BenchStack,
    worker: Any,
    decide: Callable[[str, str, dict[str, Any]], Awaitable[None]],
    workflow_ids: list[str],
) -> dict[str, float]:
    """The lifecycle's next decision (the report) to each workflow, one at a time: the
    worker's CPU per decision (a mean: /proc counts in clock ticks of 10 ms), the median
    latency, and how many were cache misses."""
    await quiesce(stack.pids())
    before = await worker.metrics()
    took: list[float] = []
    signal, name = BEFORE_PUBLICATION[0]
    used = tree_cpu(worker.pid)
    for workflow_id in workflow_ids:
        started = time.perf_counter()
        await decide(workflow_id, signal, demo(name))
        took.append(time.perf_counter() - started)
    cpu = tree_cpu(worker.pid) - used
    after = await worker.metrics()
    return {
        "worker_cpu_ms": 1000 * cpu / len(workflow_ids),
        "p50_ms": 1000 * statistics.median(took),
        "cache_misses": _cache(before, after)["cache_misses"],
    }


def _cache(before: dict[str, float], after: dict[str, float]) -> dict[str, float]:
    def find(samples: dict[str, float], word: str) -> float:
        return sum(v for k, v in samples.items() if word in k)

    return {
        "cache_size": find(after, "sticky_cache_size"),
        "evictions": find(after, "sticky_cache_total_forced_eviction")
        - find(before, "sticky_cache_total_forced_eviction"),
        "cache_misses": find(after, "sticky_cache_miss") - find(before, "sticky_cache_miss"),
    }


# -- tools: yuqing --help, yuqing audit, --replay -------------------------------------------------


async def long_trail(drivers: Drivers, incident_id: str, lines: int) -> str:
    """An incident whose trail has about `lines` lines: figures sent one by one."""
    workflow_id = await drivers.yuqing_report(incident_id)
    # The report's own lines first; then one line per update of the figures (each a new
    # reading, so each its own signature: a proof counts once).
    for index in range(lines):
        body = {
            "source": f"weibo-monitor reading {index}",
            "reported_by": "li.ming",
            "weibo_reposts": 6,
        }
        await drivers.yuqing_decide(workflow_id, "update_metrics", body)
    return workflow_id


def _timed(command: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """(wall seconds, CPU seconds of the child, the tail of its output)."""
    usage_before = os.times()
    started = time.perf_counter()
    done = subprocess.run(
        command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, check=False
    )
    wall = time.perf_counter() - started
    usage = os.times()
    cpu = (usage.children_user - usage_before.children_user) + (
        usage.children_system - usage_before.children_system
    )
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} exited {done.returncode}: {done.stderr[-2000:]}")
    return wall, cpu, done.stderr[-300:]


async def tools(
    stack: BenchStack, drivers: Drivers, *, lines: int, tag: str, repeat: int
) -> dict[str, Any]:
    incident_id = f"{tag}-trail"
    await long_trail(drivers, incident_id, lines)
    # The bare `--replay`'s: as many decisions, each an update with one activity.
    bare_id = f"{tag}-bare-trail"
    await bare_trail.drive(drivers.bare, bare_id, lines)
    # Longer than the other sections wait: the commands are timed alone, not beside the
    # earlier sections' leftovers.
    await quiesce(stack.pids(), patience=120.0)
    yuqing = os.path.join(os.path.dirname(sys.executable), "yuqing")
    env = stack.env()
    commands = {
        "help": [yuqing, "--help"],
        "audit": [yuqing, "audit", incident_id],
        "replay": [yuqing, "audit", incident_id, "--replay"],
        "bare_replay": [sys.executable, "-m", "bench.bare_replay", bare_id],
    }
    result: dict[str, Any] = {"lines": lines}
    meter = CpuMeter(stack.pids())
    measured: dict[str, dict[str, list[float]]] = {
        name: {"wall_s": [], "cpu_s": [], "stack_cores": []} for name in commands
    }
    # Round by round, each command once a round: `--replay` and the bare one interleaved.
    for _ in range(repeat):
        for name, command in commands.items():
            if name in result:  # it failed in an earlier round
                continue
            # What the stack itself does meanwhile (timers of the earlier sections' open
            # incidents, the sweeper): a command timed on a busy machine is slower for it.
            meter.start()
            try:
                wall, cpu, _ = await asyncio.to_thread(_timed, command, env)
            except RuntimeError as failed:
                meter.stop()
                # A tool that fails is a finding, not the end of the bench: said, left out.
                print(f"bench: {failed}", file=sys.stderr, flush=True)  # noqa: T201
                result[name] = {"failed": str(failed)[:500]}
                continue
            measured[name]["wall_s"].append(wall)
            measured[name]["cpu_s"].append(cpu)
            measured[name]["stack_cores"].append(sum(meter.stop().values()) / wall)
    for name, figures in measured.items():
        if name not in result:
            result[name] = {key: statistics.median(values) for key, values in figures.items()}
    return result


def new_tag() -> str:
    return uuid.uuid4().hex[:6]


__all__ = [
    "AFTER_PUBLICATION",
    "approvals",
    "intakes",
    "lifecycles",
    "parked",
    "tools",
    "until_stage",
]
