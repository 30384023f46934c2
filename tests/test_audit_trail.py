"""The decision trail (SPEC §6): rebuilt from the history alone, matching the projection row for
row, and decided the same again when the history is replayed through today's code."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

from typer.testing import CliRunner

from tests.driver import PATIENCE, POLL, UPWARD_REPORT, IncidentDriver, approval, report
from yuqing.audit.history import (
    REPLAY_CLOCK_SLACK,
    TrailLine,
    compare,
    compare_projection,
    compare_replay,
    load_history,
    recorded_trail,
    replay,
)
from yuqing.audit.projection import projected_trail
from yuqing.audit.timeline import ordered, render
from yuqing.cli import app
from yuqing.settings import Settings

# What a reader of the incident's timeline must find, in this order (the incident's own
# lines; notices are interleaved as they complete, so they are checked separately).
EXPECTED = [
    ("discovered", "chen.jing", "网传西乡塘某超市销售过期食品"),
    ("evidence", None, "-e1 screenshot"),
    ("evidence", None, "-e2 web_page"),
    ("deadline_planned", None, "report deadline 2 h (especially major)"),
    ("deadline_planned", None, "statement deadline 24 h"),
    ("deadline_breached", None, "report deadline 2 h (especially major) missed"),
    ("reported", "li.ming", "upward report via 新浪微博"),
    ("deadline_met_late", None, "report deadline 2 h (especially major) met late"),
    ("stage", None, "stage: reported"),
    ("graded", "li.ming", "general: no major-incident criterion holds"),
    ("stage", None, "stage: assessed"),
    ("stage", None, "stage: handling"),
    ("netizen_post", "chen.jing", "post p1"),
    ("netizen_post", "chen.jing", "post p2"),
    ("draft", "chen.jing", "draft version 1 submitted"),
    ("stage", None, "stage: approving"),
    ("approval", "huang.wei", "unit head signs: approved draft version 1"),
    ("approval", "zhou.min", "publicity lead approves: rejected draft version 1 (口径不一致)"),
    ("stage", None, "stage: handling"),
    ("refused", "zhou.min", "draft version 1 was returned"),
    # The person who sent the figures acts; the monitor is their source (issue 10).
    ("metrics", "li.ming", "figures from weibo-monitor"),
    ("upgraded", "automatic", "major: weibo_reposts: 25 reposts (threshold 20)"),
    ("draft", "chen.jing", "draft version 2 submitted"),
    ("stage", None, "stage: approving"),
    ("approval", "huang.wei", "unit head signs: approved draft version 2"),
    ("approval", "wu.hua", "section head reviews: approved draft version 2"),
    ("approval", "tang.guo", "leading group approves: approved draft version 2"),
    ("chain_complete", None, "the major chain approved draft version 2"),
]


def incident_lines(lines: list[TrailLine]) -> list[tuple[str, str | None, str]]:
    return [
        (line.kind, line.actor, line.detail)
        for line in lines
        if line.post_id is None
        and line.kind not in ("notified", "post_status")
        and not step_clock(line)
    ]


def step_clock(line: TrailLine) -> bool:
    """An approval step's own clock, planned by an activity whenever it answers."""
    return line.kind.startswith("deadline") and "waiting at “" in line.detail


