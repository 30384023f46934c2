"""Netizen posts (SPEC §4): each its own child workflow, on working time (SPEC §3)."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from yuqing.working_time import SHANGHAI

FIXTURE_2027 = Path(__file__).parent / "fixtures" / "calendar-2027.toml"


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


def post(post_id: str, **overrides: object) -> dict[str, object]:
    return {
        "post_id": post_id,
        "platform": "南宁市政府网站留言板",
        "author": f"网民{post_id}",
        "content": "超市过期牛奶的事处理结果如何？",
        "received_by": "chen.jing",
        **overrides,
    }


async def received(driver: IncidentDriver, moment: datetime, *post_ids: str) -> None:
    await driver.jump_to(moment)
    await driver.start(report())
    for post_id in post_ids:
        await driver.accepted("netizen_post", post(post_id, learnt_at=moment.isoformat()))
    for post_id in post_ids:
        await driver.until_post(post_id, lambda p: bool(p.deadlines))


async def post_notices(driver: IncidentDriver, kind: str) -> list[Any]:
    """Notices of this kind about the posts' deadlines (not the incident's own)."""
    return [
        r
        for r in await driver.rows("notification_outbox")
        if r["kind"] == kind and "-post-" in r["idempotency_key"]
    ]


def respond(formal: bool = False, by: str = "chen.jing") -> dict[str, object]:
    return {
        "responder_id": by,
        "text": "已转西乡塘分局核查，三日内回复。",
        "needs_formal_handling": formal,
    }


async def test_initial_response_in_time_friday_evening(own_clock: IncidentDriver) -> None:
    # Learnt of on Friday at 17:00: one working hour that day, two on Monday morning.
    await received(own_clock, at(2026, 12, 4, 17, 0), "p1")
    listed = await own_clock.until_post("p1", lambda p: bool(p.deadlines))
    initial = listed.deadline("netizen_initial_response")
    assert initial is not None
    assert initial.due_at == at(2026, 12, 7, 10, 0)
    assert initial.clock == "working_hours"
    assert initial.calendar_version and initial.calendar_version.startswith("holidays-")
    assert initial.reminders_at == [at(2026, 12, 7, 8, 30), at(2026, 12, 7, 9, 0)]

    await own_clock.jump_to(at(2026, 12, 7, 9, 40))
    entry = await own_clock.to_post("p1", "initial_response", respond())
    assert not entry.refused and entry.actor == "chen.jing"
    listed = await own_clock.until_post("p1", lambda p: p.status == "answered")
    assert listed.deadline("netizen_initial_response").status == "met"  # type: ignore[union-attr]
    assert listed.initial_response is not None
    assert listed.initial_response.by == "chen.jing"
    assert abs(listed.initial_response.at - at(2026, 12, 7, 9, 40)) < timedelta(seconds=5)
    reminders = await post_notices(own_clock, "reminder")
    assert len(reminders) == 2
    await own_clock.save_history("post_initial_response_in_time")


async def test_initial_response_missed_across_a_weekend(own_clock: IncidentDriver) -> None:
    await received(own_clock, at(2026, 12, 11, 16, 0), "p1")
    await own_clock.jump_to(at(2026, 12, 14, 9, 1))
    listed = await own_clock.until_post("p1", lambda p: p.deadlines[0].status == "breached")
    deadline = listed.deadlines[0]
    assert deadline.due_at == at(2026, 12, 14, 9, 0)
    escalations = await post_notices(own_clock, "escalation")
    assert len(escalations) == 1
    assert "huang.wei" in escalations[0]["recipients"]  # the unit head

    await own_clock.to_post("p1", "initial_response", respond())
    listed = await own_clock.until_post("p1", lambda p: p.status == "answered")
    late = listed.deadlines[0]
    assert late.status == "breached" and late.met_at is not None
    assert late.met_at - late.due_at >= timedelta(minutes=1)
    await own_clock.save_history("post_missed_across_weekend")


async def test_formal_reply_in_five_working_days_across_a_holiday(
    own_clock: IncidentDriver,
) -> None:
    assert own_clock.calendar_override is not None
    own_clock.calendar_override.write_text(FIXTURE_2027.read_text(encoding="utf-8"))
    await received(own_clock, at(2026, 12, 29, 10, 0), "p1")
    await own_clock.to_post("p1", "initial_response", respond(formal=True))
    listed = await own_clock.until_post(
        "p1", lambda p: p.deadline("netizen_formal_reply") is not None
    )
    formal = listed.deadline("netizen_formal_reply")
    assert formal is not None and formal.clock == "working_days"
    # 12-30, 12-31, (New Year's Day, the weekend), 01-04, 01-05, 01-06.
    assert formal.due_at == at(2027, 1, 6, 18, 0)

    await own_clock.jump_to(at(2027, 1, 6, 16, 0))
    refused = await own_clock.to_post(
        "p1", "formal_reply", {"approver_id": "chen.jing", "text": "答复意见"}
    )
    assert refused.refused and "does not hold the role unit_head" in refused.detail
    await own_clock.to_post("p1", "formal_reply", {"approver_id": "huang.wei", "text": "答复意见"})
    listed = await own_clock.until_post("p1", lambda p: p.status == "answered")
    assert listed.formal_reply is not None and listed.formal_reply.by == "huang.wei"
    assert listed.deadline("netizen_formal_reply").status == "met"  # type: ignore[union-attr]
    await own_clock.save_history("post_formal_reply_across_holiday")


async def test_provisional_due_time_replanned_when_the_schedule_is_loaded(
    own_clock: IncidentDriver,
) -> None:
    # No schedule for 2027 yet: Monday–Friday stand in, so the due time comes no later.
    await received(own_clock, at(2026, 12, 29, 10, 0), "p1")
    await own_clock.to_post("p1", "initial_response", respond(formal=True))
    listed = await own_clock.until_post(
        "p1", lambda p: p.deadline("netizen_formal_reply") is not None
    )
    assert listed.deadline("netizen_formal_reply").due_at == at(2027, 1, 5, 18, 0)  # type: ignore[union-attr]
    assert any(e.kind == "deadline_provisional" for e in (await own_clock.post_state("p1")).trail)

    assert own_clock.calendar_override is not None
    own_clock.calendar_override.write_text(FIXTURE_2027.read_text(encoding="utf-8"))
    await own_clock.accepted(
        "calendar_changed", {"changed_by": "li.ming", "reason": "2027年节假日安排已发布"}
    )
    listed = await own_clock.until_post("p1", lambda p: bool(p.replans))
    replan = listed.replans[0]
    assert (replan.old_due_at, replan.new_due_at) == (at(2027, 1, 5, 18, 0), at(2027, 1, 6, 18, 0))
    assert "2027年节假日安排已发布" in replan.reason
    assert listed.deadline("netizen_formal_reply").due_at == at(2027, 1, 6, 18, 0)  # type: ignore[union-attr]
    await own_clock.save_history("post_calendar_replan")


async def test_extension_granted_with_reason_and_met_on_day_nine(
    own_clock: IncidentDriver,
) -> None:
    await received(own_clock, at(2026, 12, 7, 9, 0), "p1")
    await own_clock.to_post("p1", "initial_response", respond(formal=True))
    listed = await own_clock.until_post(
        "p1", lambda p: p.deadline("netizen_formal_reply") is not None
    )
    assert listed.deadline("netizen_formal_reply").due_at == at(2026, 12, 14, 18, 0)  # type: ignore[union-attr]

    await own_clock.jump_to(at(2026, 12, 10, 11, 0))
    entry = await own_clock.to_post(
        "p1",
        "request_extension",
        {"requested_by": "huang.wei", "reason": "需市场监管总局答复", "total_working_days": 10},
    )
    assert not entry.refused
    listed = await own_clock.until_post("p1", lambda p: bool(p.replans))
    assert listed.deadline("netizen_formal_reply").due_at == at(2026, 12, 21, 18, 0)  # type: ignore[union-attr]
    assert listed.extension is not None and listed.extension.text == "需市场监管总局答复"

    # Day 9 of 10: Friday 12-18.
    await own_clock.jump_to(at(2026, 12, 18, 10, 0))
    await own_clock.to_post("p1", "formal_reply", {"approver_id": "huang.wei", "text": "答复"})
    listed = await own_clock.until_post("p1", lambda p: p.status == "answered")
    formal = listed.deadline("netizen_formal_reply")
    assert formal is not None and formal.status == "met"
    await own_clock.save_history("post_extension_met_day_nine")


async def test_extensions_refused(own_clock: IncidentDriver) -> None:
    await received(own_clock, at(2026, 12, 7, 9, 0), "p1")
    await own_clock.to_post("p1", "initial_response", respond(formal=True))
    await own_clock.until_post("p1", lambda p: p.deadline("netizen_formal_reply") is not None)

    def ask(reason: str, days: int) -> dict[str, object]:
        return {"requested_by": "huang.wei", "reason": reason, "total_working_days": days}

    no_reason = await own_clock.to_post("p1", "request_extension", ask("", 8))
    assert no_reason.refused and "needs a stated reason" in no_reason.detail
    too_long = await own_clock.to_post("p1", "request_extension", ask("复杂", 11))
    assert too_long.refused and "beyond the 10 allowed in all" in too_long.detail

    await own_clock.jump_to(at(2026, 12, 14, 18, 5))
    await own_clock.until_post(
        "p1",
        lambda p: p.deadline("netizen_formal_reply").status == "breached",  # type: ignore[union-attr]
    )
    too_late = await own_clock.to_post("p1", "request_extension", ask("复杂", 8))
    assert too_late.refused and "must be asked before it passes" in too_late.detail
    state = await own_clock.post_state("p1")
    assert state.extension is None and state.replans == []
    await own_clock.save_history("post_extensions_refused")


async def test_twenty_posts_each_with_its_own_clock(own_clock: IncidentDriver) -> None:
    ids = [f"p{n:02d}" for n in range(1, 21)]
    await received(own_clock, at(2026, 12, 7, 9, 0), *ids)
    duplicate = await own_clock.refused("netizen_post", post("p07"))
    assert "already received" in duplicate.detail

    await own_clock.jump_to(at(2026, 12, 7, 10, 0))
    for post_id in ids[::2]:
        await own_clock.to_post(post_id, "initial_response", respond())
    await own_clock.jump_to(at(2026, 12, 7, 12, 1))
    state = await own_clock.until(
        lambda s: (
            len(s.posts) == 20
            and all(p.deadlines and p.deadlines[0].status != "pending" for p in s.posts)
        )
    )
    statuses = {p.post_id: p.deadlines[0].status for p in state.posts}
    assert statuses == {pid: ("met" if n % 2 == 0 else "breached") for n, pid in enumerate(ids)}
    assert all(p.deadlines[0].due_at == at(2026, 12, 7, 12, 0) for p in state.posts)
    assert len(await post_notices(own_clock, "escalation")) == 10
    assert len({p.workflow_id for p in state.posts}) == 20


async def test_closing_with_an_open_post(own_clock: IncidentDriver) -> None:
    await received(own_clock, at(2026, 12, 7, 9, 0), "p1", "p2")
    await own_clock.to_post("p2", "initial_response", respond())
    for signal, payload in [
        ("submit_report", UPWARD_REPORT),
        ("submit_assessment", {"assessor_id": "li.ming"}),
        ("submit_draft", {"author_id": "chen.jing", "text": "通报"}),
        ("unit_head_approval", approval("huang.wei", 1)),
        ("publicity_lead_approval", approval("zhou.min", 1)),
    ]:
        await own_clock.accepted(signal, payload)
    await own_clock.until_published()

    refused = await own_clock.refused("close_incident", {"closed_by": "li.ming", "reason": "平息"})
    assert "post(s) p1 are unanswered" in refused.detail
    refused = await own_clock.refused(
        "close_incident",
        {"closed_by": "li.ming", "reason": "平息", "open_posts": {"p1": "网民已删帖"}},
    )
    assert "li.ming is not leadership_group" in refused.detail
    await own_clock.accepted(
        "close_incident",
        {"closed_by": "tang.guo", "reason": "平息", "open_posts": {"p1": "网民已删帖，无法联系"}},
    )
    listed = await own_clock.until_post("p1", lambda p: p.status == "closed_unanswered")
    assert listed.closed_reason == "网民已删帖，无法联系"
    assert listed.deadlines[0].status == "waived"
    await own_clock.accepted(
        "submit_review",
        {"author_id": "li.ming", "what_happened": "a", "what_worked": "b", "what_to_change": "c"},
    )
    summary = await own_clock.result()
    assert summary.refused_signals == 2
    await own_clock.save_history("post_closing_with_open_post")
