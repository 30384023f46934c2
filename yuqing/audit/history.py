"""The decision trail from the Temporal history alone, and replayed through today's code.

The history is the event-sourced record: every trail line an incident (or a post) decided was
handed, in order, to the `record_trail` activity, whose inputs the history keeps. Reading those
inputs back needs neither the workflow's code nor the database. Replaying the same history
through today's workflow code yields the trail today's code decides; the two side by side answer
"would today's code have decided the same?" (the rules themselves, policy and roster, are those
recorded in the history: an incident is judged by the rules in force when it began, SPEC §7).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.client import Client, WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import (
    ExecuteWorkflowInput,
    Interceptor,
    Replayer,
    UnsandboxedWorkflowRunner,
    WorkflowInboundInterceptor,
    WorkflowInterceptorClassInput,
)

from yuqing.effects import RecordTrail
from yuqing.state import IncidentState, PostState, TrailEntry

RECORD_TRAIL = "record_trail"


@dataclass(frozen=True)
class TrailLine:
    """One line of a workflow's decision trail, where it stands in that trail."""

    workflow_id: str
    post_id: str | None
    seq: int
    at: datetime
    kind: str
    actor: str | None
    role: str | None
    signal: str | None
    refused: bool
    refusal_kind: str | None
    detail: str

    @classmethod
    def of(cls, workflow_id: str, post_id: str | None, seq: int, entry: TrailEntry) -> TrailLine:
        return cls(
            workflow_id=workflow_id,
            post_id=post_id,
            seq=seq,
            at=entry.at,
            kind=entry.kind,
            actor=entry.actor,
            role=entry.role,
            signal=entry.signal,
            refused=entry.refused,
            refusal_kind=entry.refusal_kind,
            detail=entry.detail,
        )

    def same_decision(self, other: TrailLine) -> bool:
        """Equal in what was decided; `at` is compared to the microsecond as recorded."""
        return (
            self.seq,
            self.at,
            self.kind,
            self.actor,
            self.role,
            self.signal,
            self.refused,
            self.refusal_kind,
            self.detail,
        ) == (
            other.seq,
            other.at,
            other.kind,
            other.actor,
            other.role,
            other.signal,
            other.refused,
            other.refusal_kind,
            other.detail,
        )


async def load_history(client: Client, workflow_id: str) -> WorkflowHistory:
    return await client.get_workflow_handle(workflow_id).fetch_history()


def recorded_trail(history: WorkflowHistory) -> list[TrailLine]:
    """The trail as the workflow recorded it, read from its `record_trail` activities."""
    lines: list[TrailLine] = []
    converter = pydantic_data_converter.payload_converter
    for event in history.events:
        if not event.HasField("activity_task_scheduled_event_attributes"):
            continue
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name != RECORD_TRAIL:
            continue
        request = converter.from_payload(attributes.input.payloads[0], RecordTrail)
        for offset, entry in enumerate(request.entries):
            seq = request.first_seq + offset
            lines.append(TrailLine.of(request.workflow_id, request.post_id, seq, entry))
    return lines


@dataclass
class Replayed:
    """What today's code makes of a history: its state, or why it could not replay it."""

    state: IncidentState | PostState | None
    error: str | None

    @property
    def trail(self) -> list[TrailLine]:
        if self.state is None:
            return []
        post_id = self.state.post_id if isinstance(self.state, PostState) else None
        return [
            TrailLine.of(self.state.workflow_id, post_id, seq, entry)
            for seq, entry in enumerate(self.state.trail)
        ]


async def replay(history: WorkflowHistory) -> Replayed:
    """Run the history through today's workflow code and keep the state it arrives at."""
    # Imported here: the workflows import this package's siblings at module level.
    from workflows.incident import IncidentWorkflow
    from workflows.post import NetizenPostWorkflow

    captured: dict[str, Any] = {}

    class _Capture(WorkflowInboundInterceptor):
        async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
            captured["instance"] = workflow.instance()
            return await super().execute_workflow(input)

    class _Interceptor(Interceptor):
        def workflow_interceptor_class(
            self, input: WorkflowInterceptorClassInput
        ) -> type[WorkflowInboundInterceptor] | None:
            return _Capture

    replayer = Replayer(
        workflows=[IncidentWorkflow, NetizenPostWorkflow],
        data_converter=pydantic_data_converter,
        interceptors=[_Interceptor()],
        # Unsandboxed, so the instance the interceptor keeps is readable after the replay.
        workflow_runner=UnsandboxedWorkflowRunner(),
    )
    result = await replayer.replay_workflow(history, raise_on_replay_failure=False)
    error = str(result.replay_failure) if result.replay_failure else None
    instance = captured.get("instance")
    state: IncidentState | PostState | None = None
    if isinstance(instance, IncidentWorkflow):
        state = instance.state()
    elif isinstance(instance, NetizenPostWorkflow):
        state = instance.state()
    return Replayed(state=state, error=error)


@dataclass(frozen=True)
class Difference:
    seq: int
    recorded: TrailLine | None
    other: TrailLine | None

    def describe(self, other_name: str) -> str:
        if self.recorded is None and self.other is not None:
            return f"#{self.seq}: only in {other_name}: {self.other.kind}: {self.other.detail}"
        if self.other is None and self.recorded is not None:
            return f"#{self.seq}: missing from {other_name}: {self.recorded.kind}: " + (
                self.recorded.detail
            )
        assert self.recorded is not None and self.other is not None
        return (
            f"#{self.seq}: history says {self.recorded.kind}: {self.recorded.detail} "
            f"({self.recorded.at.isoformat()}); {other_name} says {self.other.kind}: "
            f"{self.other.detail} ({self.other.at.isoformat()})"
        )


def compare(recorded: list[TrailLine], other: list[TrailLine]) -> list[Difference]:
    """Row by row, by position in the trail."""
    mine = {line.seq: line for line in recorded}
    theirs = {line.seq: line for line in other}
    differences = []
    for seq in sorted(mine.keys() | theirs.keys()):
        a, b = mine.get(seq), theirs.get(seq)
        if a is None or b is None or not a.same_decision(b):
            differences.append(Difference(seq, a, b))
    return differences