async def test_trail_of_a_major_incident_from_history_projection_and_replay(
    driver: IncidentDriver,
) -> None:
    await driver.start(report(sensitivity="especially_major", metrics={"weibo_reposts": 5}))
    await driver.sleep(timedelta(hours=2, minutes=1))
    await driver.until(lambda s: s.deadlines[0].status == "breached")
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    for post_id in ("p1", "p2"):
        await driver.accepted(
            "netizen_post",
            {
                "post_id": post_id,
                "platform": "留言板",
                "author": f"网民{post_id}",
                "content": "处理结果如何？",
                "received_by": "chen.jing",
            },
        )
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "第一稿"})
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    await driver.accepted(
        "publicity_lead_approval", approval("zhou.min", 1, "reject", "口径不一致")
    )
    await driver.refused("publicity_lead_approval", approval("zhou.min", 1))
    await driver.accepted(
        "update_metrics", {"source": "weibo-monitor", "reported_by": "li.ming", "weibo_reposts": 25}
    )
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "第二稿"})
    await driver.accepted("unit_head_approval", approval("huang.wei", 2))
    await driver.accepted("section_head_review", approval("wu.hua", 2))
    await driver.accepted("leadership_group_approval", approval("tang.guo", 2))
    await driver.until_published()
    for post_id in ("p1", "p2"):
        await driver.to_post(
            post_id,
            "initial_response",
            {"responder_id": "chen.jing", "text": "已核查", "needs_formal_handling": False},
        )
        await driver.until_post(post_id, lambda p: p.status == "answered")
    await driver.accepted("close_incident", {"closed_by": "tang.guo", "reason": "平息"})
    await driver.accepted(
        "submit_review",
        {"author_id": "li.ming", "what_happened": "a", "what_worked": "b", "what_to_change": "c"},
    )
    await driver.result()

    # From the history alone: the incident's and its posts'.
    assert driver.handle is not None
    client = driver.client
    incident_history = await load_history(client, driver.handle.id)
    lines = recorded_trail(incident_history)
    state = await driver.state()
    post_histories = {p.post_id: await load_history(client, p.workflow_id) for p in state.posts}
    post_lines = {pid: recorded_trail(h) for pid, h in post_histories.items()}

    got = incident_lines(lines)
    # The timeline begins as expected, each line at its place and by whom it says.
    for (kind, actor, detail), (got_kind, got_actor, got_detail) in zip(
        EXPECTED, got, strict=False
    ):
        assert (got_kind, got_actor) == (kind, actor), (kind, detail, got_detail)
        assert detail in got_detail, (detail, got_detail)
    kinds = [kind for kind, _, _ in got]
    print("TAIL", got[len(EXPECTED) :])
    assert kinds[len(EXPECTED) : len(EXPECTED) + 3] == ["published"] * 3 or "published" in kinds
    assert kinds[-4:] == ["stage", "closed", "reviewed", "stage"] or kinds[-1] == "stage"
    notices = [line.detail for line in lines if line.kind == "notified"]
    assert any(d.startswith("escalation") for d in notices)
    assert any(
        d.startswith("major_notice to 市委宣传部网络舆情处, 市公安局网安支队") for d in notices
    )
    assert all(post_lines[pid] and post_lines[pid][-1].kind == "answered" for pid in ("p1", "p2"))
    # Every line the workflow decided is in the history, in order, none lost.
    assert [line.detail for line in lines] == [e.detail for e in await driver.trail()]

    # The projection in PostgreSQL matches the history row for row.
    for workflow_id, recorded in [(driver.handle.id, lines)] + [
        (p.workflow_id, post_lines[p.post_id]) for p in state.posts
    ]:
        projected = await projected_trail(driver.pool, workflow_id)
        assert compare(recorded, [TrailLine(**row) for row in projected]) == []

    # Today's code, replaying the same history, decides the same.
    replayed = await replay(incident_history)
    assert replayed.error is None
    assert compare(lines, replayed.trail, clock_slack=REPLAY_CLOCK_SLACK) == []

    await driver.save_history("audit_major_rejection_upgrade_posts")
    text = render(state.incident_id, ordered(lines + post_lines["p1"]), "text")
    assert "网民诉求 p1" in text and "已拒绝 publicity_lead_approval [conflict]" in text
    english = render(state.incident_id, ordered(lines + post_lines["p1"]), "text", "en")
    assert "post p1" in english and "REFUSED publicity_lead_approval [conflict]" in english
    page = render(state.incident_id, lines, "html")
    assert "<table>" in page and "&lt;" not in state.title
    assert "<th>时间（北京时间）</th>" in page and f"事件 {state.incident_id} 的决策记录" in page


