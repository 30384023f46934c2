"""The audit and calendar fixes of issue 12: every publication line of `yuqing audit` carries
its content hash, every line of an accepted input names the sender's role, the incident keeps
the calendar version it started under, and a provisional due time is planned again when the
year's schedule is loaded, whichever way it moves."""

from __future__ import annotations

import asyncio
import json
from datetime import datetime
from pathlib import Path

from typer.testing import CliRunner

from starter import decide
from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from tests.keys import signed
from tests.test_posts import post, respond
from yuqing.cli import app
from yuqing.replan import replan_provisional
from yuqing.roster import load_roster
from yuqing.settings import Settings
from yuqing.state import TrailEntry
from yuqing.working_time import SHANGHAI

MAKEUP_2027 = Path(__file__).parent / "fixtures" / "calendar-2027-makeup.toml"


async def test_audit_lines_carry_hashes_roles_and_the_calendar(
    driver: IncidentDriver, settings: Settings
) -> None:
    state = await driver.start(report(sensitivity="especially_major"))
    assert state.calendar_version is not None and state.calendar_version.startswith("holidays-")
    first = state.trail[0]
    assert first.kind == "discovered" and f"calendar {state.calendar_version}" in first.detail
    assert (first.actor, first.role) == ("chen.jing", "unit")

    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted(
        "add_evidence",
        {
            "submission_id": "hotline-T-1",
            "channel": "hotline_12315",
            "reporter_id": "chen.jing",
            "summary": "12315来电反映同一超市",
        },
    )
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    await driver.accepted(
        "update_metrics", {"reported_by": "li.ming", "source": "weibo-monitor", "weibo_reposts": 4}
    )
    await driver.accepted(
        "legal_opinion", {"author_id": "zhao.lei", "opinion": "涉嫌违反食品安全法"}
    )
    await driver.accepted("netizen_post", post("p1"))
    await driver.accepted("calendar_changed", {"changed_by": "li.ming", "reason": "核对日历"})
    await driver.accepted(
        "record_contact",
        {
            "recorded_by": "li.ming",
            "department": "public_security",
            "contacted_at": state.discovered_at.isoformat(),
            "said": "通报情况",
        },
    )
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "情况通报"})
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 1))
    state = await driver.until_published()
    await driver.to_post("p1", "initial_response", respond())
    await driver.until_post("p1", lambda p: p.status == "answered")
    await driver.accepted("close_incident", {"closed_by": "li.ming", "reason": "平息"})
    await driver.accepted(
        "submit_review",
        {"author_id": "zhou.min", "what_happened": "a", "what_worked": "b", "what_to_change": "c"},
    )
    await driver.result()
    await driver.settle()

    env = {"TEMPORAL_ADDRESS": driver.client.service_client.config.target_host}
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["audit", state.incident_id, "--format", "json"], env=env
    )
    assert result.exit_code == 0, result.output
    lines = json.loads(result.stdout)["trail"]

    # Every publication line names its content hash, the one the publication has.
    hashes = {p.channel.value: p.content_sha256 for p in (await driver.state()).publications}
    published = [line for line in lines if line["kind"] == "published"]
    assert len(published) == 3
    for line in published:
        channel = next(c for c in hashes if f" on {c}:" in line["detail"])
        assert line["detail"].endswith(f"(sha256 {hashes[channel]})")

    # Every line of an accepted input whose sender the roster knows names the sender's role.
    roster = load_roster(settings.roster_path)
    inputs = [
        line
        for line in lines
        if line["actor"] and roster.person(line["actor"]) and not line["refused"]
    ]
    assert {line["kind"] for line in inputs} >= {
        "discovered",
        "reported",
        "reported_again",
        "graded",
        "metrics",
        "legal_opinion",
        "netizen_post",
        "calendar_changed",
        "contact",
        "draft",
        "approval",
        "closed",
        "reviewed",
        "initial_response",
    }
    assert [line for line in inputs if line["role"] is None] == []
    review = next(line for line in inputs if line["kind"] == "reviewed")
    assert review["role"] == "publicity_lead"
    # The incident's first line, as the audit shows it, carries the calendar version too (the
    # timeline is in time order: a line stamped by the server can sort before the report's
    # own discovery time, so it is found by position in the trail, not in the timeline).
    first_line = next(line for line in lines if line["seq"] == 0 and not line["post_id"])
    assert first_line["kind"] == "discovered" and "calendar holidays-" in first_line["detail"]


def at(*parts: int) -> datetime:
    return datetime(*parts, tzinfo=SHANGHAI)  # type: ignore[misc]


async def test_a_provisional_due_time_later_than_the_official_one_is_planned_again(
    own_clock: IncidentDriver,
) -> None:
    # Friday 2027-02-05 17:30, a year with no official schedule yet: Monday–Friday stand in.
    learnt = at(2027, 2, 5, 17, 30)
    await own_clock.jump_to(learnt)
    await own_clock.start(report())
    await own_clock.accepted("netizen_post", post("p1", learnt_at=learnt.isoformat()))
    listed = await own_clock.until_post("p1", lambda p: bool(p.deadlines))
    initial = listed.deadline("netizen_initial_response")
    assert initial is not None and initial.due_at == at(2027, 2, 8, 10, 30)  # Monday
    assert initial.calendar_version is not None and initial.calendar_version.endswith(
        ";provisional"
    )
    note = next(
        e.detail
        for e in (await own_clock.post_state("p1")).trail
        if e.kind == "deadline_provisional"
    )
    assert "may be earlier" in note and "never later" not in note

    # The year's schedule is loaded: Saturday 02-06 is a make-up working day, so the official
    # due time is two days EARLIER than the provisional one. Every incident with a provisional
    # due time is told, and the post plans it again.
    assert own_clock.calendar_override is not None and own_clock.handle is not None
    own_clock.calendar_override.write_text(MAKEUP_2027.read_text(encoding="utf-8"))

    async def deciding(workflow_id: str, signal: str, payload: dict[str, str]) -> TrailEntry:
        return await decide(
            own_clock.client, workflow_id, signal, signed(workflow_id, signal, payload)
        )

    told = await replan_provisional(
        own_clock.client, deciding, "li.ming", "2027年部分节假日安排已发布", [own_clock.handle.id]
    )
    assert [(workflow_id, entry.kind) for workflow_id, entry in told] == [
        (own_clock.handle.id, "calendar_changed")
    ]
    listed = await own_clock.until_post("p1", lambda p: bool(p.replans))
    replan = listed.replans[0]
    assert (replan.old_due_at, replan.new_due_at) == (
        at(2027, 2, 8, 10, 30),
        at(2027, 2, 6, 10, 30),
    )
    initial = listed.deadline("netizen_initial_response")
    assert initial is not None and not (initial.calendar_version or "").endswith(";provisional")
    # Nothing provisional is left, so nobody is told twice.
    again = await replan_provisional(
        own_clock.client, deciding, "li.ming", "again", [own_clock.handle.id]
    )
    assert again == []
    await own_clock.save_history("plan_provisional_replanned_earlier")
