"""The deciders on their own: races the review found, and rules checked without a server."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.evidence import EvidenceActivities
from yuqing.decisions import POST_STATUS_SIGNAL, Incident
from yuqing.effects import FixEvidence, PostStart
from yuqing.models import EvidenceItem, IntakeChannel, Sensitivity
from yuqing.outcomes import PlanDeadline
from yuqing.policy import load_policy
from yuqing.post_decisions import FORMAL, INITIAL, Post
from yuqing.roles import Role
from yuqing.roster import load_roster
from yuqing.settings import Settings
from yuqing.state import Deadline, IncidentState, PostState, PostStatus

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
POLICY = load_policy(Settings().policy_path)
ROSTER = load_roster(Settings().roster_path)


def new_post() -> Post:
    state = PostState(
        post_id="p1",
        workflow_id="incident-x-post-p1",
        incident_id="x",
        unit="xixiangtang-branch",
        platform="forum",
        author="网民",
        content="?",
        url=None,
        learnt_at=T0,
        received_by="chen.jing",
    )
    start = PostStart(post=state, policy=POLICY, roster=ROSTER, responsible_person="huang.wei")
    return Post(start, POLICY, ROSTER)


def deadline(key: str, due: datetime) -> Deadline:
    return Deadline(
        key=key,
        title=key,
        clock="working_days",
        starts_at=T0,
        due_at=due,
        reminders_at=[],
        remind=[Role.unit],
        escalate_to=[Role.unit_head],
        responsible_unit="xixiangtang-branch",
        responsible_person="huang.wei",
        policy_version=POLICY.version,
    )


def test_formal_reply_before_its_deadline_is_planned_is_not_left_pending() -> None:
    post = new_post()
    post.deadline_planned(deadline(INITIAL, T0 + timedelta(hours=3)), None, "received", T0)
    effects = post.apply(
        "initial_response",
        {"responder_id": "chen.jing", "text": "收到", "needs_formal_handling": True},
        T0 + timedelta(hours=1),
    ).effects
    assert effects == [PlanDeadline(key=FORMAL, reason="formal handling needed")]
    # The reply comes in while the formal deadline's plan is still being computed.
    reply = post.apply(
        "formal_reply", {"approver_id": "huang.wei", "text": "答复"}, T0 + timedelta(hours=2)
    )
    assert reply.refusal is None and post.finished
    post.deadline_planned(
        deadline(FORMAL, T0 + timedelta(days=7)), None, "formal", T0 + timedelta(hours=2)
    )
    formal = post.state.deadline(FORMAL)
    assert formal is not None and formal.status == "met"
    assert formal.met_at == T0 + timedelta(hours=2)


def test_extension_granted_in_time_survives_a_late_plan() -> None:
    post = new_post()
    post.deadline_planned(deadline(INITIAL, T0 + timedelta(hours=3)), None, "received", T0)
    post.apply(
        "initial_response",
        {"responder_id": "chen.jing", "text": "收到", "needs_formal_handling": True},
        T0,
    )
    due5 = T0 + timedelta(days=7)
    post.deadline_planned(deadline(FORMAL, due5), None, "formal", T0)
    asked = post.apply(
        "request_extension",
        {"requested_by": "huang.wei", "reason": "需协查", "total_working_days": 10},
        due5 - timedelta(minutes=1),
    )
    assert asked.refusal is None
    # The watcher passed the old due time before the extension's plan came back.
    post.deadline_breached(FORMAL, due5)
    post.deadline_planned(deadline(FORMAL, due5 + timedelta(days=7)), None, "extension", due5)
    formal = post.state.deadline(FORMAL)
    assert formal is not None and formal.status == "pending"
    assert formal.due_at == due5 + timedelta(days=7)
    assert [r.new_due_at for r in post.state.replans] == [due5 + timedelta(days=7)]


def test_withdraw_and_calendar_change_need_their_roles() -> None:
    post = new_post()
    refused = post.apply("withdraw", {"closed_by": "chen.jing", "reason": "x"}, T0)
    assert refused.refusal is not None and refused.refusal.kind == "forbidden"
    refused = post.apply("calendar_changed", {"changed_by": "chen.jing", "reason": "x"}, T0)
    assert refused.refusal is not None and refused.refusal.kind == "forbidden"
    assert post.state.status == "received"
    assert post.apply("withdraw", {"closed_by": "tang.guo", "reason": "删帖"}, T0).refusal is None


def test_an_older_post_snapshot_never_overwrites_a_newer_one() -> None:
    state = IncidentState(
        incident_id="x",
        workflow_id="incident-x",
        title="t",
        channel=IntakeChannel.weibo,
        unit="xixiangtang-branch",
        reporter_id="chen.jing",
        summary="",
        source_url=None,
        sensitivity=Sensitivity.important,
        discovered_at=T0,
    )
    incident = Incident(state, POLICY, ROSTER)
    incident.apply(
        "netizen_post",
        {
            "post_id": "p1",
            "platform": "f",
            "author": "a",
            "content": "c",
            "received_by": "chen.jing",
        },
        T0,
    )
    newer = incident.state.posts[0].model_copy(
        update={"status": PostStatus.answered, "revision": 3}
    )
    older = incident.state.posts[0].model_copy(update={"revision": 2})
    incident.apply(POST_STATUS_SIGNAL, newer.model_dump(mode="json"), T0, internal=True)
    incident.apply(POST_STATUS_SIGNAL, older.model_dump(mode="json"), T0, internal=True)
    assert incident.state.posts[0].status == "answered"
    stranger = newer.model_copy(update={"workflow_id": "elsewhere", "revision": 9})
    refused = incident.apply(
        POST_STATUS_SIGNAL, stranger.model_dump(mode="json"), T0, internal=True
    )
    assert refused.refusal is not None


def test_internal_signals_from_outside_are_refused_and_recorded() -> None:
    """`post_status` and `effect_failed` are what the workflow tells itself: from outside,
    even well formed, they are refused as forbidden and recorded, and change nothing."""
    incident = Incident(
        IncidentState(
            incident_id="t-internal",
            workflow_id="incident-t-internal",
            title="t",
            channel=IntakeChannel.weibo,
            unit="xixiangtang-branch",
            reporter_id="chen.jing",
            summary="",
            source_url=None,
            sensitivity=Sensitivity.important,
            discovered_at=T0,
        ),
        POLICY,
        ROSTER,
    )
    before = incident.state.model_dump(exclude={"trail", "refused_total", "trail_total"})
    forged = {"what": "publish on website", "error": "forged", "draft_version": 1}
    outcome = incident.apply("effect_failed", forged, T0)
    assert outcome.refusal is not None and outcome.refusal.kind == "forbidden"
    outcome = incident.apply("post_status", {"post_id": "p1"}, T0)
    assert outcome.refusal is not None and outcome.refusal.kind == "forbidden"
    assert [e.kind for e in incident.state.trail] == ["refused", "refused"]
    assert "cannot be sent from outside" in incident.state.trail[0].detail
    assert incident.state.model_dump(exclude={"trail", "refused_total", "trail_total"}) == before


async def test_evidence_id_holding_other_content_is_a_conflict(pool: object) -> None:
    fix = EvidenceActivities(pool).fix_evidence  # type: ignore[arg-type]
    incident_id = f"conflict-{T0.timestamp():.0f}-{id(pool)}"
    first = FixEvidence(
        incident_id=incident_id,
        items=[EvidenceItem.model_validate({"kind": "text", "content_text": "原文"})],
    )
    again = await ActivityEnvironment().run(fix, first)
    assert (await ActivityEnvironment().run(fix, first)) == again  # a retry returns its row
    other = FixEvidence(
        incident_id=incident_id,
        items=[EvidenceItem.model_validate({"kind": "text", "content_text": "别的内容"})],
    )
    with pytest.raises(ApplicationError) as conflict:
        await ActivityEnvironment().run(fix, other)
    assert conflict.value.type == "EvidenceConflict" and conflict.value.non_retryable
