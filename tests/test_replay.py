"""Replay every saved history through today's workflow code: a non-deterministic change fails.

The histories under tests/histories/ come from the scenario tests; to record them afresh run
`YUQING_RECORD_HISTORIES=1 ./dev test` and commit the files. Re-record only for a change that
is meant to be compatible and is guarded by `workflow.patched`: old histories must keep passing.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workflows.incident import IncidentWorkflow


def workflow_id(history: dict[str, Any]) -> str:
    """The id the workflow ran under, from the incident id in its recorded input."""
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]
    payload = json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))
    return f"incident-{payload['incident_id']}"


HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_saved() -> None:
    names = {path.stem for path in HISTORIES}
    assert {
        "general_published_in_time",
        "major_three_step_chain",
        "missed_report_important",
        "missed_report_especially_major",
        "missed_publish_statement",
        "rejection_and_new_drafts",
        "upgrade_by_reposts",
        "refused_signals",
    } <= names


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path) -> None:
    text = path.read_text()  # noqa: ASYNC240 - a small local file, read once
    history = WorkflowHistory.from_json(workflow_id(json.loads(text)), text)
    replayer = Replayer(workflows=[IncidentWorkflow], data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
