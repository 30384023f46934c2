"""The decision trail from the Temporal history alone, and replayed through today's code.

The history is the event-sourced record: every trail line an incident (or a post) decided was
handed, in order, to the `record_trail` activity, whose inputs the history keeps. Reading those
inputs back needs neither the workflow's code nor the database. Replaying the same history
through today's workflow code yields the trail today's code decides; the two side by side answer
"would today's code have decided the same?" (the rules themselves, policy and roster, are those
recorded in the history: an incident is judged by the rules in force when it began, SPEC §7).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any, TypeVar

from temporalio.api.enums.v1 import EventType
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

from yuqing import NETIZEN_POST_WORKFLOW, payload_passes
from yuqing.codec import is_encrypted, payloads_in

# (tools) The models are imported where they are used: `yuqing audit` reads the trail from
# the record_trail inputs as JSON, and the pydantic models (yuqing.effects, yuqing.state)
# cost it more than the reading itself.
if TYPE_CHECKING:
    import asyncpg
    from temporalio.client import Client, WorkflowHistory
    from temporalio.service import WorkflowService

    from yuqing.state import IncidentState, PostState, TrailEntry


@dataclass(frozen=True)
class RunHistory:
    """One run's events, read as `temporalio.client.WorkflowHistory` holds them (same fields,
    `run_id` and `to_json`), without importing the client: a third of `yuqing audit`'s start.
    Every function here takes either."""

    workflow_id: str
    events: list[Any]

    @property
    def run_id(self) -> str:
        return self.events[0].workflow_execution_started_event_attributes.original_execution_run_id

    def to_json(self) -> str:
        from google.protobuf import json_format
        from temporalio.api.history.v1 import History

        return json_format.MessageToJson(History(events=self.events))


if TYPE_CHECKING:
    from typing import TypeAlias

    AnyRun: TypeAlias = WorkflowHistory | RunHistory


@dataclass(frozen=True)
class Reader:
    """What reading histories needs of a Temporal client: its service, namespace and data
    converter (a `temporalio.client.Client` has all three)."""

    workflow_service: WorkflowService
    namespace: str
    data_converter: DataConverter


async def _latest_run_id(client: Client | Reader, workflow_id: str) -> str:
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import DescribeWorkflowExecutionRequest

    request = DescribeWorkflowExecutionRequest(
        namespace=client.namespace, execution=WorkflowExecution(workflow_id=workflow_id)
    )
    described = await client.workflow_service.describe_workflow_execution(request, retry=True)
    return str(described.workflow_execution_info.execution.run_id)


async def _page(
    client: Client | Reader, workflow_id: str, run_id: str, token: bytes, size: int = 0
) -> tuple[list[Any], bytes]:
    """One page of a run's events (at most `size`, if given, else as many as Temporal
    sends), and the token of the next (empty: none)."""
    from temporalio.api.common.v1 import WorkflowExecution
    from temporalio.api.workflowservice.v1 import GetWorkflowExecutionHistoryRequest

    request = GetWorkflowExecutionHistoryRequest(
        namespace=client.namespace,
        execution=WorkflowExecution(workflow_id=workflow_id, run_id=run_id),
        next_page_token=token,
        maximum_page_size=size,
    )
    page = await client.workflow_service.get_workflow_execution_history(request, retry=True)
    return list(page.history.events), page.next_page_token


async def _rest_of_run(
    client: Client | Reader,
    workflow_id: str,
    run_id: str,
    events: list[Any],
    token: bytes,
    earlier: Callable[[str], Awaitable[AnyRun | None]] | None = None,
) -> AnyRun:
    """The run whose first page is `events`, every page after it read (as
    `WorkflowHandle.fetch_history` reads them); from `earlier` (the archive) if Temporal let
    the run go meanwhile (its retention passed between its first page and the rest)."""
    try:
        while token:
            more, token = await _page(client, workflow_id, run_id, token)
            events.extend(more)
    except RPCError as error:
        return await _kept_instead(error, run_id, earlier)
    return RunHistory(workflow_id, events)


async def _kept_instead(
    error: RPCError, run_id: str, earlier: Callable[[str], Awaitable[AnyRun | None]] | None
) -> AnyRun:
    """The run from `earlier` (the archive) when Temporal no longer has it; else `error`."""
    kept = None
    if error.status == RPCStatusCode.NOT_FOUND and earlier is not None:
        kept = await earlier(run_id)
    if kept is None:
        raise error
    return kept


class IncompleteHistory(Exception):
    """A run a later run continued from, whose history Temporal answers without its end."""


def _whole_continued_run(workflow_id: str, run: AnyRun) -> AnyRun:
    """A run a later run continued, as long as its history reaches its continue-as-new.

    Temporal's time-skipping test server was seen to keep a continued run's history without its
    last events (ending at a workflow task started); an audit reading such a run says so,
    rather than taking a cut trail for the whole one.
    """
    if run.events and run.events[-1].event_type == CONTINUED_AS_NEW_EVENT:
        return run
    raise IncompleteHistory(
        f"{workflow_id}: Temporal answers the history of run {run.run_id}, which a later run"
        f" continued from, without its end ({len(run.events)} events)"
    )


CONTINUED_AS_NEW_EVENT = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
RECORD_TRAIL = "record_trail"
H = TypeVar("H", bound="WorkflowHistory | RunHistory")


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
    # The line's words as catalog key + params (yuqing.i18n.render), when its history keeps
    # them; how it reads, not what was decided, so comparisons leave it out.
    message: dict[str, Any] | None = field(default=None, compare=False)

    @classmethod
    def read(
        cls, workflow_id: str, post_id: str | None, seq: int, entry: dict[str, Any]
    ) -> TrailLine:
        """From a `TrailEntry` as JSON (a record_trail input), without its model."""
        return cls(
            workflow_id=workflow_id,
            post_id=post_id,
            seq=seq,
            at=datetime.fromisoformat(entry["at"]),
            kind=entry["kind"],
            actor=entry.get("actor"),
            role=entry.get("role"),
            signal=entry.get("signal"),
            refused=bool(entry.get("refused", False)),
            refusal_kind=entry.get("refusal_kind"),
            detail=entry["detail"],
            message=entry.get("message"),
        )

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
            message=entry.message,
        )

    def same_decision(self, other: TrailLine, clock_slack: timedelta = timedelta(0)) -> bool:
        """Equal in what was decided; `at` to the microsecond, or within `clock_slack`."""
        if abs(self.at - other.at) > clock_slack:
            return False
        return (
            self.seq,
            self.kind,
            self.actor,
            self.role,
            self.signal,
            self.refused,
            self.refusal_kind,
            self.detail,
        ) == (
            other.seq,
            other.kind,
            other.actor,
            other.role,
            other.signal,
            other.refused,
            other.refusal_kind,
            other.detail,
        )


async def load_history(client: Client, workflow_id: str) -> WorkflowHistory:
    """The workflow's whole history: every run of it, oldest first, as one event list, its
    payloads decrypted (`decoded`)."""
    from temporalio.client import WorkflowHistory

    runs = await load_runs(client, workflow_id)
    return WorkflowHistory(workflow_id, [event for run in runs for event in run.events])


async def decoded(
    history: H, converter: DataConverter, *, trail_only: bool = False, results: bool = True
) -> H:
    """`history` with every payload decrypted by `converter`'s codec, in place.

    Temporal holds ciphertext (`yuqing.codec`); everything below reads plain payloads, so a
    history is decoded once, as it is loaded (from Temporal or from the archive). `trail_only`:
    only what the trail is read from (each record_trail's input and result), for a reader that
    replays nothing; the rest stays sealed; with `results` False, only the inputs (the trail
    itself: its results, the chain's anchors, are for `--check`). All in one call of the codec.
    """
    codec = converter.payload_codec
    if codec is None:
        return history
    events = _trail_events(history.events, results) if trail_only else history.events
    sealed = [p for p in payloads_in(events) if is_encrypted(p)]
    if sealed:
        for payload, plain in zip(sealed, await codec.decode(sealed), strict=True):
            payload.CopyFrom(plain)
    return history


def _trail_events(events: Sequence[Any], results: bool = True) -> Iterator[Any]:
    """The events that hold a record_trail's input or (with `results`) its result."""
    scheduled: set[int] = set()
    for event in events:
        if event.HasField("activity_task_scheduled_event_attributes"):
            if event.activity_task_scheduled_event_attributes.activity_type.name == RECORD_TRAIL:
                scheduled.add(event.event_id)
                yield event
        elif results and event.HasField("activity_task_completed_event_attributes"):
            if event.activity_task_completed_event_attributes.scheduled_event_id in scheduled:
                yield event


# -- record (#11): a history from Temporal, or from the archive once Temporal has let it go ----


@dataclass
class Loaded:
    """Every run of one workflow that could be read, decoded, oldest first, and from where."""

    workflow_id: str
    runs: list[AnyRun]
    source: str  # "Temporal" or "the archive"


async def load_anywhere(
    client: Client | Reader | None,
    converter: DataConverter,
    pool: asyncpg.Pool | Callable[[], Awaitable[asyncpg.Pool | None]] | None,
    workflow_id: str,
    *,
    trail_only: bool = False,
    results: bool = True,
) -> Loaded:
    """From Temporal; when Temporal no longer has it (retention, a deletion) or cannot be
    reached (`client` None), from the archive in PostgreSQL. LookupError when neither has it.

    `pool` may be a function that opens the pool when the archive is first needed (so that a
    history Temporal has whole costs no connection to PostgreSQL). `trail_only`: decode only
    what the trail is read from (`decoded`), and with `results` False only its inputs."""
    opened: list[asyncpg.Pool | None] = []

    async def archive() -> asyncpg.Pool | None:
        if not callable(pool):
            return pool
        if not opened:
            opened.append(await pool())
        return opened[0]

    if client is not None:
        # Earlier runs of an incident that continued as new close (and expire) first: those
        # Temporal has let go of are read from the archive, the rest from Temporal.
        from_archive: list[str] = []

        async def archived(run_id: str) -> AnyRun | None:
            from yuqing.audit.archive import archived_run

            kept = await archive()
            found = None if kept is None else await archived_run(kept, workflow_id, run_id)
            if found is not None:
                from_archive.append(run_id)
            return found

        try:
            runs = await load_runs(
                client, workflow_id, earlier=archived, trail_only=trail_only, results=results
            )
        except RPCError as error:
            if error.status != RPCStatusCode.NOT_FOUND or await archive() is None:
                raise
        else:
            source = "Temporal and the archive" if from_archive else "Temporal"
            return Loaded(workflow_id, runs, source)
    kept = await archive()
    if kept is None:
        raise LookupError(f"Temporal cannot be reached and no archive was given: {workflow_id}")
    from yuqing.audit.archive import archived_runs  # the archive imports this module

    found = await archived_runs(kept, workflow_id)
    if not found:
        raise LookupError(f"{workflow_id} is neither in Temporal nor in the archive")
    plain: list[AnyRun] = [
        await decoded(run, converter, trail_only=trail_only, results=results) for run in found
    ]
    return Loaded(workflow_id, plain, "the archive")


def post_workflow_ids(history: AnyRun) -> list[str]:
    """The netizen posts the incident started, in order (not its other children)."""
    found = []
    for event in history.events:
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            started = event.start_child_workflow_execution_initiated_event_attributes
            if started.workflow_type.name == NETIZEN_POST_WORKFLOW:
                found.append(started.workflow_id)
    return found


# -- reading across runs (core: an incident continues as new when its history grows) ----------


async def load_runs(
    client: Client | Reader,
    workflow_id: str,
    *,
    earlier: Callable[[str], Awaitable[AnyRun | None]] | None = None,
    trail_only: bool = False,
    results: bool = True,
) -> list[AnyRun]:
    """The history of each run of a workflow id, following continue-as-new back to the first,
    each decoded.

    The latest run's start names the run it continued (`continued_execution_run_id`), and so
    on back; a run that began afresh ends the chain. An earlier run Temporal no longer has is
    asked of `earlier` (the archive), if given; NOT_FOUND if neither has it.
    """
    # The latest run by its id, so that a run that continues as new meanwhile is read whole.
    # Through the service itself (a Client's or a Reader's): `yuqing audit` need not import
    # temporalio.client.
    import asyncio

    latest = await _latest_run_id(client, workflow_id)
    # Each run's first event names the run before it: that one is asked for at once, while the
    # rest of this one's pages are read (the runs' round trips overlap). The first page is
    # asked for one event (Temporal answers with the first batch of them): with a whole
    # first page, the walk waited for each run's first page to be read and parsed, run after
    # run (ten of them at 1,000 lines).
    reading: list[asyncio.Future[AnyRun]] = []
    run_id = latest
    try:
        while True:
            # The latest run is Temporal's alone: only an earlier one may be in the archive.
            archive = earlier if run_id != latest else None
            try:
                events, token = await _page(client, workflow_id, run_id, b"", size=1)
                while not events and token:
                    events, token = await _page(client, workflow_id, run_id, token, size=1)
            except RPCError as error:
                kept = await _kept_instead(error, run_id, archive)
                done: asyncio.Future[AnyRun] = asyncio.get_running_loop().create_future()
                done.set_result(kept)
                reading.insert(0, done)
                events = list(kept.events)
            else:
                rest = _rest_of_run(client, workflow_id, run_id, events, token, archive)
                reading.insert(0, asyncio.ensure_future(rest))
            started = events[0].workflow_execution_started_event_attributes
            if not started.continued_execution_run_id:
                break
            run_id = started.continued_execution_run_id
        runs = list(await asyncio.gather(*reading))
    finally:
        for task in reading:
            task.cancel()  # those not done when one failed
    for index, run in enumerate(runs[:-1]):
        runs[index] = _whole_continued_run(workflow_id, run)
    converter = client.data_converter
    return [await decoded(run, converter, trail_only=trail_only, results=results) for run in runs]


def split_runs(history: AnyRun) -> list[WorkflowHistory]:
    """`load_history`'s events cut back into one history per run."""
    from temporalio.client import WorkflowHistory

    runs: list[list[Any]] = []
    for event in history.events:
        if event.HasField("workflow_execution_started_event_attributes") or not runs:
            runs.append([])
        runs[-1].append(event)
    return [WorkflowHistory(history.workflow_id, events) for events in runs]


def recorded_trail(history: AnyRun) -> list[TrailLine]:
    """The trail as the workflow recorded it, read from its `record_trail` activities."""
    lines: list[TrailLine] = []
    for event in history.events:
        if not event.HasField("activity_task_scheduled_event_attributes"):
            continue
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name != RECORD_TRAIL:
            continue
        payload = attributes.input.payloads[0]
        if is_encrypted(payload):
            raise ValueError(
                f"the history of {history.workflow_id} is still encrypted: load it with"
                " load_history, or pass it through decoded(), first"
            )
        # The RecordTrail as its JSON: read without the model (what `yuqing audit` costs).
        request = json.loads(payload.data)
        first, workflow_id = request["first_seq"], request["workflow_id"]
        post_id = request.get("post_id")
        for offset, entry in enumerate(request["entries"]):
            lines.append(TrailLine.read(workflow_id, post_id, first + offset, entry))
    return lines


def trail_head(history: AnyRun) -> str | None:
    """The row_hash of the workflow's last trail row, as its (decoded) history recorded it: the
    result of its last `record_trail`. An anchor of the audit chain outside its table."""
    from temporalio.contrib.pydantic import pydantic_data_converter

    from yuqing.effects import TrailRecorded

    converter = pydantic_data_converter.payload_converter
    for payload in _trail_results(history):
        head = converter.from_payload(payload, TrailRecorded).last_hash
        if head:
            return head
    return None


async def anchored_head(history: AnyRun, converter: DataConverter) -> str | None:
    """`trail_head` of a history still encrypted: only the `record_trail` results read are
    decrypted (copies of them), newest first, until one names a row."""
    from yuqing.effects import TrailRecorded

    codec = converter.payload_codec
    for payload in _trail_results(history):
        if codec is not None and is_encrypted(payload):
            (payload,) = await codec.decode([payload])
        head = converter.payload_converter.from_payload(payload, TrailRecorded).last_hash
        if head:
            return head
    return None


def _trail_results(history: AnyRun) -> Iterator[Any]:
    """The result payload of each completed `record_trail`, the newest first."""
    scheduled = {
        event.event_id
        for event in history.events
        if event.HasField("activity_task_scheduled_event_attributes")
        and event.activity_task_scheduled_event_attributes.activity_type.name == RECORD_TRAIL
    }
    for event in reversed(history.events):
        if not event.HasField("activity_task_completed_event_attributes"):
            continue
        completed = event.activity_task_completed_event_attributes
        if completed.scheduled_event_id in scheduled and completed.result.payloads:
            yield completed.result.payloads[0]


# -- a workflow still under way: compare only what its history has recorded -----------------

_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_COMPLETED


def ended_whole(run: AnyRun) -> bool:
    """Whether the run ended by completing: it then waited for its trail to be copied, so every
    line it decided is recorded in it (or, continued as new, carried to the next run).

    A run still going, or cut off (terminated, failed, timed out), can have decided lines its
    history does not record yet, or never will: replay decides them, the recorded trail lacks
    them, and that is no difference in what was decided."""
    return bool(run.events) and run.events[-1].event_type == _COMPLETED


def unconfirmed_seqs(history: AnyRun) -> set[int]:
    """The lines handed to a `record_trail` the history shows no end of: being copied when the
    history was read (or when the run was cut off), so the projection may or may not have them."""
    ended = {
        attributes.scheduled_event_id
        for event in history.events
        for attributes in _activity_ends(event)
    }
    from temporalio.contrib.pydantic import pydantic_data_converter

    from yuqing.effects import RecordTrail

    converter = pydantic_data_converter.payload_converter
    seqs: set[int] = set()
    for event in history.events:
        scheduled = event.HasField("activity_task_scheduled_event_attributes")
        if not scheduled or event.event_id in ended:
            continue
        attributes = event.activity_task_scheduled_event_attributes
        if attributes.activity_type.name != RECORD_TRAIL:
            continue
        request = converter.from_payload(attributes.input.payloads[0], RecordTrail)
        seqs.update(range(request.first_seq, request.first_seq + len(request.entries)))
    return seqs


def _activity_ends(event: Any) -> list[Any]:
    for name in (
        "activity_task_completed_event_attributes",
        "activity_task_failed_event_attributes",
        "activity_task_timed_out_event_attributes",
        "activity_task_canceled_event_attributes",
    ):
        if event.HasField(name):
            return [getattr(event, name)]
    return []


@dataclass(frozen=True)
class Comparison:
    """What differs, and what was left out of the comparison because the history had not (yet)
    recorded it: `unrecorded` lines today's code decided past the recorded trail's end (of a
    run still going or cut off), `unconfirmed` lines still being copied that the projection
    lacks, `newer` projected rows past what the history had recorded when it was read."""

    differences: list[Difference]
    unrecorded: int = 0
    unconfirmed: int = 0
    newer: int = 0

    def notes(self) -> list[str]:
        said = []
        if self.unrecorded:
            said.append(
                f"{self.unrecorded} line(s) decided after the last one the history records"
                " (the run is still going, or was cut off): not compared"
            )
        if self.unconfirmed:
            said.append(f"{self.unconfirmed} line(s) still being recorded: not compared")
        if self.newer:
            said.append(f"{self.newer} row(s) recorded since the history was read: not compared")
        return said


def compare_replay(
    recorded: list[TrailLine], replayed: list[TrailLine], *, whole: bool
) -> Comparison:
    """The replayed trail against the recorded one; unless the workflow ended `whole`
    (`ended_whole` of its last run), only as far as the history records."""
    end = _end(recorded)
    beyond = [] if whole else [line for line in replayed if line.seq >= end]
    kept = [line for line in replayed if line.seq < end] if beyond else replayed
    differences = compare(recorded, kept, clock_slack=REPLAY_CLOCK_SLACK)
    return Comparison(differences, unrecorded=len(beyond))


def compare_projection(
    recorded: list[TrailLine], projected: list[TrailLine], *, whole: bool, unconfirmed: set[int]
) -> Comparison:
    """The projection against the recorded trail, row for row and exactly. Unless the workflow
    ended `whole`, rows past the recorded end (copied after the history was read) and lines
    still being copied that the projection lacks are left out, and counted."""
    if whole:
        return Comparison(compare(recorded, projected))
    end = _end(recorded)
    newer = [row for row in projected if row.seq >= end]
    there = {row.seq for row in projected}
    missing = {line.seq for line in recorded if line.seq in unconfirmed and line.seq not in there}
    differences = compare(
        [line for line in recorded if line.seq not in missing],
        [row for row in projected if row.seq < end],
    )
    return Comparison(differences, unconfirmed=len(missing), newer=len(newer))


def _end(lines: list[TrailLine]) -> int:
    return max((line.seq for line in lines), default=-1) + 1


@dataclass
class Replayed:
    """What today's code makes of a history: its state, or why it could not replay it.

    A history of several runs is replayed run by run; `trail` joins what each decided.
    """

    state: IncidentState | PostState | None
    error: str | None
    earlier: list[IncidentState | PostState] = field(default_factory=list)

    @property
    def grade(self) -> str | None:
        """The grade the last state reached (an incident's), if any."""
        grade = getattr(self.state, "grade", None)
        return None if grade is None else str(grade)

    @property
    def trail(self) -> list[TrailLine]:
        from yuqing.state import PostState

        lines: dict[int, TrailLine] = {}
        for state in [*self.earlier, *([self.state] if self.state else [])]:
            post_id = state.post_id if isinstance(state, PostState) else None
            for offset, entry in enumerate(state.trail):
                seq = state.trail_offset + offset
                lines[seq] = TrailLine.of(state.workflow_id, post_id, seq, entry)
        return [lines[seq] for seq in sorted(lines)]


async def replay(history: AnyRun, converter: DataConverter | None = None) -> Replayed:
    """Run the history (each of its runs) through today's code; keep the states reached.

    `converter`: the service's (`yuqing.client.data_converter`) for a history still encrypted;
    a decoded one (`load_history`, `load_anywhere`) replays with the plain default as well.
    """
    runs = split_runs(history)
    replayed = await _replay_runs(runs, converter)
    earlier: list[IncidentState | PostState] = []
    for run in replayed[:-1]:
        if run.error is not None or run.state is None:
            return run
        earlier.append(run.state)
    last = replayed[-1]
    last.earlier = earlier
    return last


REPLAY_BUILD_ID = "yuqing-audit-replay"


def import_replayer() -> None:
    """Import what `replay` needs (the SDK's worker, today's workflows), e.g. in a thread while
    the histories to replay are read."""
    import temporalio.worker  # noqa: F401

    import workflows.incident
    import workflows.post  # noqa: F401


async def _replay_runs(
    runs: list[WorkflowHistory], converter: DataConverter | None
) -> list[Replayed]:
    """Each run replayed by a replayer of its own, all at once; what each reached, in order.

    A run's history holds all it needs (a continued run starts from the input its history
    begins with), so the runs need not wait for each other: while the SDK's core reads one
    run's next task, the workflow code of another runs (about a fifth of a replay is the core).
    """
    import asyncio

    for run in runs:
        _check_workflow_id(run)
    # (tools) The replay's converter has no codec: the SDK's walks over every activation and
    # completion, looking for payloads to decode or encode, are skipped (yuqing.payload_passes).
    payload_passes.install()
    return list(await asyncio.gather(*(_replay_run(run, converter) for run in runs)))


class OtherWorkflowId(ValueError):
    """A replay handed a workflow id other than the one its history records."""


def _check_workflow_id(run: AnyRun) -> None:
    """Refuse a run replayed under an id other than the one its start records.

    The incident checks that its workflow id is the incident's, in its first task, before it
    asks the plan's patches: under another id the SDK would say only "Non-deprecated patch
    marker encountered for change plan-audit-lines", a non-determinism the history does not
    have. A start that records no id (Temporal's time-skipping test server keeps none) is
    taken as given."""
    if not run.events:
        return
    recorded = run.events[0].workflow_execution_started_event_attributes.workflow_id
    if recorded and recorded != run.workflow_id:
        from yuqing.i18n import Said

        raise OtherWorkflowId(
            Said("audit.replay_other_workflow_id", given=run.workflow_id, recorded=recorded)
        )


async def _replay_run(run: WorkflowHistory, converter: DataConverter | None) -> Replayed:
    """One run replayed by its own replayer.

    A run from before the patch tools-projector-yields that continued as new may have met, in
    its last task, the race that patch removed (workflows.incident `_yielding`): an update
    refused there, which leaves nothing in the history, let the run continue before its
    projection began a copy. Such a run fails to replay at its continue-as-new; it is replayed
    once more as it ran (`yielding`), and the same decisions then are the same decisions.
    """
    found = await _replay_once(run, converter, yielding=False)
    if found.error is not None and _met_the_race(run, found.error):
        again = await _replay_once(run, converter, yielding=True)
        if again.error is None:
            return again
    return found


async def _replay_once(
    run: WorkflowHistory, converter: DataConverter | None, *, yielding: bool
) -> Replayed:
    # Imported here: the workflows import this package's siblings at module level, and the
    # worker's machinery costs `yuqing audit` most of a second when it replays nothing.
    from temporalio import workflow
    from temporalio.contrib.pydantic import pydantic_data_converter
    from temporalio.worker import (
        ExecuteWorkflowInput,
        Interceptor,
        Replayer,
        UnsandboxedWorkflowRunner,
        WorkflowInboundInterceptor,
        WorkflowInterceptorClassInput,
    )

    from workflows.incident import IncidentWorkflow
    from workflows.post import NetizenPostWorkflow

    if converter is None:
        converter = pydantic_data_converter
    # The instance of the run, kept as it begins.
    captured: list[Any] = []

    class _Capture(WorkflowInboundInterceptor):
        async def execute_workflow(self, input: ExecuteWorkflowInput) -> Any:
            instance = workflow.instance()
            if yielding and isinstance(instance, IncidentWorkflow):
                instance._replayed_yielding = True
            captured.append(instance)
            return await super().execute_workflow(input)

    class _Interceptor(Interceptor):
        def workflow_interceptor_class(
            self, input: WorkflowInterceptorClassInput
        ) -> type[WorkflowInboundInterceptor] | None:
            return _Capture

    replayer = Replayer(
        workflows=[IncidentWorkflow, NetizenPostWorkflow],
        data_converter=converter,
        interceptors=[_Interceptor()],
        # Unsandboxed, so the instance the interceptor keeps is readable after the replay
        # (and no module is imported afresh for each run: today's code, trusted, replaying
        # its own histories; a non-determinism is found by the commands it makes all the same).
        workflow_runner=UnsandboxedWorkflowRunner(),
        # (core) No deadlock timer: a replay on a busy machine may take a run's long task
        # past 2 s, which says nothing about the history.
        debug_mode=True,
        # (tools) A replay polls no task queue, so no build id reaches Temporal; without one
        # the SDK derives it by hashing the code of every module loaded, compiling each one
        # again (no bytecode is cached here): about a tenth of a replay's CPU.
        build_id=REPLAY_BUILD_ID,
    )
    result = await replayer.replay_workflow(run, raise_on_replay_failure=False)
    error = str(result.replay_failure) if result.replay_failure else None
    instance = captured[-1] if captured else None
    state: IncidentState | PostState | None = None
    # The state as the workflow holds it: its `state` query shows the latest lines only.
    if isinstance(instance, IncidentWorkflow | NetizenPostWorkflow):
        state = instance.full_state()
    return Replayed(state=state, error=error)


_CONTINUED = EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW


def _met_the_race(run: AnyRun, error: str) -> bool:
    """Whether `run` failed to replay at its own continue-as-new, the run from before the
    patch tools-projector-yields (no marker of it): see `_replay_runs`."""
    from workflows.incident import PROJECTOR_YIELDS_PATCH

    if not run.events or run.events[-1].event_type != _CONTINUED:
        return False
    if f"id: {run.events[-1].event_id}, WorkflowExecutionContinuedAsNew" not in error:
        return False
    # Patch markers are recorded in a run's first task (core-patches-first).
    patch = PROJECTOR_YIELDS_PATCH.encode()
    return not any(
        patch in event.marker_recorded_event_attributes.SerializeToString()
        for event in run.events[:100]
        if event.HasField("marker_recorded_event_attributes")
    )


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


# Replaying, the SDK takes a workflow task that completed with no commands and was followed at
# once by another for a heartbeat, and hands what arrived before it (a signal) to the next one:
# `workflow.now()` for that signal then reads a few milliseconds later than it did in the
# original run. Replayed times are compared within this slack; the projection, a copy of the
# history, must match it exactly.
REPLAY_CLOCK_SLACK = timedelta(seconds=1)


def compare(
    recorded: list[TrailLine], other: list[TrailLine], *, clock_slack: timedelta = timedelta(0)
) -> list[Difference]:
    """Row by row, by position in the trail; times within `clock_slack` count as equal."""
    mine = {line.seq: line for line in recorded}
    theirs = {line.seq: line for line in other}
    differences = []
    for seq in sorted(mine.keys() | theirs.keys()):
        a, b = mine.get(seq), theirs.get(seq)
        if a is None or b is None or not a.same_decision(b, clock_slack):
            differences.append(Difference(seq, a, b))
    return differences
