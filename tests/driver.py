"""Drives one incident the way an intake channel and the officials would, and reads it back."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import uuid
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
from temporalio.api.enums.v1 import EventType
from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowHandle,
    WorkflowHistoryEventFilterType,
)
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment

from starter import decide
from tests.keys import signed
from workflows.incident import IncidentWorkflow
from workflows.post import NetizenPostWorkflow
from yuqing import incident_workflow_id
from yuqing.audit.history import load_history
from yuqing.models import IncidentReport
from yuqing.signing import Signer
from yuqing.state import IncidentState, IncidentSummary, PostState, TrailEntry, TrailPage

# How `send` signs: with the tests' service key (default), a person's own, or not at all.
UNSIGNED = "unsigned"

HISTORIES = Path(__file__).parent / "histories"
# Waiting here is for the worker to process what was sent, not for time to pass: the
# time-skipping server moves the clock only in `env.sleep` and while awaiting a result.
POLL = 0.05
PATIENCE = 30.0
# A query is answered by a worker; without a deadline of its own, one whose task is lost (a
# worker busy or gone) would wait for ever instead of failing the test with its reason.
QUERY_TIMEOUT = timedelta(seconds=30)
# How long an incident may take to end once a test waits for it, and each wait's own deadline.
RESULT_PATIENCE = 240.0
RESULT_GRACE = 5.0
RUNNING = WorkflowExecutionStatus.RUNNING
# Skips in a row (each given up by the server after ~30 s) that move the clock not at all.
SLEEP_STALLS = 3


def report(**overrides: Any) -> IncidentReport:
    fields: dict[str, Any] = {
        "incident_id": f"t-{uuid.uuid4().hex[:10]}",
        "title": "网传西乡塘某超市销售过期食品",
        "channel": "weibo",
        "reporter_id": "chen.jing",
        "unit": "xixiangtang-branch",
        "sensitivity": "important",
        "summary": "A Weibo post with photos claims a supermarket sells expired milk.",
        "source_url": "https://weibo.example/1234567890",
        "evidence": [
            {
                "kind": "screenshot",
                "source_url": "https://weibo.example/1234567890",
                "description": "the post with its photos",
                "content_base64": base64.b64encode(b"\x89PNG screenshot bytes").decode(),
            },
            {"kind": "web_page", "content_text": "<html>原帖内容</html>"},
        ],
    }
    fields.update(overrides)
    return IncidentReport.model_validate(fields)


UPWARD_REPORT = {
    "reporter_id": "li.ming",
    "medium": "新浪微博",
    "facts": {
        "time": "2026-11-28 09:10",
        "place": "西乡塘区某超市",
        "units_involved": ["西乡塘分局"],
        "course": "网民发帖称超市销售过期牛奶，配图三张",
        "outcome": "分局执法人员已到场核查，下架涉事商品",
    },
    "comment_tendency": "负面，要求监管部门回应",
}


def approval(approver: str, version: int, decision: str = "approve", comment: str = "") -> dict:
    return {
        "approver_id": approver,
        "decision": decision,
        "draft_version": version,
        "comment": comment,
    }


async def task_owed(handle: WorkflowHandle[Any, Any]) -> bool:
    """Whether the workflow has a workflow task scheduled or running, read from its history.

    The time-skipping test server never fills `pending_workflow_task` in its describe answer:
    between an activity's completion and the workflow task that takes its result, describe
    shows nothing pending there. The history does: a task scheduled after the last one
    completed (a failed or timed-out task is followed by a new one scheduled).
    """
    scheduled = completed = 0
    async for event in handle.fetch_history_events():
        if event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_SCHEDULED:
            scheduled = event.event_id
        elif event.event_type == EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED:
            completed = event.event_id
    return scheduled > completed


class IncidentDriver:
    def __init__(
        self, env: WorkflowEnvironment | Client, pool: asyncpg.Pool, task_queue: str
    ) -> None:
        self.env = env if isinstance(env, WorkflowEnvironment) else None
        self.client = env.client if isinstance(env, WorkflowEnvironment) else env
        self.pool = pool
        self.task_queue = task_queue
        self.handle: WorkflowHandle[IncidentWorkflow, IncidentSummary] | None = None
        self.calendar_override: Path | None = None

    async def start(self, incident: IncidentReport) -> IncidentState:
        self.handle = await self.client.start_workflow(
            IncidentWorkflow.run,
            incident,
            id=incident_workflow_id(incident.incident_id),
            task_queue=self.task_queue,
        )
        # Intake is done once the deadlines are planned.
        return await self.until(lambda s: bool(s.deadlines))

    async def state(self) -> IncidentState:
        assert self.handle is not None
        return await self.handle.query(IncidentWorkflow.state, rpc_timeout=QUERY_TIMEOUT)

    async def trail(self, workflow_id: str | None = None) -> list[TrailEntry]:
        """The whole trail the workflow holds, page by page (the `trail` query)."""
        assert self.handle is not None
        handle = self.client.get_workflow_handle(workflow_id or self.handle.id)
        lines: list[TrailEntry] = []
        offset = 0
        while True:
            page = await handle.query(
                "trail",
                {"offset": offset, "limit": 100},
                result_type=TrailPage,
                rpc_timeout=QUERY_TIMEOUT,
            )
            lines.extend(page.lines)
            offset = page.offset + len(page.lines)
            if not page.lines or offset >= page.total:
                return lines

    async def until(self, condition: Callable[[IncidentState], bool]) -> IncidentState:
        """The state once `condition` holds; fails, showing the trail, if it never does."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + PATIENCE
        while True:
            try:
                state = await self.state()
                if condition(state):
                    return state
            except Exception:  # the workflow may not have run its first task yet
                if loop.time() > deadline:
                    raise
                state = None
            if loop.time() > deadline:
                trail = "\n".join(f"  {e.kind}: {e.detail}" for e in (state.trail if state else []))
                raise AssertionError(f"the incident never reached the expected state:\n{trail}")
            await asyncio.sleep(POLL)

    async def until_published(self) -> IncidentState:
        """The state once the current draft is out on every one of its channels, and the
        incident at rest (notices decided earlier may still have been on their way)."""
        await self.until(
            lambda s: s.current_draft is not None and s.current_draft.status == "published"
        )
        await self.settle()
        return await self.state()

    async def send(
        self, signal: str, payload: Any, signer: Signer | str | None = None
    ) -> TrailEntry:
        """Have the incident decide `signal` (the `decide` update): the trail entry it added.

        Signed for this incident by the tests' service key, by `signer`, or (UNSIGNED) not.
        """
        assert self.handle is not None
        signed_payload = self.signed(self.handle.id, signal, payload, signer)
        return await decide(self.client, self.handle.id, signal, signed_payload)

    async def signal(
        self, signal: str, payload: Any, signer: Signer | str | None = None
    ) -> TrailEntry:
        """Send `signal` as a signal, and wait for the trail entry it produced."""
        assert self.handle is not None
        before = (await self.state()).trail_total
        await self.handle.signal(signal, self.signed(self.handle.id, signal, payload, signer))

        def decided(state: IncidentState) -> bool:
            return any(e.signal == signal for e in state.trail[before - state.trail_offset :])

        state = await self.until(decided)
        return next(e for e in state.trail[before - state.trail_offset :] if e.signal == signal)

    async def accepted(
        self, signal: str, payload: Any, signer: Signer | str | None = None
    ) -> TrailEntry:
        entry = await self.send(signal, payload, signer)
        assert not entry.refused, f"{signal} was refused: {entry.detail}"
        return entry

    async def refused(
        self, signal: str, payload: Any, signer: Signer | str | None = None
    ) -> TrailEntry:
        entry = await self.send(signal, payload, signer)
        assert entry.refused, f"{signal} was accepted: {entry.detail}"
        return entry

    @staticmethod
    def signed(workflow_id: str, signal: str, payload: Any, signer: Signer | str | None) -> Any:
        if signer == UNSIGNED:
            return payload
        assert not isinstance(signer, str)
        return signed(workflow_id, signal, payload, signer)

    async def sleep(self, duration: timedelta) -> None:
        """Let `duration` pass on the time-skipping server, once the incident is idle."""
        env = self.env
        assert env is not None, "only the time-skipping server can make time pass"
        await self.settle()
        target = await env.get_current_time() + duration
        stalled = 0
        while (remaining := target - await env.get_current_time()) > timedelta(0):
            try:
                await env.sleep(remaining)
            except RPCError as err:
                # The test server now and then drops a long skip after ~30 s (an HTTP/2
                # error); the clock has moved part of the way, so skip the rest. A clock that
                # does not move at all is held by a task nobody takes: say so, do not hang.
                moved = target - await env.get_current_time() < remaining
                stalled = 0 if moved else stalled + 1
                if stalled >= SLEEP_STALLS:
                    raise AssertionError(
                        f"the time-skipping server's clock does not move ({err}): a workflow "
                        "task or activity is waiting on a task queue nobody polls (a worker "
                        "that stopped before its workflows or their archivers finished?)"
                    ) from err

    async def jump_to(self, moment: datetime) -> None:
        """Move the clock forward to `moment` (the server's clock only moves forward)."""
        env = self.env
        assert env is not None, "only the time-skipping server can make time pass"
        if self.handle is None:
            await env.sleep(moment - await env.get_current_time())
        else:
            await self.sleep(moment - await env.get_current_time())

    # -- posts -------------------------------------------------------------------------------

    def post(self, post_id: str) -> WorkflowHandle[NetizenPostWorkflow, PostState]:
        assert self.handle is not None
        return self.client.get_workflow_handle_for(
            NetizenPostWorkflow.run, f"{self.handle.id}-post-{post_id}"
        )

    async def post_state(self, post_id: str) -> PostState:
        return await self.post(post_id).query(NetizenPostWorkflow.state, rpc_timeout=QUERY_TIMEOUT)

    async def until_post(self, post_id: str, condition: Callable[[PostState], bool]) -> PostState:
        """The post's state, as its incident lists it, once `condition` holds."""
        state = await self.until(lambda s: (p := s.post(post_id)) is not None and condition(p))
        post = state.post(post_id)
        assert post is not None
        return post

    async def to_post(
        self, post_id: str, signal: str, payload: Any, signer: Signer | str | None = None
    ) -> TrailEntry:
        """Have a post decide `signal` (its `decide` update): the trail entry it added."""
        workflow_id = self.post(post_id).id
        signed_payload = self.signed(workflow_id, signal, payload, signer)
        return await decide(self.client, workflow_id, signal, signed_payload)

    async def signal_post(
        self, post_id: str, signal: str, payload: Any, signer: Signer | str | None = None
    ) -> TrailEntry:
        """Signal a post and return the trail entry it produced (accepted or refused)."""
        handle = self.post(post_id)
        before = len((await self.post_state(post_id)).trail)
        await handle.signal(signal, self.signed(handle.id, signal, payload, signer))
        loop = asyncio.get_running_loop()
        give_up = loop.time() + PATIENCE
        while loop.time() < give_up:
            trail = (await self.post_state(post_id)).trail[before:]
            entry = next((e for e in trail if e.signal == signal), None)
            if entry is not None:
                return entry
            await asyncio.sleep(POLL)
        raise AssertionError(f"post {post_id} never decided {signal}")

    async def settle(self) -> None:
        """Wait until the incident and its posts have no workflow task or activity in flight."""
        assert self.handle is not None
        loop = asyncio.get_running_loop()
        give_up = loop.time() + PATIENCE
        while loop.time() < give_up:
            if await self._idle(self.handle.id):
                return
            await asyncio.sleep(POLL)

    async def _idle(self, workflow_id: str) -> bool:
        handle = self.client.get_workflow_handle(workflow_id)
        raw = (await handle.describe()).raw_description
        if raw.pending_activities or raw.HasField("pending_workflow_task"):
            return False
        if await task_owed(handle):
            return False
        for child in raw.pending_children:
            if not await self._idle(child.workflow_id):
                return False
        return True

    async def result(self) -> IncidentSummary:
        """The incident's summary once it has ended, across its runs.

        The time-skipping server can leave the client's history long-poll unanswered after the
        run it waits on has completed (seen in the soak: the run COMPLETED for minutes, the
        poll still open, retried past its own deadline). So while that wait goes on, the latest
        run is looked at too, and once it has ended its result is read from its history.
        """
        assert self.handle is not None
        loop = asyncio.get_running_loop()
        give_up = loop.time() + RESULT_PATIENCE
        waiting = asyncio.ensure_future(self.handle.result())
        ended_at: float | None = None
        try:
            while True:
                done, _ = await asyncio.wait([waiting], timeout=1.0)
                if done:
                    return waiting.result()
                latest = await self.client.get_workflow_handle(self.handle.id).describe()
                if latest.status not in (None, RUNNING, WorkflowExecutionStatus.CONTINUED_AS_NEW):
                    # Ended: give the long-poll its moment, then read the run's own history.
                    ended_at = ended_at or loop.time()
                    if loop.time() - ended_at > RESULT_GRACE:
                        return await self._ended_result(latest.run_id)
                if loop.time() > give_up:
                    raise AssertionError(
                        f"{self.handle.id} has not ended in {RESULT_PATIENCE:.0f} s:"
                        f" {latest.status.name if latest.status else '?'}"
                    )
        finally:
            waiting.cancel()

    async def _ended_result(self, run_id: str) -> IncidentSummary:
        assert self.handle is not None
        run = self.client.get_workflow_handle(self.handle.id, run_id=run_id)
        async for event in run.fetch_history_events(
            event_filter_type=WorkflowHistoryEventFilterType.CLOSE_EVENT
        ):
            if event.HasField("workflow_execution_completed_event_attributes"):
                payloads = event.workflow_execution_completed_event_attributes.result
                [summary] = await self.client.data_converter.decode_wrapper(
                    payloads, [IncidentSummary]
                )
                return cast(IncidentSummary, summary)
        # Failed, terminated or timed out: the SDK's own reading says how, as the test expects.
        return await run.result(follow_runs=False)

    async def save_history(self, name: str) -> None:
        """Keep this run's history for the replay test, when recording is asked for.

        `YUQING_HISTORY_SUFFIX` (e.g. `-decide`) is added to the name, so that histories of a
        new workflow version are saved beside the old ones, which must keep replaying.
        """
        if os.environ.get("YUQING_RECORD_HISTORIES") != "1":
            return
        assert self.handle is not None
        HISTORIES.mkdir(exist_ok=True)
        await self.settle()
        name += os.environ.get("YUQING_HISTORY_SUFFIX", "")
        handles = {name: self.handle.id}
        for post in (await self.state()).posts:
            handles[f"{name}.{post.post_id}"] = post.workflow_id
        for file_name, workflow_id in handles.items():
            # Decrypted: the session's key ring dies with the session, the file must not.
            history = await load_history(self.client, workflow_id)
            path = HISTORIES / f"{file_name}.json"
            path.write_text(json.dumps(json.loads(history.to_json()), indent=1) + "\n")

    async def save_runs(self, name: str) -> None:
        """Keep each run of this incident (continued as new) for the replay test, as
        `<name>.run<n>.json`, when recording is asked for."""
        if os.environ.get("YUQING_RECORD_HISTORIES") != "1":
            return
        assert self.handle is not None
        from yuqing.audit.history import load_runs

        HISTORIES.mkdir(exist_ok=True)
        name += os.environ.get("YUQING_HISTORY_SUFFIX", "")
        for number, run in enumerate(await load_runs(self.client, self.handle.id), start=1):
            path = HISTORIES / f"{name}.run{number}.json"
            path.write_text(json.dumps(json.loads(run.to_json()), indent=1) + "\n")

    async def terminate_if_running(self) -> None:
        """End a workflow the test left running, once its activities in flight are done.

        The time-skipping server keeps its clock still while an activity is in flight, and an
        activity cut off by a termination holds it until the activity's timeout, which would
        stall the next test's `env.sleep`.
        """
        if self.handle is None:
            return
        if (await self.handle.describe()).status != WorkflowExecutionStatus.RUNNING:
            return
        await self.settle()
        try:
            await self.handle.terminate("test finished")
        except RPCError as err:
            # It finished by itself meanwhile, which is all this wanted.
            if err.status != RPCStatusCode.NOT_FOUND:
                raise

    async def rows(self, table: str) -> list[asyncpg.Record]:
        assert self.handle is not None
        incident_id = self.handle.id.removeprefix("incident-")
        return await self.pool.fetch(f"SELECT * FROM {table} WHERE incident_id = $1", incident_id)