async def test_audit_command_checks_projection_and_replay(
    driver: IncidentDriver, settings: Settings, tmp_path: Path
) -> None:
    incident = report()
    await driver.start(incident)
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.refused("unit_head_approval", approval("liu.yang", 1))
    # Still running: wait until the report's notice is sent and every line it decided is in
    # the projection, so the audit reads a history that has recorded them.
    state = await driver.until(
        lambda s: any(n.kind == "report" and n.status == "sent" for n in s.notifications)
    )
    await until_projected(driver, state.trail_total)
    await driver.settle()
    env = {
        "TEMPORAL_ADDRESS": driver.client.service_client.config.target_host,
        "DATABASE_URL": settings.database_url or "",
    }
    out = tmp_path / "trail.md"
    result = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        [
            "audit",
            incident.incident_id,
            "--format",
            "md",
            "--output",
            str(out),
            "--check",
            "--replay",
        ],
        env=env,
    )
    assert result.exit_code == 0, result.output
    assert "projection of incident-" in result.output and ": matches" in result.output
    assert "the same decisions" in result.output
    table = out.read_text(encoding="utf-8")
    assert table.startswith(f"# Decision trail of incident {incident.incident_id}")
    assert "REFUSED unit_head_approval [conflict]" in table

    verified = await asyncio.to_thread(CliRunner().invoke, app, ["audit-verify"], env=env)
    assert verified.exit_code == 0, verified.output
    assert "the chain is intact" in verified.output

    # The command itself, a process of its own as an official runs it: there, with no thread
    # yet, the replay is forked (in this process, which has the SDK's threads, it cannot be).
    command = [sys.executable, "-m", "yuqing.cli", "audit", incident.incident_id, "--replay"]
    done = await asyncio.to_thread(
        subprocess.run,
        command,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "the same decisions" in done.stderr
    assert "REFUSED unit_head_approval [conflict]" in done.stdout


async def until_projected(driver: IncidentDriver, lines: int) -> None:
    """Wait until the projection holds `lines` rows of the incident (and it holds still)."""
    assert driver.handle is not None
    loop = asyncio.get_running_loop()
    give_up = loop.time() + PATIENCE
    while len(await projected_trail(driver.pool, driver.handle.id)) < lines:
        assert loop.time() < give_up, f"the projection never reached {lines} lines"
        await asyncio.sleep(POLL)


def line(seq: int, kind: str = "stage", detail: str = "stage: reported") -> TrailLine:
    at = datetime(2026, 11, 28, 9, 0, tzinfo=UTC) + timedelta(seconds=seq)
    return TrailLine("incident-x", None, seq, at, kind, None, None, None, False, None, detail)


def test_an_audit_of_a_workflow_under_way_compares_what_its_history_records() -> None:
    recorded = [line(0), line(1)]
    # Replay decided a third line the history has not recorded yet: no difference, counted.
    ahead = [*recorded, line(2, "notified", "report to 市局")]
    under_way = compare_replay(recorded, ahead, whole=False)
    assert under_way.differences == [] and under_way.unrecorded == 1
    assert "1 line(s) decided after the last one the history records" in under_way.notes()[0]
    # Once the workflow has ended whole, every line it decided is recorded: that is a difference.
    (extra,) = compare_replay(recorded, ahead, whole=True).differences
    assert extra.seq == 2 and extra.recorded is None
    # A line that is recorded and decided otherwise differs, under way or not.
    other = [line(0), line(1, detail="stage: assessed")]
    assert [d.seq for d in compare_replay(recorded, other, whole=False).differences] == [1]

    # The projection: rows copied after the history was read, and lines still being copied
    # that it lacks, are left out; a line whose copy the history shows done must be there.
    projected = compare_projection(
        [*recorded, line(2)], [line(0), line(1), line(3)], whole=False, unconfirmed={2}
    )
    assert projected.differences == [] and (projected.unconfirmed, projected.newer) == (1, 1)
    (missing,) = compare_projection(
        [*recorded, line(2)], recorded, whole=False, unconfirmed=set()
    ).differences
    assert missing.seq == 2 and missing.other is None


async def test_compliance_command_writes_csv_and_html(
    driver: IncidentDriver, settings: Settings, tmp_path: Path
) -> None:
    await driver.start(report(sensitivity="especially_major"))
    await driver.sleep(timedelta(hours=2, minutes=1))
    state = await driver.until(lambda s: s.deadlines[0].status == "breached")
    await driver.settle()
    env = {"DATABASE_URL": settings.database_url or ""}
    day = state.discovered_at.date()
    window = ["--from", f"{day - timedelta(days=1)}", "--to", f"{day + timedelta(days=3)}"]
    csv_file, page = tmp_path / "deadlines.csv", tmp_path / "deadlines.html"
    for fmt, target in (("csv", csv_file), ("html", page)):
        result = await asyncio.to_thread(
            CliRunner().invoke,
            app,
            ["compliance", *window, "--format", fmt, "--output", str(target)],
            env=env,
        )
        assert result.exit_code == 0, result.output
    rows = csv_file.read_text(encoding="utf-8").splitlines()
    assert state.incident_id in "\n".join(rows[1:])
    mine = [row for row in rows if state.incident_id in row and "report_especially_major" in row]
    assert len(mine) == 1 and "breached" in mine[0] and "xixiangtang-branch" in mine[0]
    assert "<svg" in page.read_text(encoding="utf-8")

    wrong = await asyncio.to_thread(
        CliRunner().invoke,
        app,
        ["compliance", "--from", "2026-12-01", "--to", "2026-11-01"],
        env=env,
    )
    assert wrong.exit_code == 2 and "--to must come after --from" in wrong.output
