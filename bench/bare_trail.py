"""The bare counterpart of a 1,000-line incident, for the replay's comparisons: a workflow of
`decide` updates, one do-nothing activity each, continuing as new every `per_run` of them
(100: about the incident's decisions per run). Kept apart from what drives the bench, so
that `bench.bare_replay` imports only the SDK and this."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.client import Client, WorkflowUpdateFailedError
from temporalio.service import RPCError
from temporalio.worker import Replayer, UnsandboxedWorkflowRunner, Worker

BARE_TRAIL = "BareTrail"
QUEUE = "bench-bare-trail"
PER_RUN = 100


@activity.defn(name="bare_trail_step")
async def bare_trail_step(n: int) -> None:
    """Nothing: Temporal's cost of an activity."""


@workflow.defn(name=BARE_TRAIL)
class BareTrail:
    """`decide` updates, one activity each, continuing as new every `per_run` of them."""

    def __init__(self) -> None:
        self._decided = 0
        self._first = 0
        self._per_run = 0
        self._busy = 0

    @workflow.run
    async def run(self, start: dict[str, int]) -> None:
        self._decided = self._first = start["decided"]
        self._per_run = start["per_run"]
        await workflow.wait_condition(lambda: self._busy == 0 and self._full())
        workflow.continue_as_new({"decided": self._decided, "per_run": self._per_run})

    def _full(self) -> bool:
        return self._per_run > 0 and self._decided - self._first >= self._per_run

    @workflow.update(name="decide")
    async def decide(self, request: dict[str, Any]) -> dict[str, Any]:
        self._busy += 1
        try:
            await workflow.execute_activity(
                bare_trail_step, self._decided, start_to_close_timeout=timedelta(seconds=30)
            )
            self._decided += 1
            return {"kind": "accepted", "seq": self._decided}
        finally:
            self._busy -= 1

    @decide.validator
    def _taken(self, request: dict[str, Any]) -> None:
        # Turned away (nothing enters the history) while the run readies to continue: the
        # sender sends it again, to the next run.
        if self._busy or self._full():
            raise ValueError("continuing as new")


async def drive(client: Client, workflow_id: str, decisions: int, per_run: int = PER_RUN) -> None:
    """A bare trail of `decisions`, one after the other, on a worker of its own."""
    worker = Worker(
        client,
        task_queue=QUEUE,
        workflows=[BareTrail],
        activities=[bare_trail_step],
        # Defined in this module, which the sandbox would import afresh: it isolates nothing
        # measured here (only the replays are timed).
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    async with worker:
        await client.start_workflow(
            BARE_TRAIL, {"decided": 0, "per_run": per_run}, id=workflow_id, task_queue=QUEUE
        )
        handle = client.get_workflow_handle(workflow_id)
        sent = 0
        while sent < decisions:
            try:
                await handle.execute_update("decide", {"reading": sent})
                sent += 1
            except (WorkflowUpdateFailedError, RPCError):  # turned away while it continues
                await asyncio.sleep(0.02)


def replayer() -> Replayer:
    """A replayer of bare trails, set as `yuqing audit --replay` sets its own (unsandboxed, no
    deadlock timer, a named build id)."""
    return Replayer(
        workflows=[BareTrail],
        workflow_runner=UnsandboxedWorkflowRunner(),
        debug_mode=True,
        build_id="bench-bare-trail-replay",
    )
