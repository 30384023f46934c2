"""The API's one way to Temporal: every decision goes through `Workflows.decide`.

A decision is one round trip: the workflow's `decide` update puts it in the same inbox as the
signals, and answers once the incident (or the post) has decided it, with the trail entry it
added. A refusal is raised as `Refusal` (its kind gives the status). Temporal's own troubles
become 404 (unknown), 409 (ended), 503 (unreachable) or 504 (nobody decided in time). A report
is one round trip too: update-with-start starts the incident or joins the open one.
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
    WorkflowQueryFailedError,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from api.errors import ApiError, Refusal, temporal_error, what_of
from starter import decide, report_incident
from yuqing import incident_workflow_id
from yuqing.i18n import Said
from yuqing.models import IncidentReport
from yuqing.settings import Settings
from yuqing.signing import KeysError, Signer, signer_from_env
from yuqing.state import Tracked, TrailEntry

S = TypeVar("S", bound=Tracked)

# A query is answered from the incident's worker in milliseconds, or once another worker has
# taken the incident over (its worker died: the workflow task's 10 s timeout and a retry); one
# that takes longer than this means Temporal (or every worker) is not answering: 503 rather
# than a long wait. A frozen Temporal is found sooner, by the client's keep-alive (~12 s).
QUERY_TIMEOUT = timedelta(seconds=20)
# A post's workflow starts a moment after its incident decided it (one workflow task); this is
# how long a step sent to it meanwhile waits for it (Workflows._post_started).
POST_START_PATIENCE = timedelta(seconds=10)


@dataclass(frozen=True)
class Reported:
    entry: TrailEntry
    submission_id: str
    created: bool


def workflow_parts(workflow_id: str) -> tuple[str, str]:
    """The incident id and the post id ("" for an incident's own workflow) a workflow id names."""
    incident, _, post = workflow_id.removeprefix("incident-").partition("-post-")
    return incident, post


def describe_workflow(workflow_id: str) -> Said:
    """How errors name a workflow: `incident t-1`, `post p1 of incident t-1`."""
    incident, post = workflow_parts(workflow_id)
    return what_of("post", post, incident) if post else what_of("incident", incident)


class Workflows:
    """Reads states, decides, and starts incidents."""

    def __init__(
        self,
        client: Client,
        task_queue: str,
        *,
        patience: timedelta = timedelta(seconds=30),
        signer: Signer,
        query_timeout: timedelta = QUERY_TIMEOUT,
    ) -> None:
        self.client = client
        self.task_queue = task_queue
        self.patience = patience
        self.query_timeout = query_timeout
        # The API's service key: every decision sent through here is signed with it, in the
        # name of the person the token authenticated (who is named in the payload).
        self.signer = signer

    @property
    def address(self) -> str:
        return self.client.service_client.config.target_host

    async def state(self, workflow_id: str, model: type[S], what: str) -> S:
        return await self.query(workflow_id, "state", model, what)

    async def query(
        self, workflow_id: str, name: str, model: type[Any], what: str, *args: Any
    ) -> Any:
        handle = self.client.get_workflow_handle(workflow_id)
        try:
            return await handle.query(
                name, *args, result_type=model, rpc_timeout=self.query_timeout
            )
        except WorkflowQueryFailedError as err:
            raise ApiError(409, Said("api.no_state", what=what, cause=str(err))) from err
        except RPCError as err:
            if err.status in (RPCStatusCode.DEADLINE_EXCEEDED, RPCStatusCode.CANCELLED):
                # A query waits for nobody's decision: Temporal (or the incident's worker)
                # is not answering, and the caller may try again. (The SDK ends a call past
                # its rpc_timeout as CANCELLED "Timeout expired".)
                raise ApiError(
                    503,
                    Said(
                        "api.query_late",
                        address=self.address,
                        what=what,
                        seconds=f"{self.query_timeout.total_seconds():g}",
                    ),
                ) from err
            raise temporal_error(err, self.address, what) from err
        except RuntimeError as err:
            raise temporal_error(err, self.address, what) from err

    async def decide(
        self, workflow_id: str, signal: str, payload: dict[str, Any], actor: str
    ) -> TrailEntry:
        """Have the workflow decide `signal` and return the trail entry of its acceptance.

        `actor` is the person the API acts for (the token's); the payload names them already.
        Raises `Refusal` when the workflow refuses, `ApiError` when Temporal cannot answer.
        The one way a decision leaves the API: signed here for `workflow_id` with the API's
        service key, so the workflow can check who made it (yuqing.signing).
        """
        signed = self.signer.sign(workflow_id, signal, payload)
        what = describe_workflow(workflow_id)
        try:
            # One round trip (sent again only while the workflow continues as new).
            try:
                entry = await decide(
                    self.client, workflow_id, signal, signed, patience=self.patience
                )
            except RPCError as err:
                if err.status is not RPCStatusCode.NOT_FOUND or not await self._post_started(
                    workflow_id
                ):
                    raise
                entry = await decide(
                    self.client, workflow_id, signal, signed, patience=self.patience
                )
        except WorkflowUpdateFailedError as err:
            cause = err.cause
            if isinstance(cause, ApplicationError) and cause.type == "WorkflowEnded":
                raise ApiError(409, Said("api.ended", what=what)) from err
            raise ApiError(
                502, Said("api.undecidable", what=what, signal=signal, cause=str(cause))
            ) from err
        except WorkflowUpdateRPCTimeoutOrCancelledError as err:
            raise self._undecided(signal, what) from err
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                raise await self._gone(workflow_id, what) from err
            if err.status is RPCStatusCode.DEADLINE_EXCEEDED:
                raise self._undecided(signal, what) from err
            raise temporal_error(err, self.address, what) from err
        except RuntimeError as err:
            raise temporal_error(err, self.address, what) from err
        if entry.refused:
            raise Refusal(entry)
        return entry

    async def report(self, report: IncidentReport) -> Reported:
        """Start the incident, or add this report to the open incident of the same story."""
        what = what_of("incident", report.incident_id)
        try:
            entry = await report_incident(
                self.client, report, self.task_queue, patience=self.patience
            )
        except WorkflowAlreadyStartedError as err:
            raise ApiError(409, Said("api.closed_no_reports", what=what)) from err
        except WorkflowUpdateFailedError as err:
            raise ApiError(
                502, Said("api.report_not_taken", what=what, cause=str(err.cause))
            ) from err
        except WorkflowUpdateRPCTimeoutOrCancelledError as err:
            raise self._undecided(Said("api.the_report"), what) from err
        except RPCError as err:
            if err.status is RPCStatusCode.ALREADY_EXISTS:
                raise ApiError(409, Said("api.closed_no_reports", what=what)) from err
            if err.status is RPCStatusCode.DEADLINE_EXCEEDED:
                raise self._undecided(Said("api.the_report"), what) from err
            raise temporal_error(err, self.address, what) from err
        except RuntimeError as err:
            raise temporal_error(err, self.address, what) from err
        if entry.refused:
            raise Refusal(entry)
        assert report.submission_id, "the route names every submission"
        return Reported(entry, report.submission_id, created=entry.kind == "discovered")

    def _undecided(self, signal: str, what: str) -> ApiError:
        return ApiError(
            504,
            Said(
                "api.undecided",
                signal=signal,
                what=what,
                patience=str(self.patience),
                task_queue=self.task_queue,
            ),
        )

    async def _post_started(self, workflow_id: str) -> bool:
        """Whether `workflow_id` is a post its incident has taken but was still starting: the
        incident answers `POST .../posts` once it has decided the post, and starts the post's
        workflow a moment later, so a step sent at once found no workflow (404). Waits (within
        POST_START_PATIENCE) for the post's workflow to exist; False for a post the incident
        does not know, or an incident that does not answer."""
        incident_id, post_id = workflow_parts(workflow_id)
        if not post_id:
            return False
        from yuqing.state import IncidentState

        what = what_of("incident", incident_id)
        try:
            state = await self.state(incident_workflow_id(incident_id), IncidentState, what)
        except ApiError:
            return False
        if not any(post.post_id == post_id for post in state.posts):
            return False
        handle = self.client.get_workflow_handle(workflow_id)
        loop = asyncio.get_running_loop()
        give_up = loop.time() + POST_START_PATIENCE.total_seconds()
        while True:
            try:
                await handle.describe(rpc_timeout=self.query_timeout)
                return True
            except RPCError as err:
                if err.status is not RPCStatusCode.NOT_FOUND or loop.time() > give_up:
                    return False
            await asyncio.sleep(0.05)

    async def _gone(self, workflow_id: str, what: str) -> ApiError:
        """404 for a workflow that never was, 409 for one that has ended."""
        try:
            description = await self.client.get_workflow_handle(workflow_id).describe()
        except RPCError as err:
            if err.status is RPCStatusCode.NOT_FOUND:
                return ApiError(404, Said("api.not_found", what=what))
            return temporal_error(err, self.address, what)
        if description.status is WorkflowExecutionStatus.RUNNING:
            return ApiError(502, Said("api.update_not_taken", what=what))
        status = description.status.name.lower() if description.status else "gone"
        return ApiError(409, Said("api.ended_as", what=what, status=status))


def api_signer(settings: Settings) -> Signer:
    """The API's service key (YUQING_SIGNING_KEY and YUQING_SIGNING_KEY_ID, or
    YUQING_SIGNING_KEY_B64); without it the API cannot send a decision, so it does not start."""
    env = dict(os.environ)
    if settings.signing_key_id:
        env["YUQING_SIGNING_KEY_ID"] = settings.signing_key_id
    signer = signer_from_env(env, key_path=settings.signing_key_path)
    if signer is None:
        raise KeysError(
            "the API signs every decision it sends: set YUQING_SIGNING_KEY (its private key "
            "file) and YUQING_SIGNING_KEY_ID (README, Security)"
        )
    return signer
