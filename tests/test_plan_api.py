"""The rest of the plan over HTTP and with `yuqing`: a drill started by the Office and its
report, an interview asked for in the token's name, the calendar re-plan route."""

from __future__ import annotations

import asyncio
import json

from typer.testing import CliRunner

from tests.test_api import Api, api, assessed  # noqa: F401 - the fixture
from yuqing.cli import app
from yuqing.drill.scenario import load_scenario
from yuqing.settings import PROJECT_ROOT

SCENARIO = PROJECT_ROOT / "drills" / "expired-milk-2025.toml"


async def test_the_office_starts_a_drill_and_reads_its_report(api: Api) -> None:  # noqa: F811
    scenario = load_scenario(SCENARIO).model_dump(mode="json")
    body = {"file_name": SCENARIO.name, "scenario": scenario, "speed": 600}
    refused = await api.post("/drills", body, "chen.jing")
    assert refused.status_code == 403 and "only the Office" in refused.text
    broken = {**body, "scenario": {**scenario, "steps": [{"after": "1h", "signal": "nod"}]}}
    malformed = await api.post("/drills", broken, "li.ming")
    assert malformed.status_code == 422 and "'nod' is not a signal" in malformed.text

    # The Office starts it with `yuqing drill`, which reads the file and posts it.
    env = {"YUQING_API_URL": str(api.http.base_url), "YUQING_TOKEN": "dev-li.ming"}
    started = await asyncio.to_thread(
        CliRunner().invoke, app, ["drill", str(SCENARIO), "--speed", "600", "--json"], env=env
    )
    assert started.exit_code == 0, started.output
    answer = json.loads(started.stdout)
    incident_id = answer["incident_id"]
    api.incidents.add(incident_id)
    assert incident_id.startswith("drill-expired-milk-2025-") and answer["speed"] == 600
    state = await api.until(incident_id, lambda s: bool(s["deadlines"]))
    assert state["drill"] == {"scenario": scenario["name"], "speed": 600, "started_by": "li.ming"}
    assert state["trail"][0]["detail"].startswith("[演练]")

    report = await api.http.get(
        f"/drills/{incident_id}/report", headers={"Authorization": "Bearer dev-li.ming"}
    )
    assert report.status_code == 200, report.text
    assert report.text.startswith("演练报告 Drill report") and "clocks ×600" in report.text
    page = await api.http.get(
        f"/drills/{incident_id}/report",
        params={"format": "html"},
        headers={"Authorization": "Bearer dev-li.ming"},
    )
    assert page.status_code == 200 and "演练 DRILL" in page.text

    # The same report with `yuqing`.
    result = await asyncio.to_thread(
        CliRunner().invoke, app, ["drill-report", incident_id], env=env
    )
    assert result.exit_code == 0, result.output
    assert "who acted when" in result.output


async def test_an_interview_asked_for_in_the_tokens_name(api: Api) -> None:  # noqa: F811
    incident_id = await assessed(api)
    request = {
        "interviewee": "huang.wei",
        "medium": "南宁电视台",
        "scheduled_at": "2026-12-08T15:00:00+08:00",
        "topic": "核查结果",
    }
    other = await api.post(
        f"/incidents/{incident_id}/interviews", {**request, "requested_by": "zhou.min"}, "li.ming"
    )
    assert other.status_code == 403
    entry = await api.accepted(f"/incidents/{incident_id}/interviews", request, "li.ming")
    assert (entry["kind"], entry["actor"], entry["role"]) == (
        "interview_requested",
        "li.ming",
        "office",
    )
    refused = await api.post(
        f"/incidents/{incident_id}/interviews/i1/decision", {"decision": "approve"}, "zhou.min"
    )
    assert refused.status_code == 403
    decided = await api.accepted(
        f"/incidents/{incident_id}/interviews/i1/decision", {"decision": "approve"}, "tang.guo"
    )
    assert decided["kind"] == "interview_authorised"


async def test_only_the_office_loads_a_calendar(api: Api) -> None:  # noqa: F811
    refused = await api.post("/calendar/changed", {"reason": "2027年安排"}, "chen.jing")
    assert refused.status_code == 403
