"""The rules of issue 12 decided without a server: each rule's edges, quickly.

The time-skipping tests (tests/test_plan_*.py) show the same rules end to end, with timers.
"""

from __future__ import annotations

from datetime import timedelta

from tests.plan_support import (
    MEMBERS,
    UPWARD_REPORT,
    Story,
    approval,
    group_policy,
    group_roster,
)
from yuqing.outcomes import Notify, PlanClock, Publish
from yuqing.rules import DRILL_MARK
from yuqing.state import DrillInfo

DRAFT = {"author_id": "chen.jing", "text": "情况通报"}


def notices(story: Story, kind: str) -> list[Notify]:
    return [e for e in story.effects if isinstance(e, Notify) and e.kind == kind]


# -- respond or not ---------------------------------------------------------------------------


def test_no_response_needs_its_reason() -> None:
    story = Story()
    story.ok("submit_report", UPWARD_REPORT)
    refusal = story.no("submit_assessment", {"assessor_id": "li.ming", "response_needed": False})
    assert "response_reason" in refusal


def test_no_response_waives_the_statement_deadline_only_when_approved() -> None:
    story = Story().reported_and_assessed(
        response_needed=False, response_reason="不涉及本局职能，系商户纠纷"
    )
    statement = story.state.deadline("publish_statement")
    assert statement is not None and statement.status == "pending"
    assert story.state.response is not None and story.state.response.status == "awaiting_waiver"
    asked = notices(story, "response_waiver_asked")
    assert [n.roles for n in asked] == [["publicity_lead"]]

    # Only the approver the grade requires: the publicity lead for a general incident.
    refusal = story.no("no_response_approval", {"approver_id": "li.ming", "decision": "approve"})
    assert "publicity_lead" in refusal
    story.ok("no_response_approval", {"approver_id": "zhou.min", "decision": "approve"})
    statement = story.state.deadline("publish_statement")
    assert statement is not None and statement.status == "waived"
    assert story.state.stage == "monitoring"
    assert story.lines("deadline_waived") == [
        "statement deadline 24 h waived: no response needed, approved by zhou.min (publicity_lead)"
    ]
    # Monitoring: the Office may close a general incident without a statement.
    story.ok("close_incident", {"closed_by": "li.ming", "reason": "舆情平息"})


def test_refused_waiver_leaves_the_duty() -> None:
    story = Story().reported_and_assessed(response_needed=False, response_reason="影响小")
    story.ok(
        "no_response_approval",
        {"approver_id": "zhou.min", "decision": "reject", "comment": "须回应"},
    )
    assert story.state.response is not None and story.state.response.status == "waiver_refused"
    assert story.state.deadline("publish_statement").status == "pending"  # type: ignore[union-attr]
    assert story.no("no_response_approval", {"approver_id": "zhou.min", "decision": "approve"})


def test_duty_returns_on_upgrade_with_a_fresh_clock() -> None:
    story = Story().reported_and_assessed(response_needed=False, response_reason="影响小")
    story.ok("no_response_approval", {"approver_id": "zhou.min", "decision": "approve"})
    story.later(300).ok(
        "update_metrics", {"reported_by": "li.ming", "source": "weibo-monitor", "weibo_reposts": 5}
    )
    assert story.state.response.status == "waived"  # type: ignore[union-attr]
    story.later(60).ok(
        "update_metrics", {"reported_by": "li.ming", "source": "weibo-monitor", "weibo_reposts": 30}
    )
    assert story.state.grade == "major"
    assert story.state.response.status == "duty_returned"  # type: ignore[union-attr]
    assert story.state.stage == "handling"
    again = story.state.deadline("publish_statement#2")
    assert again is not None and again.status == "pending"
    assert again.starts_at == story.now and again.due_at - story.now == timedelta(hours=24)
    # The first stays waived, not breached; the publication meets the new one.
    assert story.state.deadline("publish_statement").status == "waived"  # type: ignore[union-attr]
    story.ok("submit_draft", DRAFT)
    story.ok("unit_head_approval", approval("huang.wei"))
    story.ok("section_head_review", approval("wu.hua"))
    outcome = story.ok("leadership_group_approval", approval("tang.guo"))
    assert Publish(draft_version=1) in outcome.effects


def test_major_waiver_needs_the_leading_group() -> None:
    story = Story().reported_and_assessed(
        large_image_effect=True, response_needed=False, response_reason="已澄清"
    )
    assert "leadership_group" in story.no(
        "no_response_approval", {"approver_id": "zhou.min", "decision": "approve"}
    )
    story.ok("no_response_approval", {"approver_id": "tang.guo", "decision": "approve"})
    assert story.state.deadline("publish_statement").status == "waived"  # type: ignore[union-attr]


