"""Drills (§5.3): a scenario run as a drill on the dev server with scaled clocks, nothing sent
to a real channel; and the same scenario simulated on the time-skipping server."""

from __future__ import annotations

import json
import os
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest

from tests.driver import HISTORIES
from tests.keys import SERVICE
from tests.test_channels import MailCollector, WebhookReceiver, write_channels
from worker import create_worker
from yuqing.audit.history import load_history
from yuqing.client import connect
from yuqing.drill.player import Player
from yuqing.drill.report import drill_report, render
from yuqing.drill.scenario import ScenarioError, load_scenario, parse_span, show_span
from yuqing.drill.simulate import simulate
from yuqing.drill.start import start_drill
from yuqing.rules import DRILL_MARK
from yuqing.settings import PROJECT_ROOT, Settings
from yuqing.stack import TemporalDevServer

SCENARIO = PROJECT_ROOT / "drills" / "expired-milk-2025.toml"
# A day of the incident in 72 s: the 4 h report deadline in 12 s, the leading group's step
# escalated 12 s after the draft reaches it.
SPEED = 1200
ESCALATED = "deadline/step.leadership_group_approval.v1/escalation"


def channels_file(tmp_path: Path, mail: MailCollector, hooks: WebhookReceiver) -> Path:
    """Every real channel there is, each a receiver of the test's that counts what it gets."""
    return write_channels(
        tmp_path / "channels.toml",
        f"""
[smtp]
host = "127.0.0.1"
port = {mail.port}
from_address = "yuqing@aic.example"

[[webhooks]]
name = "everyone"
kind = "wecom"
url = "{hooks.url("/robot")}"

[publications.weibo]
url = "{hooks.url("/weibo")}"

[publications.wechat]
url = "{hooks.url("/wechat")}"
""",
    )


