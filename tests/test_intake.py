"""Bad input at intake fails the incident at once with an error that names what is wrong."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.exceptions import ApplicationError

from tests.driver import IncidentDriver, report


async def _failure(driver: IncidentDriver, payload: object, workflow_id: str) -> ApplicationError:
    with pytest.raises(WorkflowFailureError) as failed:
        await driver.client.execute_workflow(
            "IncidentWorkflow", payload, id=workflow_id, task_queue=driver.task_queue
        )
    cause = failed.value.cause
    assert isinstance(cause, ApplicationError)
    return cause


async def test_malformed_report_names_the_fields(driver: IncidentDriver) -> None:
    payload = report().model_dump(mode="json")
    del payload["sensitivity"]
    payload["channel"] = "carrier pigeon"
    cause = await _failure(driver, payload, f"incident-{payload['incident_id']}")
    assert cause.type == "InvalidReport"
    assert "sensitivity: Field required" in cause.message
    assert "channel: Input should be" in cause.message


async def test_unit_unknown_to_the_roster_is_refused(driver: IncidentDriver) -> None:
    incident = report(unit="no-such-branch")
    cause = await _failure(
        driver, incident.model_dump(mode="json"), f"incident-{incident.incident_id}"
    )
    assert cause.type == "UnknownUnit"
    assert "'no-such-branch' has no unit head" in cause.message
    assert (
        await driver.pool.fetch(
            "SELECT 1 FROM evidence WHERE incident_id = $1", incident.incident_id
        )
        == []
    )


async def test_workflow_id_must_follow_the_contract(driver: IncidentDriver) -> None:
    incident = report()
    cause = await _failure(driver, incident.model_dump(mode="json"), f"other-{uuid.uuid4()}")
    assert f"start it as 'incident-{incident.incident_id}'" in cause.message
