"""The incident's `console` memo, kept current for the lists (yuqing.listing), and its lights."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.driver import PATIENCE, UPWARD_REPORT, IncidentDriver, approval, report
from yuqing.listing import (
    MEMO_KEY,
    ClockMemo,
    IncidentMemo,
    Light,
    memo_of,
    memo_parts,
    read_memo,
)
from yuqing.state import DeadlineStatus


async def memo_until(
    driver: IncidentDriver, condition: Callable[[IncidentMemo], bool]
) -> IncidentMemo:
    assert driver.handle is not None
    loop = asyncio.get_running_loop()
    give_up = loop.time() + PATIENCE
    memo = None
    while loop.time() < give_up:
        description = await driver.handle.describe()
        memo = memo_of(await description.memo())
        if memo is not None and condition(memo):
            return memo
        await asyncio.sleep(0.05)
    raise AssertionError(f"the memo never got there: {memo}")


async def test_the_memo_follows_the_incident_and_names_no_person(driver: IncidentDriver) -> None:
    await driver.start(report())
    memo = await memo_until(driver, lambda m: m.stage == "discovered")
    assert memo.title == "网传西乡塘某超市销售过期食品" and memo.unit == "xixiangtang-branch"
    assert {c.key for c in memo.clocks} == {"report_important", "publish_statement"}
    assert all(c.remind_from is not None and c.remind_from < c.due_at for c in memo.clocks)

    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "情况通报"})
    memo = await memo_until(driver, lambda m: m.stage == "approving")
    assert memo.grade == "general" and memo.draft_version == 1 and memo.awaiting == ["unit_head"]
    report_clock = next(c for c in memo.clocks if c.key == "report_important")
    assert report_clock.status is DeadlineStatus.met

    await driver.accepted("unit_head_approval", approval("huang.wei", 1, "reject", "请补充"))
    memo = await memo_until(driver, lambda m: m.draft_status == "returned")
    assert memo.returned_reason == "请补充" and memo.awaiting == [] and memo.stage == "handling"

    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "情况通报（修改）"})
    await driver.accepted("unit_head_approval", approval("huang.wei", 2))
    memo = await memo_until(driver, lambda m: m.awaiting == ["publicity_lead"])
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 2))
    memo = await memo_until(driver, lambda m: m.stage == "monitoring")
    assert all(c.status is DeadlineStatus.met for c in memo.clocks)

    # Roles, units, versions and times only: no person's id is in the memo.
    text = memo.model_dump_json()
    for person in ("chen.jing", "huang.wei", "zhou.min", "li.ming"):
        assert person not in text
    await driver.save_history("console_memo_general")


def test_lights_of_a_clock() -> None:
    due = datetime(2026, 12, 1, 12, tzinfo=UTC)
    clock = ClockMemo(
        key="report_important",
        title="report deadline 4 h (important)",
        clock="calendar_hours",
        due_at=due,
        remind_from=due - timedelta(hours=2),
        status=DeadlineStatus.pending,
    )
    assert clock.light(due - timedelta(hours=3)) is Light.green
    assert clock.light(due - timedelta(hours=2)) is Light.yellow
    assert clock.light(due) is Light.red
    breached = clock.model_copy(update={"status": DeadlineStatus.breached})
    assert breached.light(due - timedelta(hours=3)) is Light.red
    met = clock.model_copy(update={"status": DeadlineStatus.met, "met_at": due})
    assert met.light(due + timedelta(days=1)) is Light.done
    late = clock.model_copy(update={"status": DeadlineStatus.met, "met_at": due + timedelta(1)})
    assert late.light(due) is Light.red
    waived = clock.model_copy(update={"status": DeadlineStatus.waived})
    assert waived.light(due) is Light.waived


def test_an_incident_without_the_memo_lists_without_it() -> None:
    assert read_memo(None) is None
    assert read_memo({"v": 99}) is None
    assert read_memo({"v": 1, "title": "missing fields"}) is None
    assert memo_of({}) is None
    assert memo_of({MEMO_KEY: {"v": 2, "title": "parts missing"}}) is None


def test_the_memo_reads_the_same_whole_or_in_parts() -> None:
    whole = IncidentMemo(
        title="网传某超市销售过期食品",
        stage="approving",
        grade="general",
        unit="xixiangtang-branch",
        sensitivity="important",
        discovered_at=datetime(2026, 12, 1, 9, 5, tzinfo=UTC),
        draft_version=1,
        draft_status="in_review",
        awaiting=["unit_head"],
        posts_open=0,
    ).model_dump(mode="json")
    parts = memo_parts(whole)
    assert parts[MEMO_KEY]["v"] == 2 and "stage" not in parts[MEMO_KEY]
    assert memo_of(parts) == memo_of({MEMO_KEY: whole}) == read_memo(whole)