# -- interviews -------------------------------------------------------------------------------

INTERVIEW = {
    "requested_by": "li.ming",
    "interviewee": "huang.wei",
    "medium": "南宁电视台",
    "scheduled_at": "2026-12-07T15:00:00+08:00",
    "topic": "超市过期食品的核查结果",
}


def held_without_authorisation(story: Story) -> dict[str, str]:
    """interview i1's `interview_held`, reported now, when it had no authorisation."""
    return {
        "reported_by": "li.ming",
        "interview_id": "i1",
        "held_at": story.now.isoformat(),
        "summary": "擅自接受采访",
    }


def test_interview_authorised_then_held() -> None:
    story = Story()
    story.ok("request_interview", INTERVIEW)
    assert story.state.interviews[0].interview_id == "i1"
    assert "is not leadership_group" in story.no(
        "interview_decision",
        {"decided_by": "zhou.min", "interview_id": "i1", "decision": "approve"},
    )
    story.ok(
        "interview_decision",
        {"decided_by": "tang.guo", "interview_id": "i1", "decision": "approve"},
    )
    story.later(60).ok(
        "interview_held",
        {
            "reported_by": "li.ming",
            "interview_id": "i1",
            "held_at": story.now.isoformat(),
            "summary": "介绍核查结果",
        },
    )
    assert story.state.interviews[0].status == "held"
    assert story.state.breaches == []


def test_interview_held_without_authorisation_is_a_breach() -> None:
    story = Story()
    story.ok("request_interview", INTERVIEW)
    story.ok(
        "interview_decision",
        {"decided_by": "tang.guo", "interview_id": "i1", "decision": "reject", "comment": "不宜"},
    )
    story.later(30).ok("interview_held", held_without_authorisation(story))
    story.ok(
        "interview_held",
        {
            "reported_by": "li.ming",
            "interviewee": "chen.jing",
            "medium": "某自媒体",
            "held_at": story.now.isoformat(),
            "summary": "未申请",
        },
    )
    assert [(b.person, b.unit) for b in story.state.breaches] == [
        ("huang.wei", "xixiangtang-branch"),
        ("chen.jing", "xixiangtang-branch"),
    ]
    assert [i.status for i in story.state.interviews] == ["held_unauthorised", "held_unauthorised"]
    assert len(notices(story, "breach")) == 2


# -- downgrade --------------------------------------------------------------------------------


def test_downgrade_voids_approvals_the_general_chain_lacks() -> None:
    story = Story().reported_and_assessed(large_image_effect=True)
    story.ok("submit_draft", DRAFT)
    story.ok("unit_head_approval", approval("huang.wei"))
    story.ok("section_head_review", approval("wu.hua"))
    assert "is not below" in story.no(
        "downgrade", {"decided_by": "tang.guo", "to_grade": "major", "reason": "x"}
    )
    assert "leadership_group" in story.no("downgrade", {"decided_by": "li.ming", "reason": "x"})
    story.ok("downgrade", {"decided_by": "tang.guo", "reason": "经核实影响限于本区"})
    state = story.state
    assert state.grade == "general"
    assert state.grade_history[-1].by == "tang.guo"
    voided = [(a.signal, a.void) for a in state.approvals]
    assert voided == [("unit_head_approval", False), ("section_head_review", True)]
    # The criteria the group overruled do not upgrade it again by themselves …
    story.ok(
        "update_metrics", {"reported_by": "li.ming", "source": "weibo-monitor", "weibo_reposts": 3}
    )
    assert story.state.grade == "general"
    # … the general chain goes on from where it is.
    outcome = story.ok("publicity_lead_approval", approval("zhou.min"))
    assert Publish(draft_version=1) in outcome.effects


# -- step clocks ------------------------------------------------------------------------------


def test_each_step_has_its_own_clock() -> None:
    story = Story().reported_and_assessed()
    story.ok("submit_draft", DRAFT)
    first = story.state.deadline("step.unit_head_approval.v1")
    assert first is not None and first.due_at - first.starts_at == timedelta(hours=2)
    story.later(30).ok("unit_head_approval", approval("huang.wei"))
    assert story.state.deadline("step.unit_head_approval.v1").status == "met"  # type: ignore[union-attr]
    second = story.state.deadline("step.publicity_lead_approval.v1")
    assert second is not None and second.starts_at == story.now
    assert second.escalate_to == ["leadership_group_head"]
    assert second.responsible_person == "zhou.min"
    # A new version supersedes the waiting one: its clock is waived, the new one starts over.
    story.later(10).ok("submit_draft", {**DRAFT, "text": "第二稿"})
    assert second.status == "waived"
    assert story.state.deadline("step.unit_head_approval.v2") is not None
    plans = [e for e in story.effects if isinstance(e, PlanClock)]
    assert [p.key for p in plans] == [
        "step.unit_head_approval.v1",
        "step.publicity_lead_approval.v1",
        "step.unit_head_approval.v2",
    ]


