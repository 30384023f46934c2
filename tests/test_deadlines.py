"""Report and statement deadlines as durable timers: reminders before, escalation after."""

from __future__ import annotations

from datetime import timedelta

import pytest

from tests.driver import UPWARD_REPORT, IncidentDriver, report


@pytest.mark.parametrize(
    ("sensitivity", "key", "hours"),
    [("important", "report_important", 4), ("especially_major", "report_especially_major", 2)],
)
async def test_report_deadline_missed(
    driver: IncidentDriver, sensitivity: str, key: str, hours: int
) -> None:
    state = await driver.start(report(sensitivity=sensitivity))
    deadline = state.deadline(key)
    assert deadline is not None and deadline.due_at - state.discovered_at == timedelta(hours=hours)

    await driver.sleep(timedelta(hours=hours, minutes=1))
    state = await driver.until(lambda s: any(n.kind == "escalation" for n in s.notifications))

    deadline = state.deadline(key)
    assert deadline is not None
    assert deadline.status == "breached"
    assert deadline.breached_at is not None and deadline.breached_at >= deadline.due_at
    assert deadline.responsible_unit == "xixiangtang-branch"
    assert deadline.responsible_person == "huang.wei"
    escalation = next(n for n in state.notifications if n.kind == "escalation")
    assert set(escalation.recipients) == {"唐国 (局长, 领导小组组长)", "周敏 (新闻宣传分管领导)"}
    # Reminders went out at half time and one hour before.
    reminders = [n for n in state.notifications if n.kind == "reminder"]
    assert len(reminders) == (1 if hours == 2 else 2)
    assert any(e.kind == "deadline_breached" for e in state.trail)

    # A late report is still taken, and how late it was is on the record.
    await driver.accepted("submit_report", UPWARD_REPORT)
    state = await driver.state()
    deadline = state.deadline(key)
    assert deadline is not None and deadline.status == "breached"
    assert deadline.met_at is not None
    assert deadline.met_at - deadline.due_at >= timedelta(minutes=1)
    await driver.save_history(f"missed_{key}")


async def test_statement_deadline_missed(driver: IncidentDriver) -> None:
    await driver.start(report())
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "草稿"})

    await driver.sleep(timedelta(hours=24, minutes=1))
    state = await driver.until(
        lambda s: any(
            n.idempotency_key.endswith("publish_statement/escalation") for n in s.notifications
        )
    )
    statuses = {d.key: d.status for d in state.deadlines}
    # The draft also waited past its first step's own clock.
    assert statuses == {
        "report_important": "met",
        "publish_statement": "breached",
        "step.unit_head_approval.v1": "breached",
    }
    assert state.publications == []
    await driver.save_history("missed_publish_statement")
