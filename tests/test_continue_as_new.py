"""An incident that continues as new keeps everything: its state, its clocks (no reminder sent
twice), its posts (which run on by themselves), what it had under way, and its whole trail,
read back across the runs. A worker whose bound is small makes it continue often."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from typing import Any

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from worker import create_worker
from yuqing.audit.history import (
    REPLAY_CLOCK_SLACK,
    TrailLine,
    compare,
    load_history,
    load_runs,
    recorded_trail,
    replay,
)
from yuqing.audit.projection import projected_trail
from yuqing.settings import Settings
from yuqing.state import IncidentState

BOUND = 25


@pytest.fixture
async def continuing(
    env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[IncidentDriver]:
    task_queue = f"test-{uuid.uuid4()}"
    own = replace(settings, continue_after_decisions=BOUND)
    async with create_worker(env.client, pool, own, task_queue=task_queue):
        incident = IncidentDriver(env, pool, task_queue)
        yield incident
        await incident.terminate_if_running()


# The fields the plan's rules keep in the state (yuqing/rules): all carried across runs.
PLAN_FIELDS = (
    "calendar_version",
    "response",
    "interviews",
    "breaches",
    "group_choice",
    "group_votes",
    "group_decided",
    "contacts",
    "department_notices",
    "overruled_criteria",
    "planning",
    "drill",
)


def plan_fields(state: IncidentState) -> dict[str, Any]:
    return state.model_dump(mode="json", include=set(PLAN_FIELDS))


async def refusals(driver: IncidentDriver, count: int) -> None:
    for number in range(count):
        entry = await driver.send("approve_everything", {"number": number})
        assert entry.refused


async def test_an_incident_continued_as_new_keeps_its_state_clocks_posts_and_trail(
    continuing: IncidentDriver,
) -> None:
    driver = continuing
    await driver.start(report())
    assert driver.handle is not None
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "通报"})
    post = {
        "post_id": "p1",
        "platform": "微博",
        "author": "网友甲",
        "content": "什么时候整改？",
        "received_by": "chen.jing",
    }
    await driver.accepted("netizen_post", post)
    await driver.until_post("p1", lambda p: bool(p.deadlines))
    before = plan_fields(await driver.state())
    assert len(before) == len(PLAN_FIELDS) and before["calendar_version"], before
    await refusals(driver, BOUND + 5)
    assert len(await load_runs(driver.client, driver.handle.id)) >= 2
    # The plan's own fields went across as they were (refusals change none of them).
    assert plan_fields(await driver.state()) == before

    # The statement's first reminder (half of 24 h) comes once, in whichever run it falls.
    await driver.sleep(timedelta(hours=13))
    state = await driver.until(lambda s: any(n.kind == "reminder" for n in s.notifications))
    await refusals(driver, BOUND + 5)
    await driver.sleep(timedelta(hours=2))
    state = await driver.state()
    reminders = [n for n in state.notifications if n.kind == "reminder"]
    # (Each reminder once: the statement's, and the unit head's step clock's, issue 12.)
    keys = [n.idempotency_key for n in reminders]
    assert len(keys) == len(set(keys)), keys
    statement_reminders = [k for k in keys if "/publish_statement/" in k]
    assert [k.rsplit("/", 1)[-1] for k in statement_reminders] == ["reminder-1"]
    statement = state.deadline("publish_statement")
    assert statement is not None and statement.reminders_sent == [1]

    # The post started by the first run is answered in a later one, and the incident sees it.
    answer = {"responder_id": "chen.jing", "text": "已整改", "needs_formal_handling": False}
    entry = await driver.to_post("p1", "initial_response", answer)
    assert not entry.refused
    await driver.until_post("p1", lambda p: p.status == "answered")

    # The state went across whole: the chain continues where it was.
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 1))
    state = await driver.until_published()
    assert sorted(p.channel for p in state.publications) == ["website", "wechat", "weibo"]
    assert len(await driver.rows("publications")) == 3
    await driver.accepted("close_incident", {"closed_by": "li.ming", "reason": "平息"})
    review = {
        "author_id": "li.ming",
        "what_happened": "a",
        "what_worked": "b",
        "what_to_change": "c",
    }
    await driver.accepted("submit_review", review)
    summary = await driver.result()
    assert summary.refused_signals == 2 * (BOUND + 5) and summary.publications == 3

    runs = await load_runs(driver.client, driver.handle.id)
    assert len(runs) >= 3
    history = await load_history(driver.client, driver.handle.id)
    lines = recorded_trail(history)
    assert [line.seq for line in lines] == list(range(len(lines)))
    assert lines[0].kind == "discovered" and lines[-1].kind == "stage"
    projected = await projected_trail(driver.pool, driver.handle.id)
    assert compare(lines, [TrailLine(**row) for row in projected]) == []
    replayed = await replay(history)
    assert replayed.error is None
    # Within the slack `yuqing audit --replay` allows (REPLAY_CLOCK_SLACK: the SDK hands a
    # signal that came before a heartbeat's task to the next one, a few ms later); the
    # projection above, a copy of the history, matches it exactly.
    diffs = compare(lines, replayed.trail, clock_slack=REPLAY_CLOCK_SLACK)
    assert diffs == [], "\n".join(repr(d) for d in diffs)
    await driver.save_runs("continued_as_new")
