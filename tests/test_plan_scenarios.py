"""The rest of the plan (issue 12), end to end on the time-skipping server: whether to respond,
interviews, a downgrade, late approvers, the leading group as a group, contacts."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from worker import create_worker
from yuqing.audit.compliance import DeadlineRow, deadlines_in, step_lateness
from yuqing.settings import Settings

DRAFT = {"author_id": "chen.jing", "text": "经核查，涉事超市已下架相关商品。"}
PLAN_HISTORIES = [
    "plan_no_response_then_duty_returns",
    "plan_interviews",
    "plan_downgrade_voids_approvals",
    "plan_late_publicity_lead",
    "plan_quorum_two_of_three",
    "plan_all_must_approve_rejected",
    "plan_contacts",
]


async def reported(driver: IncidentDriver, **assessment: object) -> None:
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming", **assessment})


async def outbox(driver: IncidentDriver, kind: str) -> list[asyncpg.Record]:
    return [r for r in await driver.rows("notification_outbox") if r["kind"] == kind]


# -- §4.3 whether to respond ------------------------------------------------------------------


async def test_no_response_approved_waives_the_statement_and_an_upgrade_brings_it_back(
    driver: IncidentDriver,
) -> None:
    await driver.start(report(metrics={"weibo_reposts": 3}))
    await reported(driver, response_needed=False, response_reason="系商户间纠纷，不涉及本局职能")
    state = await driver.until(
        lambda s: any(n.kind == "response_waiver_asked" for n in s.notifications)
    )
    asked = next(n for n in state.notifications if n.kind == "response_waiver_asked")
    assert asked.recipients == ["周敏 (新闻宣传分管领导)"]
    assert state.deadline("publish_statement").status == "pending"  # type: ignore[union-attr]

    # The Office cannot waive it alone; the publicity lead can, for a general incident.
    refused = await driver.refused(
        "no_response_approval", {"approver_id": "li.ming", "decision": "approve"}
    )
    assert "publicity_lead" in refused.detail
    await driver.accepted(
        "no_response_approval",
        {"approver_id": "zhou.min", "decision": "approve", "comment": "同意"},
    )
    state = await driver.state()
    assert state.stage == "monitoring"
    assert state.deadline("publish_statement").status == "waived"  # type: ignore[union-attr]

    # A day passes: the waived deadline is not breached, nobody is escalated to.
    await driver.sleep(timedelta(hours=25))
    state = await driver.state()
    assert state.deadline("publish_statement").status == "waived"  # type: ignore[union-attr]
    assert not [
        n for n in state.notifications if "publish_statement/escalation" in n.idempotency_key
    ]

    # New figures upgrade it: the duty comes back with a fresh 24 h from that moment.
    await driver.accepted(
        "update_metrics", {"reported_by": "li.ming", "source": "weibo-monitor", "weibo_reposts": 26}
    )
    state = await driver.until(lambda s: s.deadline("publish_statement#2") is not None)
    assert state.grade == "major" and state.stage == "handling"
    assert state.response is not None and state.response.status == "duty_returned"
    again = state.deadline("publish_statement#2")
    assert again is not None and again.status == "pending"
    assert again.due_at - again.starts_at == timedelta(hours=24)
    assert again.starts_at > state.discovered_at + timedelta(hours=25)
    assert any(e.kind == "response_duty_returned" for e in state.trail)

    await driver.accepted("submit_draft", DRAFT)
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    await driver.accepted("section_head_review", approval("wu.hua", 1))
    await driver.accepted("leadership_group_approval", approval("tang.guo", 1))
    state = await driver.until_published()
    assert state.deadline("publish_statement#2").status == "met"  # type: ignore[union-attr]
    assert state.deadline("publish_statement").status == "waived"  # type: ignore[union-attr]
    await driver.save_history("plan_no_response_then_duty_returns")


# -- §4.4 interviews --------------------------------------------------------------------------


def interview(interview_id: str, who: str = "huang.wei") -> dict[str, object]:
    return {
        "requested_by": "li.ming",
        "interview_id": interview_id,
        "interviewee": who,
        "medium": "南宁电视台《新闻夜班车》",
        "scheduled_at": "2026-12-08T15:00:00+08:00",
        "topic": "涉事超市的核查与处理结果",
    }


async def test_interviews_authorised_refused_and_held_without_authorisation(
    driver: IncidentDriver,
) -> None:
    state = await driver.start(report())
    now = state.discovered_at

    await driver.accepted("request_interview", interview("i1"))
    refused = await driver.refused(
        "interview_decision", {"decided_by": "li.ming", "interview_id": "i1", "decision": "approve"}
    )
    assert refused.refusal_kind == "forbidden"
    await driver.accepted(
        "interview_decision",
        {"decided_by": "tang.guo", "interview_id": "i1", "decision": "approve", "comment": "可以"},
    )
    await driver.sleep(timedelta(hours=2))
    await driver.accepted(
        "interview_held",
        {
            "reported_by": "li.ming",
            "interview_id": "i1",
            "held_at": (now + timedelta(hours=2)).isoformat(),
            "summary": "介绍了核查结果",
        },
    )

    await driver.accepted("request_interview", interview("i2", "chen.jing"))
    await driver.accepted(
        "interview_decision",
        {"decided_by": "tang.guo", "interview_id": "i2", "decision": "reject", "comment": "待查清"},
    )
    await driver.accepted(
        "interview_held",
        {
            "reported_by": "li.ming",
            "interview_id": "i2",
            "held_at": (now + timedelta(hours=2)).isoformat(),
            "summary": "仍接受了采访",
        },
    )
    # Never asked for at all; the unit head answers for it.
    await driver.accepted(
        "interview_held",
        {
            "reported_by": "li.ming",
            "interviewee": "某分局工作人员",
            "medium": "某自媒体",
            "held_at": (now + timedelta(hours=1)).isoformat(),
            "summary": "擅自接受电话采访",
            "responsible_id": "huang.wei",
        },
    )
    state = await driver.until(
        lambda s: len([n for n in s.notifications if n.kind == "breach"]) == 2
    )
    assert [i.status for i in state.interviews] == [
        "held",
        "held_unauthorised",
        "held_unauthorised",
    ]
    assert [(b.person, b.unit) for b in state.breaches] == [
        ("chen.jing", "xixiangtang-branch"),
        ("huang.wei", "xixiangtang-branch"),
    ]
    assert all(b.rule.startswith("§4.4") for b in state.breaches)
    breaches = [e for e in state.trail if e.kind == "breach"]
    assert "chen.jing" in breaches[0].detail and "refused" in breaches[0].detail
    assert "never asked for" in breaches[1].detail
    assert len(await outbox(driver, "breach")) == 2
    await driver.save_history("plan_interviews")


# -- downgrade --------------------------------------------------------------------------------


async def test_downgrade_by_the_leading_group_voids_approvals_of_the_old_chain(
    driver: IncidentDriver,
) -> None:
    await driver.start(report())
    await reported(driver, large_image_effect=True, comment="涉及全市")
    await driver.accepted("submit_draft", DRAFT)
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    await driver.accepted("section_head_review", approval("wu.hua", 1))

    refused = await driver.refused("downgrade", {"decided_by": "zhou.min", "reason": "影响有限"})
    assert refused.refusal_kind == "forbidden"
    entry = await driver.accepted(
        "downgrade", {"decided_by": "tang.guo", "reason": "经核实影响仅限西乡塘区"}
    )
    assert entry.kind == "downgraded" and entry.role == "leadership_group"
    state = await driver.state()
    assert state.grade == "general"
    assert (state.grade_history[-1].grade, state.grade_history[-1].by) == ("general", "tang.guo")
    void = {a.signal: (a.void, a.void_reason) for a in state.approvals}
    assert void["unit_head_approval"] == (False, None)
    assert void["section_head_review"][0] is True
    # The general chain now: the leading group's approval is not part of it, the publicity
    # lead's is, and the unit head's signature still stands.
    refused = await driver.refused("leadership_group_approval", approval("tang.guo", 1))
    assert "not part of the general chain" in refused.detail
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 1))
    state = await driver.until_published()
    assert state.publications
    await driver.save_history("plan_downgrade_voids_approvals")


# -- late approvers (§5.2, §5.4) --------------------------------------------------------------


async def test_a_draft_left_at_the_publicity_leads_step_is_reminded_then_escalated(
    driver: IncidentDriver,
) -> None:
    await driver.start(report())
    await reported(driver)
    await driver.accepted("submit_draft", DRAFT)
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    state = await driver.until(lambda s: s.deadline("step.publicity_lead_approval.v1") is not None)
    step = state.deadline("step.publicity_lead_approval.v1")
    assert step is not None
    # The Nanning policy: reminded after 2 h, escalated to the leading group's head after 4 h.
    assert step.reminders_at == [step.starts_at + timedelta(hours=2)]
    assert step.due_at == step.starts_at + timedelta(hours=4)

    await driver.sleep(timedelta(hours=2, minutes=1))
    key = "deadline/step.publicity_lead_approval.v1"
    state = await driver.until(
        lambda s: any(n.idempotency_key.endswith(f"{key}/reminder-1") for n in s.notifications)
    )
    reminder = next(
        n for n in state.notifications if n.idempotency_key.endswith(f"{key}/reminder-1")
    )
    assert reminder.recipients == ["周敏 (新闻宣传分管领导)"]
    assert not any(n.idempotency_key.endswith(f"{key}/escalation") for n in state.notifications)

    await driver.sleep(timedelta(hours=2))
    state = await driver.until(
        lambda s: any(n.idempotency_key.endswith(f"{key}/escalation") for n in s.notifications)
    )
    escalation = next(
        n for n in state.notifications if n.idempotency_key.endswith(f"{key}/escalation")
    )
    assert escalation.recipients == ["唐国 (局长, 领导小组组长)"]
    step = state.deadline("step.publicity_lead_approval.v1")
    assert step is not None and step.status == "breached"
    assert step.breached_at is not None and step.breached_at >= step.due_at
    # The unit's own 24 h still runs: the step, not the unit, is late.
    assert state.deadline("publish_statement").status == "pending"  # type: ignore[union-attr]

    await driver.sleep(timedelta(minutes=30))
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 1))
    state = await driver.until_published()
    step = state.deadline("step.publicity_lead_approval.v1")
    assert step is not None and step.met_at is not None
    assert timedelta(minutes=30) <= step.met_at - step.due_at < timedelta(minutes=32)
    assert state.deadline("publish_statement").status == "met"  # type: ignore[union-attr]

    # The compliance report shows it as the publicity lead's own lateness. (The projection
    # copies the deadlines as the trail goes: wait until it has the publication's.)
    window = (step.starts_at - timedelta(days=1), step.due_at + timedelta(days=1))

    async def projected() -> list[DeadlineRow]:
        rows = await deadlines_in(driver.pool, *window)
        return [r for r in rows if r.incident_id == state.incident_id]

    rows = await projected()
    for _ in range(200):
        if any(r.key == "publish_statement" and r.outcome == "met" for r in rows):
            break
        await asyncio.sleep(0.05)
        rows = await projected()
    [late] = [r for r in rows if r.is_step and r.outcome == "met_late"]
    assert (late.kind, late.responsible_unit, late.responsible_person) == (
        "step.publicity_lead_approval",
        "publicity_lead",
        "zhou.min",
    )
    [line] = [s for s in step_lateness(rows) if s.step == "step.publicity_lead_approval"]
    assert (line.person, line.waits, line.escalated) == ("zhou.min", 1, 1)
    unit = [r for r in rows if r.key == "publish_statement"]
    assert [r.outcome for r in unit] == ["met"]
    await driver.save_history("plan_late_publicity_lead")


# -- the leading group as a group (§3, §5.1) --------------------------------------------------


def group_files(tmp_path: Path, settings: Settings, decides: str) -> Settings:
    """The Nanning policy with the leading group deciding as `decides` for major incidents,
    and a roster with three more members of the group (the deputy head and two unit heads)."""
    policy = settings.policy_path.read_text(encoding="utf-8")
    head = '[leading_group.major]\ndecides = "head"'
    assert head in policy
    policy = policy.replace(head, f"[leading_group.major]\n{decides}")
    policy = policy.replace('version = "nanning-aic-2017-12-29/2"', 'version = "test-group/1"')
    roster = settings.roster_path.read_text(encoding="utf-8")
    for person, grants in (
        ("zhou.min", '[{ role = "publicity_lead" }'),
        ("liu.yang", '[{ role = "unit_head", unit = "qingxiu-branch" }'),
    ):
        assert grants in roster, person
        roster = roster.replace(grants, f'{grants}, {{ role = "leadership_group" }}', 1)
    roster += (
        '\n[[people]]\nid = "qin.fang"\nname = "覃芳 (12315中心主任)"\n'
        'email = "qin.fang@aic.example"\nroles = [{ role = "leadership_group" }]\n'
    )
    (tmp_path / "policy.toml").write_text(policy, encoding="utf-8")
    (tmp_path / "roster.toml").write_text(roster, encoding="utf-8")
    return replace(
        settings, policy_path=tmp_path / "policy.toml", roster_path=tmp_path / "roster.toml"
    )


@pytest.fixture
async def group_driver(
    request: pytest.FixtureRequest,
    env: WorkflowEnvironment,
    pool: asyncpg.Pool,
    settings: Settings,
    tmp_path: Path,
) -> AsyncIterator[IncidentDriver]:
    own = group_files(tmp_path, settings, request.param)
    task_queue = f"test-{uuid.uuid4()}"
    async with create_worker(env.client, pool, own, task_queue=task_queue):
        driver = IncidentDriver(env, pool, task_queue)
        yield driver
        await driver.terminate_if_running()


async def chosen_and_reviewed(driver: IncidentDriver) -> None:
    await driver.start(report())
    await reported(driver, large_image_effect=True)
    entry = await driver.accepted(
        "choose_group_members",
        {
            "chosen_by": "tang.guo",
            "members": ["tang.guo", "zhou.min", "liu.yang"],
            "reason": "涉及食品安全与青秀区",
        },
    )
    assert entry.role == "leadership_group_head"
    await driver.accepted("submit_draft", DRAFT)
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    await driver.accepted("section_head_review", approval("wu.hua", 1))


@pytest.mark.parametrize("group_driver", ['decides = "quorum"\nquorum = 2'], indirect=True)
async def test_a_quorum_of_two_of_three_chosen_members_approves(
    group_driver: IncidentDriver,
) -> None:
    driver = group_driver
    await chosen_and_reviewed(driver)
    state = await driver.until(lambda s: any(n.kind == "group_members" for n in s.notifications))
    assert state.group_choice is not None
    [chosen] = await outbox(driver, "group_members")
    assert chosen["recipients"].count('"id"') == 3

    # A member of the group not chosen for this incident has no vote on it.
    refused = await driver.refused("leadership_group_approval", approval("qin.fang", 1))
    assert "not among the leading group's members for this incident" in refused.detail
    first = await driver.accepted(
        "leadership_group_approval", approval("zhou.min", 1, comment="同意")
    )
    assert first.kind == "group_vote" and "1 approval(s)" in first.detail
    assert (await driver.state()).current_draft.status == "in_review"  # type: ignore[union-attr]
    await driver.accepted("leadership_group_approval", approval("liu.yang", 1))
    state = await driver.until_published()
    record = [a for a in state.approvals if a.role == "leadership_group"]
    assert len(record) == 1 and "2 of 3 members" in record[0].comment
    await driver.save_history("plan_quorum_two_of_three")


@pytest.mark.parametrize("group_driver", ['decides = "all"'], indirect=True)
async def test_one_rejection_ends_the_wait_when_all_must_approve(
    group_driver: IncidentDriver,
) -> None:
    driver = group_driver
    await chosen_and_reviewed(driver)
    await driver.accepted("leadership_group_approval", approval("tang.guo", 1))
    await driver.accepted(
        "leadership_group_approval", approval("zhou.min", 1, "reject", "口径与通报不一致")
    )
    # The third member has not voted, and need not: the draft is back with the unit now.
    state = await driver.until(lambda s: any(n.kind == "draft_returned" for n in s.notifications))
    draft = state.current_draft
    assert draft is not None and draft.status == "returned"
    assert "口径与通报不一致" in (draft.returned_reason or "")
    assert state.stage == "handling"
    refused = await driver.refused("leadership_group_approval", approval("liu.yang", 1))
    assert "returned" in refused.detail
    step = state.deadline("step.leadership_group_approval.v1")
    assert step is not None and step.status == "met"
    await driver.save_history("plan_all_must_approve_rejected")


# -- §4.4 contacts ----------------------------------------------------------------------------


async def test_a_contact_is_recorded_and_the_emergency_office_notified_once(
    driver: IncidentDriver,
) -> None:
    state = await driver.start(report())
    await driver.accepted(
        "record_contact",
        {
            "recorded_by": "li.ming",
            "department": "propaganda_department",
            "contacted_at": state.discovered_at.isoformat(),
            "contact_person": "网络舆情处王科长",
            "said": "通报了事件经过与下一步处置",
        },
    )
    notice = {
        "requested_by": "li.ming",
        "department": "emergency_office",
        "message": "西乡塘区某超市涉嫌销售过期食品，我局已下架涉事商品并立案调查。",
        "request_id": "emergency-1",
    }
    entry = await driver.accepted("notify_department", notice)
    assert entry.kind == "department_notice" and entry.role == "office"
    # Sent again, the same request is refused: nothing goes out twice.
    again = await driver.refused("notify_department", notice)
    assert "already" in again.detail
    state = await driver.until(
        lambda s: any(n.kind == "department_notice" for n in s.notifications)
    )
    await driver.settle()
    rows = await outbox(driver, "department_notice")
    assert len(rows) == 1 and "市应急办" in rows[0]["recipients"]
    state = await driver.state()
    assert [n.recipients for n in state.notifications if n.kind == "department_notice"] == [
        ["市应急办"]
    ]
    contact = state.contacts[0]
    assert (contact.department_name, contact.recorded_by) == ("市委宣传部网络舆情处", "li.ming")
    lines = [e for e in state.trail if e.kind in ("contact", "department_notice")]
    assert [(e.actor, e.role) for e in lines] == [("li.ming", "office"), ("li.ming", "office")]
    await driver.save_history("plan_contacts")
