"""A major incident: three-step chain, and the mandatory propaganda + police notice (§5.2)."""

from __future__ import annotations

from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report


async def test_major_incident_three_step_chain_and_mandatory_notice(
    driver: IncidentDriver,
) -> None:
    await driver.start(report(sensitivity="especially_major", metrics={"weibo_reposts": 35}))
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted(
        "submit_assessment",
        {"assessor_id": "li.ming", "mainstream_media_exposure": True, "comment": "广西日报转载"},
    )
    state = await driver.until(lambda s: any(n.kind == "major_notice" for n in s.notifications))
    assert state.grade == "major"
    assert any(c.startswith("weibo_reposts: 35") for c in state.grade_criteria)
    assert any(c.startswith("mainstream_media_exposure") for c in state.grade_criteria)
    notice = next(n for n in state.notifications if n.kind == "major_notice")
    assert set(notice.recipients) == {"市委宣传部网络舆情处", "市公安局网安支队"}

    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "情况通报（第1版）"})
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    # The publicity lead approves general incidents only; in a major one the leading group does.
    refusal = await driver.refused("publicity_lead_approval", approval("zhou.min", 1))
    assert "not part of the major chain" in refusal.detail
    # The leading group cannot skip the section head's review.
    refusal = await driver.refused("leadership_group_approval", approval("tang.guo", 1))
    assert "section head reviews must come before leading group approves" in refusal.detail
    await driver.accepted("section_head_review", approval("wu.hua", 1, comment="审核通过"))
    assert not (await driver.state()).publications
    await driver.accepted("leadership_group_approval", approval("tang.guo", 1))
    state = await driver.until_published()

    assert len(state.publications) == 3
    roles = [a.role for a in state.approvals if a.decision == "approve"]
    assert roles == ["unit_head", "section_head", "leadership_group"]
    assert {d.key: d.status for d in state.deadlines} == {
        "report_especially_major": "met",
        "publish_statement": "met",
        "step.unit_head_approval.v1": "met",
        "step.section_head_review.v1": "met",
        "step.leadership_group_approval.v1": "met",
    }
    # The Office may not close a major incident; the leading group does.
    await driver.refused("close_incident", {"closed_by": "li.ming", "reason": "平息"})
    await driver.accepted("close_incident", {"closed_by": "tang.guo", "reason": "舆情平息"})
    await driver.accepted(
        "submit_review",
        {
            "author_id": "zhou.min",
            "what_happened": "过期食品",
            "what_worked": "2小时内报告",
            "what_to_change": "加强监测",
        },
    )
    summary = await driver.result()
    assert summary.grade == "major"
    assert summary.refused_signals == 3
    outbox = await driver.rows("notification_outbox")
    assert len([r for r in outbox if r["kind"] == "major_notice"]) == 1
    await driver.save_history("major_three_step_chain")


async def test_upgrade_from_general_to_major_by_reposts(driver: IncidentDriver) -> None:
    await driver.start(report(metrics={"weibo_reposts": 3}))
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "通报"})
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    assert (await driver.state()).grade == "general"

    figures = {"source": "weibo-monitor", "reported_by": "li.ming"}
    await driver.accepted("update_metrics", {**figures, "weibo_reposts": 19})
    assert (await driver.state()).grade == "general"
    await driver.accepted("update_metrics", {**figures, "weibo_reposts": 20})
    state = await driver.until(lambda s: any(n.kind == "major_notice" for n in s.notifications))

    assert state.grade == "major"
    assert state.grade_criteria == ["weibo_reposts: 20 reposts (threshold 20)"]
    upgrade = state.grade_history[-1]
    assert (upgrade.grade, upgrade.by) == ("major", "automatic")
    assert [g.grade for g in state.grade_history] == ["general", "major"]
    # The chain is now the major one: the publicity lead's approval no longer completes it.
    await driver.refused("publicity_lead_approval", approval("zhou.min", 1))
    await driver.accepted("section_head_review", approval("wu.hua", 1))
    await driver.accepted("leadership_group_approval", approval("tang.guo", 1))
    state = await driver.until_published()
    assert len(state.publications) == 3
    await driver.save_history("upgrade_by_reposts")
