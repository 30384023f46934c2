"""A long incident's runs stay near 1,000 events on a server that tells a history's length
(the dev server): each run continues as new soon past it, whatever the bound on decisions,
and the runs replay as they ran (patches replay-shorter-runs and replay-runs-of-1000;
workflows.incident CONTINUE_AFTER_EVENTS says why)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace

import asyncpg
import pytest
from temporalio.api.enums.v1 import EventType

from tests.driver import IncidentDriver, report
from worker import create_worker
from workflows.incident import CONTINUE_AFTER_EVENTS
from yuqing.audit.history import load_runs, replay
from yuqing.client import connect
from yuqing.settings import Settings
from yuqing.stack import TemporalDevServer

# Figures sent one by one (about ten events each: the update, its task, the trail's copy).
UPDATES = 140
# A run continues at its first decision past the bound: a task or two later.
OVERSHOOT = 60


@pytest.fixture
async def on_dev_server(
    dev_server: TemporalDevServer, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[IncidentDriver]:
    client = await connect(
        replace(
            settings,
            temporal_address=dev_server.address,
            temporal_namespace=dev_server.namespace,
        )
    )
    task_queue = f"test-{uuid.uuid4()}"
    # The decisions' bound far away: only the history's length makes it continue.
    own = replace(settings, continue_after_decisions=100_000)
    async with create_worker(client, pool, own, task_queue=task_queue):
        incident = IncidentDriver(client, pool, task_queue)
        yield incident
        await incident.terminate_if_running()


async def test_a_long_incident_continues_as_new_near_a_thousand_events(
    on_dev_server: IncidentDriver,
) -> None:
    driver = on_dev_server
    await driver.start(report())
    assert driver.handle is not None
    for number in range(UPDATES):
        figures = {"source": f"weibo-monitor reading {number}", "reported_by": "li.ming"}
        await driver.accepted("update_metrics", {**figures, "weibo_reposts": 6})
    state = await driver.state()
    assert state.metrics.weibo_reposts == 6

    runs = await load_runs(driver.client, driver.handle.id)
    lengths = [len(run.events) for run in runs]
    assert len(runs) >= 2, lengths
    for run in runs[:-1]:
        assert run.events[-1].event_type == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        assert CONTINUE_AFTER_EVENTS < len(run.events) <= CONTINUE_AFTER_EVENTS + OVERSHOOT, lengths
    # Each run replays to the decisions it made.
    for run in runs:
        replayed = await replay(run)
        assert replayed.error is None, replayed.error
