"""Signals that answer at once: send one, then read the workflow's trail for its decision.

Like `starter.signal_and_wait`, but for an incident and for a post alike, telling apart an
unknown workflow (404), an ended one (409), an unreachable Temporal (503); and it waits for the
entry that names the sender, so two people signalling one incident at once each get their own
answer.
"""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, TypeVar

from temporalio.client import (
    Client,
    WorkflowExecutionStatus,
    WorkflowFailureError,
    WorkflowHandle,
    WorkflowQueryFailedError,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError, Refusal, temporal_error
from starter import report_incident
from yuqing import incident_workflow_id
from yuqing.models import IncidentReport
from yuqing.settings import Settings
from yuqing.signing import KeysError, Signer, signer_from_env
from yuqing.state import IncidentState, Tracked, TrailEntry

S = TypeVar("S", bound=Tracked)

# Intake failures that are the report's fault (workflows/incident.py): answered as bad input.
_INPUT_FAILURES = ("InvalidReport", "UnknownUnit")


@dataclass(frozen=True)
class Reported:
    state: IncidentState
    submission_id: str
    created: bool


class Workflows:
    """The API's one way to Temporal: reads states, sends signals, starts incidents."""

    def __init__(
        self,
        client: Client,
        task_queue: str,
        *,
        patience: timedelta = timedelta(seconds=30),
        poll: float = 0.1,
        signer: Signer,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.patience = patience
        self.poll = poll
        # The API's service key: every decision sent through here is signed with it, in the
        # name of the person the token authenticated (who is named in the payload).
        self.signer = signer

    @property
    def address(self) -> str:
        return self.client.service_client.config.target_host

    async def state(self, workflow_id: str, model: type[S], what: str) -> S:
        return await self._query(self.client.get_workflow_handle(workflow_id), model, what)

    async def signal(
        self,
        workflow_id: str,
        model: type[S],
        signal: str,
        payload: dict[str, Any],
        actor: str,
        what: str,
    ) -> TrailEntry:
        """Send `signal` and return the trail entry of its acceptance; raise `Refusal` if not.

        The one way a decision leaves the API: signed here for `workflow_id` with the API's
        service key, so the workflow can check who made it (yuqing.signing).
        """
        handle = self.client.get_workflow_handle(workflow_id)
        # Also tells an unknown workflow (404) from an ended one, which refuses the signal below.
        before = len((await self._query(handle, model, what)).trail)
        try:
            await handle.signal(signal, self.signer.sign(workflow_id, signal, payload))
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise ApiError(409, f"{what} has ended: it takes no more signals") from err
            raise temporal_error(err, self.address, what) from err
        except RuntimeError as err:
            raise temporal_error(err, self.address, what) from err
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.patience.total_seconds()
        someone_elses: TrailEntry | None = None
        while loop.time() < give_up:
            new = (await self._query(handle, model, what)).trail[before:]
            for entry in new:
                if entry.signal == signal and entry.actor == actor:
                    return _answer(entry)
                if entry.signal == signal and entry.refused and entry.actor is None:
                    # A proof refused names nobody (nobody is proven): ours, as we just signed.
                    return _answer(entry)
            someone_elses = someone_elses or next((e for e in new if e.signal == signal), None)
            await asyncio.sleep(self.poll)
        if someone_elses is not None:
            # A decision that does not name its sender: the only one there is must be ours.
            return _answer(someone_elses)
        raise ApiError(
            504,
            f"{signal} was delivered to {what} but not decided within {self.patience}: "
            f"is a worker polling task queue {self.task_queue}?",
        )

    async def report(self, report: IncidentReport) -> Reported:
        """Start the incident, or add this report to the open one for the same story.

        New or joined shows in the state once the incident has taken the submission: the
        first of its `submissions` is this one's only if this report started it.
        """
        workflow_id = incident_workflow_id(report.incident_id)
        what = f"incident {report.incident_id}"
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            before = len((await self._query(handle, IncidentState, what)).trail)
        except ApiError as err:
            if err.status != 404:
                raise
            before = 0
        submission_id = report.submission_id
        assert submission_id, "the route names every submission"
        try:
            await report_incident(self.client, report, self.task_queue)
        except WorkflowAlreadyStartedError as err:
            raise ApiError(
                409, f"{what} has ended; a closed incident takes no more reports"
            ) from err
        except (RPCError, RuntimeError) as err:
            raise temporal_error(err, self.address, what) from err
        loop = asyncio.get_running_loop()
        give_up = loop.time() + self.patience.total_seconds()
        polls = 0
        while loop.time() < give_up:
            polls += 1
            try:
                state: IncidentState | None = await handle.query("state", result_type=IncidentState)
            except (RPCError, WorkflowQueryFailedError):
                state = None  # its first workflow task has not run yet
            if state is not None:
                if submission_id in state.submissions:
                    created = state.submissions[0] == submission_id
                    return Reported(state, submission_id, created)
                for entry in state.trail[before:]:
                    refused = entry.refused and entry.signal == "add_evidence"
                    if refused and entry.actor == report.reporter_id:
                        raise Refusal(entry)
            if polls % 10 == 0:
                await self._unless_ended(handle, what)
            await asyncio.sleep(self.poll)
        raise ApiError(
            504,
            f"{what} did not take the report within {self.patience}: "
            f"is a worker polling task queue {self.task_queue}?",
        )

    async def _unless_ended(self, handle: WorkflowHandle[Any, Any], what: str) -> None:
        description = await handle.describe()
        if description.status is WorkflowExecutionStatus.RUNNING:
            return
        if description.status is WorkflowExecutionStatus.FAILED:
            try:
                await handle.result()
            except WorkflowFailureError as err:
                cause = err.cause
                if isinstance(cause, ApplicationError) and cause.type in _INPUT_FAILURES:
                    raise ApiError(422, cause.message) from err
                raise ApiError(502, f"{what} failed: {cause}") from err
        status = description.status.name.lower() if description.status else "gone"
        raise ApiError(409, f"{what} is {status}")

    async def _query(self, handle: WorkflowHandle[Any, Any], model: type[S], what: str) -> S:
        try:
            state: S = await handle.query("state", result_type=model)
        except WorkflowQueryFailedError as err:
            raise ApiError(409, f"{what} has no state: {err}") from err
        except (RPCError, RuntimeError) as err:
            raise temporal_error(err, self.address, what) from err
        return state


def api_signer(settings: Settings) -> Signer:
    """The API's service key (YUQING_SIGNING_KEY and YUQING_SIGNING_KEY_ID, or
    YUQING_SIGNING_KEY_B64); without it the API cannot send a decision, so it does not start."""
    env = {"YUQING_SIGNING_KEY_ID": settings.signing_key_id or ""}
    signer = signer_from_env(
        {**os.environ, **{k: v for k, v in env.items() if v}}, key_path=settings.signing_key_path
    )
    if signer is None:
        raise KeysError(
            "the API signs every decision it sends: set YUQING_SIGNING_KEY (its private key "
            "file) and YUQING_SIGNING_KEY_ID (README, Security)"
        )
    return signer


def _answer(entry: TrailEntry) -> TrailEntry:
    if entry.refused:
        raise Refusal(entry)
    return entry
