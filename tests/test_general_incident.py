"""A general incident: reported, assessed, approved by unit head and publicity lead, published."""

from __future__ import annotations

import hashlib
from datetime import timedelta

from starter import report_incident
from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from workflows.incident import IncidentWorkflow
from yuqing import incident_workflow_id
from yuqing.state import IncidentState


async def test_general_incident_approved_and_published_in_time(driver: IncidentDriver) -> None:
    state = await driver.start(report(sensitivity="important"))
    await _approved_and_published_in_time(driver, state)
    await driver.save_history("general_published_in_time")


async def test_general_incident_reported_as_intake_reports_it(driver: IncidentDriver) -> None:
    """The same incident started as production starts one: update-with-start, the report's
    `add_evidence` sent with the start (starter.report_incident). Its history (the replay
    tests') is the one whose first task takes an update beside the start."""
    incident = report(sensitivity="important")
    answer = await report_incident(driver.client, incident, driver.task_queue)
    assert answer.kind == "discovered" and not answer.refused
    driver.handle = driver.client.get_workflow_handle_for(
        IncidentWorkflow.run, incident_workflow_id(incident.incident_id)
    )
    state = await driver.until(lambda s: bool(s.deadlines))
    # The report sent with the start is the discovery's: its evidence is kept once.
    assert len(state.submissions) == 1 and len(state.evidence) == 2
    await _approved_and_published_in_time(driver, state)
    await driver.save_history("general_reported_with_start")


async def _approved_and_published_in_time(driver: IncidentDriver, state: IncidentState) -> None:
    """From the discovery on: assessed general, one draft approved, published, closed."""
    assert state.stage == "discovered"
    assert state.policy_version == "nanning-aic-2017-12-29/2"
    page = state.evidence[1]
    assert page.sha256 == hashlib.sha256("<html>原帖内容</html>".encode()).hexdigest()
    stored = {row["evidence_id"]: row for row in await driver.rows("evidence")}
    assert hashlib.sha256(stored[page.evidence_id]["content"]).hexdigest() == page.sha256
    due = {d.key: d.due_at - d.starts_at for d in state.deadlines}
    assert due == {"report_important": timedelta(hours=4), "publish_statement": timedelta(hours=24)}

    await driver.sleep(timedelta(hours=1))
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted(
        "submit_assessment", {"assessor_id": "li.ming", "comment": "local, few reposts"}
    )
    state = await driver.state()
    assert state.grade == "general"
    assert state.grade_criteria == []

    await driver.accepted(
        "submit_draft", {"author_id": "chen.jing", "text": "经核查，涉事超市已下架相关商品。"}
    )
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 1))
    state = await driver.until_published()

    assert {p.channel for p in state.publications} == {"website", "weibo", "wechat"}
    assert all(p.draft_version == 1 for p in state.publications)
    statuses = {d.key: d.status for d in state.deadlines}
    # Each approval step's own clock (the policy's per-step times) was met too.
    assert statuses == {
        "report_important": "met",
        "publish_statement": "met",
        "step.unit_head_approval.v1": "met",
        "step.publicity_lead_approval.v1": "met",
    }
    report_notice = next(n for n in state.notifications if n.kind == "report")
    assert "莫军 (分管副局长)" in report_notice.recipients
    assert "唐国 (局长, 领导小组组长)" in report_notice.recipients

    await driver.accepted("close_incident", {"closed_by": "li.ming", "reason": "事态平息"})
    await driver.accepted(
        "submit_review",
        {
            "author_id": "li.ming",
            "what_happened": "过期食品传言",
            "what_worked": "1小时内上报",
            "what_to_change": "加强巡查",
        },
    )
    summary = await driver.result()
    assert summary.grade == "general"
    assert summary.publications == 3
    assert summary.refused_signals == 0
    assert len(await driver.rows("publications")) == 3
