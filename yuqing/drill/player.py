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

from yuqing.drill.scenario import Step
from yuqing.state import IncidentState, PostState, TrailEntry

# How long to wait for the worker to decide a step (real time, not the skipped clock).
PATIENCE = 60.0
POLL = 0.05


class PlayerError(RuntimeError):
    """A step was never decided; the message says which."""


class Player:
    """Sends a scenario's steps to one incident and waits for each to be decided."""

    def __init__(self, client: Client, handle: WorkflowHandle[Any, Any]) -> None:
        self.client = client
        self.handle = handle

    async def state(self) -> IncidentState:
        return await self.handle.query("state", result_type=IncidentState)

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
        """Send `step`; the trail entry it produced (accepted or refused)."""
        payload = step.wire_payload(discovered_at, speed, now)
        if step.post is None:
            before = len((await self.state()).trail)
            await self.handle.signal(step.signal, payload)
            state = await self.until(
                lambda s: any(e.signal == step.signal for e in s.trail[before:])
            )
            return next(e for e in state.trail[before:] if e.signal == step.signal)
        post_id = step.post
        post = self.client.get_workflow_handle(f"{self.handle.id}-post-{post_id}")
        await self.until(lambda s: s.post(post_id) is not None)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + PATIENCE
        seen: int | None = None
        while seen is None:
            try:
                seen = len((await post.query("state", result_type=PostState)).trail)
            except Exception:  # the post's workflow is still starting
                if loop.time() > give_up:
                    raise
                await asyncio.sleep(POLL)
        await post.signal(step.signal, payload)
        while loop.time() < give_up:
            trail = (await post.query("state", result_type=PostState)).trail[seen:]
            entry = next((e for e in trail if e.signal == step.signal), None)
            if entry is not None:
                return entry
            await asyncio.sleep(POLL)
        raise PlayerError(f"post {step.post} never decided {step.signal}")
