"""The archive of histories: what an incident archives as it ends is covered end to end in
test_record_at_rest.py; here, one that ended otherwise (terminated) is archived by hand."""

from __future__ import annotations

import asyncio

from typer.testing import CliRunner

from tests.driver import UPWARD_REPORT, IncidentDriver, report
from yuqing.audit.archive import archived_runs
from yuqing.audit.history import decoded, recorded_trail
from yuqing.cli import app
from yuqing.settings import Settings


async def test_a_terminated_incident_is_archived_by_hand(
    driver: IncidentDriver, settings: Settings
) -> None:
    incident = report()
    await driver.start(incident)
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.settle()
    assert driver.handle is not None
    await driver.handle.terminate("an operator ended it")
    env = {
        "TEMPORAL_ADDRESS": driver.client.service_client.config.target_host,
        "DATABASE_URL": settings.database_url or "",
    }
    runner = CliRunner()
    done = await asyncio.to_thread(
        runner.invoke, app, ["audit-archive", incident.incident_id], env=env
    )
    assert done.exit_code == 0, done.output
    assert f"{driver.handle.id} run " in done.output and ": archived," in done.output
    again = await asyncio.to_thread(
        runner.invoke, app, ["audit-archive", incident.incident_id], env=env
    )
    assert again.exit_code == 0 and "already archived" in again.output

    row = await driver.pool.fetchrow(
        "SELECT status, workflow_type FROM history_archive WHERE workflow_id = $1", driver.handle.id
    )
    assert row is not None and tuple(row) == ("terminated", "IncidentWorkflow")
    (archived,) = await archived_runs(driver.pool, driver.handle.id)
    lines = recorded_trail(await decoded(archived, driver.client.data_converter))
    assert [line.kind for line in lines][:1] == ["discovered"]
    assert any(line.kind == "reported" for line in lines)