# -- the leading group ------------------------------------------------------------------------


def quorum_story(decides: str, quorum: int | None = None) -> Story:
    story = Story(policy=group_policy(decides, quorum), roster=group_roster())
    story.reported_and_assessed(large_image_effect=True)
    story.ok(
        "choose_group_members",
        {"chosen_by": "tang.guo", "members": list(MEMBERS[:3]), "reason": "涉及西乡塘、青秀"},
    )
    story.ok("submit_draft", DRAFT)
    story.ok("unit_head_approval", approval("huang.wei"))
    story.ok("section_head_review", approval("wu.hua"))
    return story


def test_chosen_members_are_recorded_and_notified() -> None:
    story = quorum_story("quorum", 2)
    assert story.state.group_choice is not None
    assert story.state.group_choice.members == ["tang.guo", "zhou.min", "liu.yang"]
    notice = notices(story, "group_members")[0]
    assert notice.people == ("tang.guo", "zhou.min", "liu.yang")
    assert "not in the leading group" in story.no(
        "choose_group_members", {"chosen_by": "tang.guo", "members": ["wu.hua"]}
    )


def test_quorum_two_of_three() -> None:
    story = quorum_story("quorum", 2)
    first = story.ok("leadership_group_approval", approval("zhou.min"))
    assert first.effects == [] or not any(isinstance(e, Publish) for e in first.effects)
    assert "not among" in story.no("leadership_group_approval", approval("qin.fang"))
    assert "already voted" in story.no("leadership_group_approval", approval("zhou.min"))
    second = story.ok("leadership_group_approval", approval("liu.yang"))
    assert Publish(draft_version=1) in second.effects
    record = story.state.approvals[-1]
    assert (record.role, record.approver_id) == ("leadership_group", "liu.yang")
    assert "2 of 3 members" in record.comment


def test_one_rejection_ends_the_wait_when_all_must_approve() -> None:
    story = quorum_story("all")
    story.ok("leadership_group_approval", approval("tang.guo"))
    story.ok("leadership_group_approval", approval("zhou.min", decision="reject", comment="口径"))
    draft = story.state.current_draft
    assert draft is not None and draft.status == "returned"
    assert story.state.stage == "handling"
    assert "returned" in story.no("leadership_group_approval", approval("liu.yang"))


def test_a_rejection_under_a_quorum_waits_while_approval_is_possible() -> None:
    story = quorum_story("quorum", 2)
    story.ok("leadership_group_approval", approval("zhou.min", decision="reject", comment="再议"))
    assert story.state.current_draft.status == "in_review"  # type: ignore[union-attr]
    story.ok("leadership_group_approval", approval("liu.yang", decision="reject", comment="不妥"))
    assert story.state.current_draft.status == "returned"  # type: ignore[union-attr]


# -- contacts ---------------------------------------------------------------------------------


def test_contact_recorded_and_department_notified_once() -> None:
    story = Story()
    contact = {
        "recorded_by": "li.ming",
        "department": "stability_office",
        "contacted_at": story.now.isoformat(),
        "contact_person": "王科长",
        "said": "通报核查进展",
    }
    story.ok("record_contact", contact)
    # The same call reported again (a retry, or a colleague) is one contact.
    assert "already recorded by li.ming" in story.no(
        "record_contact", {**contact, "contact_person": ""}
    )
    assert len(story.incident.state.contacts) == 1
    notice = {
        "requested_by": "li.ming",
        "department": "emergency_office",
        "message": "西乡塘超市过期食品事件，已下架涉事商品。",
        "request_id": "eo-1",
    }
    story.ok("notify_department", notice)
    assert "already sent" in story.no("notify_department", notice)
    sent = notices(story, "department_notice")
    assert [(n.key, n.roles) for n in sent] == [("department/eo-1", ["emergency_office"])]
    # Without a request_id the same words go once; new words (or a new id) go again.
    plain = {k: v for k, v in notice.items() if k != "request_id"}
    story.ok("notify_department", plain)
    assert "give a request_id" in story.no("notify_department", plain)
    story.ok("notify_department", {**plain, "message": "事件已处置完毕。"})
    assert len(notices(story, "department_notice")) == 3
    assert "no contact for stability_office" in story.no(
        "notify_department", {**notice, "department": "stability_office", "request_id": "s1"}
    )
    assert "not a department outside" in story.no(
        "notify_department", {**notice, "department": "office", "request_id": "o1"}
    )


