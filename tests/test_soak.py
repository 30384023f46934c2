"""One incident under a flood of signals (6,000 in the suite, 20,000 on demand), nearly all
refused, through the real worker.

It continues as new as its history grows; its `state` answer stays small and every run's
history short; afterwards it still approves, publishes once per channel and closes, and the
audit trail read across its runs agrees with the PostgreSQL projection and with a replay.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable
from dataclasses import replace
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.client import WorkflowQueryFailedError
from temporalio.service import RPCError

from tests.driver import QUERY_TIMEOUT, UPWARD_REPORT, IncidentDriver, approval, report
from tests.keys import signed
from worker import create_worker
from yuqing.audit.history import load_history as load_all_runs
from yuqing.audit.history import load_runs, recorded_trail
from yuqing.client import connect
from yuqing.settings import Settings
from yuqing.stack import TemporalDevServer
from yuqing.state import IncidentState

# The figure is 20,000 (YUQING_SOAK_SIGNALS=20000, with the service's own bound of
# 2,000 decisions a run: 11 runs, ~95 s on a 2-core machine); the suite sends 6,000 with a
# bound of 1,000, which continues as new as often for a third of the time (25-90 s).
SIGNALS = int(os.environ.get("YUQING_SOAK_SIGNALS", "6000"))
BOUND = 2000 if SIGNALS >= 20_000 else 1000
WAVE = 1000
STATE_LIMIT = 256 * 1024
EVENTS_LIMIT = 10_000
# Waiting here is for the worker to decide what was sent, not for time to pass.
FLOOD_PATIENCE = 600.0
CONTINUED = "EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW"
COMPLETED = "EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED"
# Each step after the flood has its own bound, so a wait that does not end names its step.
STEP_PATIENCE = 180.0
T = TypeVar("T")


async def step(
    name: str, work: Awaitable[T], driver: IncidentDriver, patience: float = STEP_PATIENCE
) -> T:
    task = asyncio.ensure_future(work)
    done, _ = await asyncio.wait([task], timeout=patience)
    if done:
        return task.result()
    waiting = awaiting(task.get_coro())
    task.cancel()
    seen = await asyncio.wait_for(where_it_is(driver), 30)
    raise AssertionError(f"{name}: not done in {patience:.0f} s, waiting in {waiting}; {seen}")


def awaiting(coroutine: Any) -> str:
    """Where a coroutine waits, outermost first: what a step that does not end reports."""
    frames = []
    while coroutine is not None and hasattr(coroutine, "cr_frame"):
        frame = coroutine.cr_frame
        if frame is not None:
            frames.append(f"{frame.f_code.co_filename.rsplit('/', 2)[-1]}:{frame.f_lineno}")
        coroutine = coroutine.cr_await
    frames.append(repr(coroutine))
    return " > ".join(frames)


async def where_it_is(driver: IncidentDriver) -> str:
    """What the incident's latest run is doing: what a failed wait reports."""
    assert driver.handle is not None
    latest = driver.client.get_workflow_handle(driver.handle.id)
    described = await latest.describe()
    raw = described.raw_description
    pending = [
        f"{a.activity_type.name} (attempt {a.attempt}, {a.last_failure.message or 'no failure'})"
        for a in raw.pending_activities
    ]
    events = [
        EventType.Name(e.event_type).removeprefix("EVENT_TYPE_")
        async for e in latest.fetch_history_events()
    ]
    return (
        f"run {described.run_id} is {described.status.name if described.status else '?'}"
        f" after {len(events)} events, last {events[-6:]}; pending activities {pending or 'none'}"
    )