async def test_a_drill_on_scaled_clocks_sends_nothing_and_reports_each_step(
    dev_server: TemporalDevServer, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    scenario = load_scenario(SCENARIO)
    client = await connect(
        replace(
            settings, temporal_address=dev_server.address, temporal_namespace=dev_server.namespace
        )
    )
    task_queue = f"drill-{uuid.uuid4()}"
    async with MailCollector() as mail, WebhookReceiver() as hooks:
        own = replace(settings, channels_path=channels_file(tmp_path, mail, hooks))
        async with create_worker(client, pool, own, task_queue=task_queue):
            incident_id, handle = await start_drill(
                client, task_queue, scenario, SCENARIO.name, "li.ming", speed=SPEED
            )
            player = Player(client, handle, SERVICE)
            state = await player.until(lambda s: bool(s.deadlines))
            start = state.discovered_at
            # The clocks run 1200 times faster: 4 h in 12 s, 24 h in 72 s.
            due = {d.key: d.due_at - start for d in state.deadlines}
            assert due == {
                "report_important": timedelta(seconds=12),
                "publish_statement": timedelta(seconds=72),
            }
            for step in scenario.steps:
                if step.signal == "leadership_group_approval":
                    # The group's step waits on its own scaled clock until it is escalated.
                    await player.until(
                        lambda s: any(
                            n.idempotency_key.endswith(ESCALATED) for n in s.notifications
                        )
                    )
                if step.signal == "close_incident":
                    await player.until(lambda s: s.stage == "monitoring")
                entry = await player.send(step, start, SPEED, now=datetime.now(UTC))
                assert not entry.refused, (step.signal, entry.detail)
            await handle.result()
            state = await player.state()
            # The state holds the latest lines; the report reads every line, page by page.
            trails = await player.trails(state)
            if os.environ.get("YUQING_RECORD_HISTORIES") == "1":
                history = await load_history(client, handle.id)  # decrypted, as saved
                suffix = os.environ.get("YUQING_HISTORY_SUFFIX", "")
                path = HISTORIES / f"plan_drill_on_the_dev_server{suffix}.json"
                path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")

        # Nothing reached a real channel: the test's receivers count zero.
        assert mail.messages == []
        assert hooks.requests == []
    for table in ("notification_outbox", "publications", "evidence", "deliveries"):
        rows = await pool.fetch(f"SELECT 1 FROM {table} WHERE incident_id = $1", incident_id)
        assert rows == [], table
    sink = await pool.fetch("SELECT * FROM drill_sink WHERE incident_id = $1", incident_id)
    kinds = {row["kind"] for row in sink}
    assert {"notice:report", "notice:major_notice", "statement:website"} <= kinds
    major = next(row for row in sink if row["kind"] == "notice:major_notice")
    assert major["recipients"] == "[]"
    assert "市委宣传部网络舆情处" in major["withheld"] and "市公安局网安支队" in major["withheld"]
    emergency = next(row for row in sink if row["kind"] == "notice:department_notice")
    assert "市应急办" in emergency["withheld"]

    # Marked 演练 in every line, every notice and every statement's address.
    assert state.drill is not None and state.drill.speed == SPEED
    lines = trails.incident + [e for post in trails.posts.values() for e in post]
    assert len(trails.incident) == state.trail_total and len(lines) > len(state.trail)
    assert all(entry.detail.startswith(DRILL_MARK) for entry in lines)
    assert all(DRILL_MARK in n.subject and n.channel == "drill-sink" for n in state.notifications)
    assert all(p.address.startswith("drill-sink:") for p in state.publications)
    assert state.policy_version is not None and "drill×1200" in state.policy_version

    # The drill report: who acted when, against the scaled deadlines.
    report = drill_report(state, datetime.now(UTC), trails)
    assert report.notices_kept == sum(1 for e in lines if e.kind == "notified")
    assert report.statements_kept == len(state.publications) > 0
    acted = [(a.who, a.kind) for a in report.acted if not a.refused]
    for step in scenario.steps:
        who = next(v for k, v in step.payload.items() if k.endswith(("_id", "_by", "source")))
        assert any(actor == who for actor, _ in acted), (step.signal, who)
    escalated = next(c for c in report.clocks if c.key == "step.leadership_group_approval.v1")
    assert escalated.outcome == "met_late"
    assert escalated.due_offset - escalated.met_offset < timedelta(0)  # type: ignore[operator]
    for clock in report.clocks:
        if clock.met_at is not None:
            assert (clock.outcome == "met") == (clock.met_at <= clock.due_at), clock
        # Incident time is the drill's elapsed time, times its speed.
        assert clock.due_offset == (clock.due_at - start) * SPEED
    text = render(report)
    assert text.startswith("演练报告 Drill report: 西乡塘超市过期牛奶")
    assert "leading group approves" in text and "late by" in text
    assert "never notified: 市委宣传部网络舆情处" in text
    assert "演练 DRILL" in render(report, "html")


async def test_the_same_scenario_simulated_under_two_policies(settings: Settings) -> None:
    scenario = load_scenario(SCENARIO)
    nanning, stricter = await simulate(
        [(SCENARIO, scenario)],
        [settings.policy_path, PROJECT_ROOT / "policies" / "example-state-council-2016.toml"],
        settings,
    )
    for run in (nanning, stricter):
        assert run.refused == []
        assert run.report.speed == 1
        # The simulation starts on the scenario's weekday and hour (a Monday, 09:05).
        local = run.report.discovered_at.astimezone(scenario.happened_at.tzinfo)  # type: ignore[union-attr]
        assert (local.weekday(), local.hour, local.minute) == (0, 9, 5)

    def outcomes(run: object) -> dict[str, tuple[str, timedelta | None]]:
        """Each clock's outcome and margin, to the minute (a step lands just after its time)."""
        return {
            c.key: (c.outcome, minutes(c.margin))
            for c in run.report.clocks  # type: ignore[attr-defined]
        }

    mine, theirs = outcomes(nanning), outcomes(stricter)
    # Last year, under the Nanning plan: reported in 25 min, the statement out in 8 h of 24.
    assert mine["report_important"] == ("met", timedelta(hours=3, minutes=35))
    assert mine["publish_statement"][0] == "met"
    # The leading group's step waited 4 h 40 min against its 4 h: escalated, late by 40 min.
    assert mine["step.leadership_group_approval.v1"] == ("met_late", -timedelta(minutes=40))
    # The publicity lead's step ended unused when the incident became major.
    assert mine["step.publicity_lead_approval.v1"][0] == "waived"
    # Under a 5-hour statement rule the same incident misses it by 3 hours.
    assert theirs["publish_statement"][0] == "met_late"
    assert theirs["publish_statement"][1] == -timedelta(hours=3)


def minutes(span: timedelta | None) -> timedelta | None:
    return None if span is None else timedelta(minutes=round(span.total_seconds() / 60))


def test_scenario_files_are_checked_step_by_step(tmp_path: Path) -> None:
    text = SCENARIO.read_text(encoding="utf-8")
    broken = tmp_path / "broken.toml"
    broken.write_text(text.replace('approver_id = "huang.wei"', 'approver = "huang.wei"'))
    with pytest.raises(ScenarioError) as refused:
        load_scenario(broken)
    assert "steps.4" in str(refused.value) and "approver" in str(refused.value)
    broken.write_text(text.replace('after = "2h"', 'after = "20m"'))
    with pytest.raises(ScenarioError) as refused:
        load_scenario(broken)
    assert "20m" in str(refused.value)
    broken.write_text(text.replace('after = "3h20min"', 'after = "1h"'))
    with pytest.raises(ScenarioError) as refused:
        load_scenario(broken)
    assert "list the steps in order" in str(refused.value)
    assert parse_span("1d2h30min") == timedelta(days=1, hours=2, minutes=30)
    assert show_span(timedelta(hours=4, minutes=40)) == "4h40min"
