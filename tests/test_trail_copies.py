"""The trail's copies to PostgreSQL (patch `speed-settled-copies`): one per decision and what it
sent, and the clocks planned locally. That a channel that is down holds no copy back is shown in
tests/test_delivery_outages.py."""

from __future__ import annotations

from temporalio.api.enums.v1 import EventType

from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from yuqing.audit.history import load_history, recorded_trail
from yuqing.audit.projection import projected_trail

MARKER = EventType.EVENT_TYPE_MARKER_RECORDED
SCHEDULED = EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED


async def test_a_general_incident_copies_each_decision_once_with_what_it_sent(
    driver: IncidentDriver,
) -> None:
    await driver.start(report(sensitivity="important"))
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming", "comment": "local"})
    await driver.accepted(
        "submit_draft", {"author_id": "chen.jing", "text": "经核查，涉事超市已下架相关商品。"}
    )
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 1))
    await driver.until_published()
    await driver.accepted("close_incident", {"closed_by": "li.ming", "reason": "事态平息"})
    review = {"what_happened": "传言", "what_worked": "及时上报", "what_to_change": "加强巡查"}
    await driver.accepted("submit_review", {"author_id": "li.ming", **review})
    await driver.result()
    assert driver.handle is not None

    history = await load_history(driver.client, driver.handle.id)
    scheduled = [
        e.activity_task_scheduled_event_attributes.activity_type.name
        for e in history.events
        if e.event_type == SCHEDULED
    ]
    # Eight decisions (the report, seven signals), three notices, three publications: before the
    # patch, a copy for nearly each of them (9 in the bench's lifecycle); now fewer than one
    # a decision, and the step clocks are no activity.
    assert scheduled.count("record_trail") < 8
    assert "plan_clock" not in scheduled
    markers = [e for e in history.events if e.event_type == MARKER]
    assert any(
        m.marker_recorded_event_attributes.marker_name == "core_local_activity" for m in markers
    )
    # Every line is in the table, as the history recorded it, in order and once.
    table = await projected_trail(driver.pool, driver.handle.id)
    recorded = recorded_trail(history)
    assert [row["seq"] for row in table] == list(range(len(recorded)))
    assert [row["kind"] for row in table] == [line.kind for line in recorded]
    assert {"notified", "published", "approval"} <= {line.kind for line in recorded}