async def yuqing_audit(arguments: list[str], env: dict[str, str]) -> tuple[int, str]:
    """`yuqing audit ...` as an official runs it: its own process, killed if it outstays."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "yuqing.cli",
        "audit",
        *arguments,
        env={**os.environ, **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    try:
        output, _ = await asyncio.wait_for(process.communicate(), STEP_PATIENCE)
    except TimeoutError:
        process.kill()
        await process.wait()
        raise AssertionError(
            f"yuqing audit {' '.join(arguments)}: not done in {STEP_PATIENCE:.0f} s"
        ) from None
    return process.returncode or 0, output.decode()


@pytest.fixture
async def flood(
    dev_server: TemporalDevServer, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[IncidentDriver]:
    # On the dev server the run command starts: nothing here needs time to pass, and the
    # time-skipping server was seen keeping a continued run's history without its last events
    # and leaving a history long-poll open after the run had completed.
    address, namespace = dev_server.address, dev_server.namespace
    client = await connect(
        replace(settings, temporal_address=address, temporal_namespace=namespace)
    )
    task_queue = f"test-{uuid.uuid4()}"
    own = replace(settings, continue_after_decisions=BOUND)
    async with create_worker(client, pool, own, task_queue=task_queue):
        incident = IncidentDriver(client, pool, task_queue)
        yield incident
        await incident.terminate_if_running()


async def read_state(driver: IncidentDriver) -> tuple[IncidentState, int]:
    """The `state` answer and its size; a query may wait behind a busy task, so ask again."""
    assert driver.handle is not None
    give_up = asyncio.get_running_loop().time() + 60
    while True:
        try:
            raw = await driver.handle.query(
                "state", result_type=dict[str, Any], rpc_timeout=QUERY_TIMEOUT
            )
        except (RPCError, WorkflowQueryFailedError) as error:
            if asyncio.get_running_loop().time() > give_up:
                raise AssertionError(f"the state query fails for 60 s: {error!r}") from error
            await asyncio.sleep(0.5)
            continue
        return IncidentState.model_validate(raw), len(json.dumps(raw, ensure_ascii=False))


async def test_an_incident_flooded_with_signals_continues_as_new_and_still_closes(
    flood: IncidentDriver, settings: Settings, tmp_path: Path
) -> None:
    driver = flood
    began = time.monotonic()
    await driver.start(report())
    assert driver.handle is not None
    handle = driver.handle
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "通报全文"})
    post = {
        "post_id": "p1",
        "platform": "微博",
        "author": "网友甲",
        "content": "超市什么时候整改？",
        "received_by": "chen.jing",
    }
    await driver.accepted("netizen_post", post)
    await driver.until_post("p1", lambda p: bool(p.deadlines))

    # The flood: another unit's head approving (forbidden), and names the incident lacks.
    forbidden = signed(handle.id, "unit_head_approval", approval("liu.yang", 1))
    gate = asyncio.Semaphore(64)
    largest = 0

    async def one(number: int) -> None:
        async with gate:
            if number % 5 == 0:
                await handle.signal("unit_head_approval", forbidden)
            else:
                await handle.signal("approve_everything", {"number": number})

    # In waves, each sent as fast as 64 callers can and decided before the next: a sustained
    # flood the worker keeps up with (what a flood faster than it does is in the README).
    loop = asyncio.get_running_loop()
    give_up = loop.time() + FLOOD_PATIENCE
    for wave in range(0, SIGNALS, WAVE):
        sent = min(wave + WAVE, SIGNALS)
        await step(
            f"sending signals {wave}-{sent}", asyncio.gather(*map(one, range(wave, sent))), driver
        )
        while True:
            state, size = await read_state(driver)
            largest = max(largest, size)
            if state.refused_total >= sent:
                break
            assert loop.time() < give_up, f"{state.refused_total} of {sent} decided"
            await asyncio.sleep(0.2)
    decided = flooded = time.monotonic()
    assert state.refused_total == SIGNALS
    assert len(state.trail) <= 20 and state.trail_total > SIGNALS

    # It still decides: the chain, one publication per channel, the post answered, closed.
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 1))
    state = await driver.until_published()
    assert sorted(p.channel for p in state.publications) == ["website", "wechat", "weibo"]
    rows = await driver.rows("publications")
    assert sorted(r["channel"] for r in rows) == ["website", "wechat", "weibo"]
    answer = {"responder_id": "chen.jing", "text": "已责令整改", "needs_formal_handling": False}
    await driver.to_post("p1", "initial_response", answer)
    await driver.until_post("p1", lambda p: p.status == "answered")
    await driver.accepted("close_incident", {"closed_by": "li.ming", "reason": "事态平息"})
    review = {
        "author_id": "li.ming",
        "what_happened": "a",
        "what_worked": "b",
        "what_to_change": "c",
    }
    await driver.accepted("submit_review", review)
    summary = await step("the incident's result", driver.result(), driver)
    assert summary.refused_signals == SIGNALS and summary.publications == 3
    largest = max(
        largest, (await step("the closed incident's state", read_state(driver), driver))[1]
    )
    assert largest < STATE_LIMIT, largest

    # Every run short, and there were several, each but the last continued as new.
    runs = await step("every run's history", load_runs(driver.client, handle.id), driver)
    assert len(runs) >= 3, f"{len(runs)} run(s)"
    lengths = [len(run.events) for run in runs]
    assert max(lengths) < EVENTS_LIMIT, lengths
    ends = [EventType.Name(run.events[-1].event_type) for run in runs]
    assert ends == [CONTINUED] * (len(runs) - 1) + [COMPLETED], list(
        zip(lengths, ends, strict=True)
    )

    # The audit across the runs: every line recorded once, in order; and `yuqing audit`
    # finds the PostgreSQL projection and a replay of every run in agreement with it.
    every_run = await step("the trail across runs", load_all_runs(driver.client, handle.id), driver)
    lines = recorded_trail(every_run)
    assert [line.seq for line in lines] == list(range(len(lines)))
    assert len(lines) == (await step("the trail total", driver.state(), driver)).trail_total
    env = {
        "TEMPORAL_ADDRESS": driver.client.service_client.config.target_host,
        "TEMPORAL_NAMESPACE": driver.client.namespace,
        "DATABASE_URL": settings.database_url or "",
    }
    incident_id = handle.id.removeprefix("incident-")
    arguments = [incident_id, "--output", str(tmp_path / "trail.md"), "--check", "--replay"]
    code, output = await yuqing_audit(arguments, env)
    assert code == 0, output
    assert ": matches" in output and "the same decisions" in output, output
    print(
        f"soak: {SIGNALS} signals sent in {flooded - began:.0f} s, decided by"
        f" {decided - began:.0f} s, closed and audited by {time.monotonic() - began:.0f} s;"
        f" {len(runs)} runs of {lengths} events; largest state answer {largest} bytes"
    )
