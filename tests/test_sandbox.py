"""The worker's lean sandbox (yuqing.sandbox): the installed SDK is the one it knows, and a
workflow in it is as restricted as in the SDK's own (every scenario test runs in it too)."""

from __future__ import annotations

import uuid

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker
from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError

from tests.sandbox_workflows import Echoes, ReadsTheClock
from yuqing.sandbox import is_lean, lean_runner


def test_the_installed_sdk_gets_the_lean_runner() -> None:
    # If this fails after a Temporal SDK upgrade, the worker still runs (on the SDK's own,
    # slower runner, with a warning): adapt yuqing/sandbox.py to the new SDK's internals.
    assert is_lean(lean_runner())


async def test_a_workflow_in_the_lean_sandbox_is_restricted_and_runs(
    env: WorkflowEnvironment,
) -> None:
    queue = f"sandbox-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[ReadsTheClock, Echoes],
        workflow_runner=lean_runner(),
        workflow_failure_exception_types=[RestrictedWorkflowAccessError],
    ):
        echoed = await env.client.execute_workflow(
            Echoes.run, "同意", id=f"echo-{uuid.uuid4()}", task_queue=queue
        )
        assert echoed.endswith(": 同意") and echoed.startswith("echo-")
        with pytest.raises(WorkflowFailureError) as failed:
            await env.client.execute_workflow(
                ReadsTheClock.run, id=f"clock-{uuid.uuid4()}", task_queue=queue
            )
    assert "datetime.datetime.now" in str(failed.value.cause)
