"""The archive of histories: what an incident archives as it ends is covered end to end in
test_record_at_rest.py; here, one that ended otherwise (terminated) is archived by hand, and a
history read in pages is kept whole."""

from __future__ import annotations

import asyncio
import gzip
import hashlib
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from temporalio.api.history.v1 import History
from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryResponse
from temporalio.client import WorkflowHistory
from typer.testing import CliRunner

from tests.driver import UPWARD_REPORT, IncidentDriver, report
from yuqing.audit.archive import COMPRESS_LEVEL, archived_runs, fetch_closed_run, pack, unpack
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


async def test_a_history_read_in_pages_is_kept_whole_and_reads_back_the_same() -> None:
    # The sweeper keeps each page's serialization as it came, joined: a serialization of the
    # whole history (byte for byte only up to the order of map entries, which protobuf leaves
    # open), so `unpack` reads back every event in order.
    path = Path(__file__).parent / "histories" / "general_published_in_time-yields.json"
    whole = WorkflowHistory.from_json("incident-x", path.read_text())
    cut = len(whole.events) // 3
    pages = [whole.events[:cut], whole.events[cut : 2 * cut], whole.events[2 * cut :]]
    asked: list[Any] = []

    async def get_workflow_execution_history(
        request: Any, retry: bool = False
    ) -> GetWorkflowExecutionHistoryResponse:
        asked.append(request)
        number = int(request.next_page_token or b"0")
        return GetWorkflowExecutionHistoryResponse(
            history=History(events=pages[number]),
            next_page_token=b"" if number == len(pages) - 1 else str(number + 1).encode(),
        )

    service = SimpleNamespace(get_workflow_execution_history=get_workflow_execution_history)
    client: Any = SimpleNamespace(namespace="default", workflow_service=service)
    history, raw = await fetch_closed_run(client, "incident-x", "run-1")
    assert len(asked) == 3 and all(r.execution.run_id == "run-1" for r in asked)
    assert list(History.FromString(raw).events) == list(whole.events)
    assert list(history.events) == list(whole.events)
    packed = pack(history, raw)
    assert packed.sha256 == hashlib.sha256(raw).hexdigest() and packed.size_bytes == len(raw)
    assert packed.content == gzip.compress(raw, compresslevel=COMPRESS_LEVEL, mtime=0)
    assert list(unpack("incident-x", packed.content, packed.sha256).events) == list(whole.events)
    # What was archived at level 6 before reads back the same.
    before = gzip.compress(raw, compresslevel=6, mtime=0)
    assert list(unpack("incident-x", before, packed.sha256).events) == list(whole.events)
