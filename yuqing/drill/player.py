"""Sends a scenario's steps to a drill incident and waits for each to be decided.

Used by `yuqing drill --simulate` on the time-skipping server and by tests on the dev server;
the caller decides when each step is due (the skipped clock, or a condition).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
from typing import Any

from temporalio.client import Client, WorkflowHandle
from temporalio.service import RPCError, RPCStatusCode

from starter import decide
from yuqing.drill.report import Trails, whole_trails
from yuqing.drill.scenario import Step
from yuqing.signing import Signer
from yuqing.state import TRAIL_PAGE, IncidentState, TrailEntry, TrailPage

# How long to wait for the worker to decide a step (real time, not the skipped clock).
PATIENCE = 60.0
POLL = 0.05


class PlayerError(RuntimeError):
    """A step was never decided; the message says which."""


class Player:
    """Sends a scenario's steps to one incident and waits for each to be decided."""

    def __init__(
        self, client: Client, handle: WorkflowHandle[Any, Any], signer: Signer | None = None
    ) -> None:
        self.client = client
        self.handle = handle
        # Decisions are accepted only with their proof: the player signs each step with a
        # service key the worker's keys file names (none: an unsigned workflow, of old).
        self.signer = signer

    async def state(self) -> IncidentState:
        return await self.handle.query("state", result_type=IncidentState)

    async def trails(self, state: IncidentState) -> Trails:
        """The incident's and its posts' whole trails (the state holds the latest lines)."""
        return await whole_trails(state, self.trail_page)

    async def trail_page(self, workflow_id: str, offset: int) -> TrailPage:
        handle = self.client.get_workflow_handle(workflow_id)
        return await handle.query(
            "trail", {"offset": offset, "limit": TRAIL_PAGE}, result_type=TrailPage
        )

    async def until(self, condition: Callable[[IncidentState], bool]) -> IncidentState:
        loop = asyncio.get_running_loop()
        give_up = loop.time() + PATIENCE
        while True:
            try:
                state = await self.state()
                if condition(state):
                    return state
            except Exception:  # not started yet; the patience below decides
                if loop.time() > give_up:
                    raise
            if loop.time() > give_up:
                raise PlayerError(f"{self.handle.id} never reached the expected state")
            await asyncio.sleep(POLL)

    async def settled(self) -> IncidentState:
        """The state once no workflow task or activity is in flight."""
        loop = asyncio.get_running_loop()
        give_up = loop.time() + PATIENCE
        while loop.time() < give_up:
            raw = (await self.handle.describe()).raw_description
            if not raw.pending_activities and not raw.HasField("pending_workflow_task"):
                break
            await asyncio.sleep(POLL)
        return await self.state()

    async def send(
        self, step: Step, discovered_at: datetime, speed: float, now: datetime | None = None
    ) -> TrailEntry:
        """Have the incident (or the step's post) decide `step`: the trail entry it added."""
        payload = step.wire_payload(discovered_at, speed, now)
        if step.post is None:
            return await decide(
                self.client,
                self.handle.id,
                step.signal,
                self._signed(self.handle.id, step, payload),
            )
        post_id = step.post
        await self.until(lambda s: s.post(post_id) is not None)
        workflow_id = f"{self.handle.id}-post-{post_id}"
        loop = asyncio.get_running_loop()
        give_up = loop.time() + PATIENCE
        while True:
            try:
                signed = self._signed(workflow_id, step, payload)
                return await decide(self.client, workflow_id, step.signal, signed)
            except RPCError as err:
                # The post's workflow may still be starting.
                if err.status != RPCStatusCode.NOT_FOUND or loop.time() > give_up:
                    raise PlayerError(f"post {post_id} could not decide {step.signal}") from err
                await asyncio.sleep(POLL)

    def _signed(self, workflow_id: str, step: Step, payload: dict[str, Any]) -> dict[str, Any]:
        if self.signer is None:
            return payload
        return self.signer.sign(workflow_id, step.signal, payload)