# -- drills and the audit lines ---------------------------------------------------------------


def test_a_drill_marks_every_line_and_notice() -> None:
    story = Story(drill=DrillInfo(scenario="过期牛奶", speed=12, started_by="li.ming"))
    story.reported_and_assessed()
    story.send("submit_draft", {"author_id": "nobody", "text": "x"})
    assert all(e.detail.startswith(DRILL_MARK) for e in story.state.trail[1:])
    assert story.incident.subject("x").startswith(f"[{DRILL_MARK}")


def test_lines_of_inputs_name_the_role_and_the_calendar() -> None:
    story = Story()
    first = story.state.trail[0]
    assert (first.kind, first.actor, first.role) == ("discovered", "chen.jing", "unit")
    assert "calendar holidays-test" in first.detail


def test_without_the_features_nothing_changes() -> None:
    story = Story(features=())
    assert story.state.trail[0].role is None
    assert "not a signal this incident takes" in story.no("request_interview", INTERVIEW)


def test_the_plans_lists_at_their_maxima_keep_the_state_and_next_run_small() -> None:
    """Every list the plan adds, full, each text at its longest: the `state` answer and the
    next run's input stay as far under Temporal's limits as the rest of the incident."""
    from datetime import UTC, datetime

    from tests.test_limits import full_incident
    from yuqing import limits
    from yuqing.effects import Configuration, Continued
    from yuqing.models import GROUP_MEMBERS_MAX, Decision
    from yuqing.policy import load_policy
    from yuqing.roster import load_roster
    from yuqing.rules.contacts import MAX_CONTACTS
    from yuqing.rules.interviews import MAX_INTERVIEWS
    from yuqing.settings import Settings
    from yuqing.state import (
        Breach,
        DepartmentContactRecord,
        DepartmentNoticeRecord,
        GroupVote,
        InterviewRecord,
        InterviewStatus,
    )

    at = datetime(2026, 12, 1, tzinfo=UTC)
    text, name = "字" * limits.TEXT_CHARS, "名" * limits.NAME_CHARS
    # Matters decided (their votes stay in the state answer only) and those still open.
    decided = [f"draft-{v}" for v in range(1, limits.DRAFTS_MAX)]
    open_ = [f"draft-{limits.DRAFTS_MAX}", "no-response", "downgrade-1"]
    open_ += [f"interview-i{n}" for n in range(1, MAX_INTERVIEWS + 1)]
    matters = decided + open_
    state = full_incident().model_copy(
        update={
            "contacts": [
                DepartmentContactRecord(
                    department="emergency_office",
                    department_name="市应急办",  # the roster's name, not a sender's text
                    recorded_by="li.ming",
                    contacted_at=at,
                    contact_person="人" * limits.NOTE_CHARS,
                    said=text,
                    at=at,
                )
            ]
            * MAX_CONTACTS,
            "department_notices": [
                DepartmentNoticeRecord(
                    request_id="r" * 64,
                    department="emergency_office",
                    department_name="市应急办",  # the roster's name, not a sender's text
                    requested_by="li.ming",
                    message=text,
                    at=at,
                )
            ]
            * MAX_CONTACTS,
            "interviews": [
                InterviewRecord(
                    interview_id="i" * 64,
                    interviewee=name,
                    medium=name,
                    scheduled_at=at,
                    topic=text,
                    requested_by="li.ming",
                    requested_at=at,
                    status=InterviewStatus.held_unauthorised,
                    decision_comment=text,
                    held_at=at,
                    held_summary=text,
                )
            ]
            * MAX_INTERVIEWS,
            "breaches": [Breach(rule="§4.4", person="x" * 64, unit=name, at=at, detail=text + text)]
            * MAX_INTERVIEWS,
            "group_votes": [
                GroupVote(matter=m, member="m" * 64, decision=Decision.reject, comment=text, at=at)
                for m in matters
                for _ in range(GROUP_MEMBERS_MAX)
            ],
            "group_decided": decided,
        }
    )
    view = len(state.view().model_dump_json().encode())
    settings = Settings()
    config = Configuration(
        policy=load_policy(settings.policy_path), roster=load_roster(settings.roster_path)
    )
    carried = state.carried().model_copy(update={"trail": state.trail[:50]})
    continued = Continued(state=carried, configuration=config, responsible_person="huang.wei")
    size = len(continued.model_dump_json().encode())
    assert view < 512 * 1024, view
    assert size < 1024 * 1024, size
    # And a contact whose words the next run no longer holds is still known as a repeat.
    kept = carried.contacts[0]
    assert kept.said == "…" and kept.key() == state.contacts[0].key()
