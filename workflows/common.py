"""Timeouts, retry policies and the deadline wait that both workflows use."""

from __future__ import annotations

import inspect
import json
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from workflows.activity_types import AuditActivities
    from yuqing import CONTINUING, DECIDE_UPDATE
    from yuqing.effects import ArchiveHistory, CarriedInbound, RecordTrail
    from yuqing.state import TRAIL_PAGE, IncidentState, PostState, Tracked, TrailEntry

QUICK = timedelta(seconds=30)
RECORD_TIMEOUT = timedelta(seconds=5)
# How workflows from before delivery rounds (workflows/delivery.py) retry a notice or a
# publication: without end, backing off to one attempt every five minutes, unseen by the state.
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
)
# A malformed policy, roster or calendar file waits for someone to mend it; a try a minute.
CONFIG_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))


async def settled_by(moment: datetime, settled: Callable[[], bool], summary: str) -> bool:
    """Wait until `settled()` holds or `moment` comes; True if it held in time."""
    remaining = moment - workflow.now()
    if remaining <= timedelta(0):
        return settled()
    try:
        await workflow.wait_condition(settled, timeout=remaining, timeout_summary=summary)
    except TimeoutError:
        return settled()
    return True


# Where an inbox item came from: a signal or the `decide` update from outside, or the workflow
# itself (an effect that failed, a child's state). Only the last may carry internal names.
SIGNAL = "signal"
UPDATE = "update"
INTERNAL = "internal"

__all__ = ["CONTINUING", "DECIDE_UPDATE"]


@dataclass
class Inbound:
    """A signal as it arrived, waiting its turn to be decided."""

    signal: str
    payload: Any
    received_at: datetime
    problem: str | None = None
    origin: str = SIGNAL
    # Set for an update: the caller waits for the answer filed under it.
    ticket: int | None = None
    # Why it is refused whatever it says (e.g. an update under a name that is no update).
    refusal: str | None = None
    _size: int | None = None

    @property
    def size(self) -> int:
        """Bytes of its payload as JSON (what carrying it to the next run would cost)."""
        if self._size is None:
            # Its payload as JSON, and what goes around it (name, time, origin).
            self._size = len(json.dumps(self.payload, default=str)) + len(self.signal) + 160
        return self._size

    def carried(self) -> CarriedInbound:
        return CarriedInbound(
            signal=self.signal,
            payload=self.payload,
            received_at=self.received_at,
            problem=self.problem,
            origin=self.origin,
            refusal=self.refusal,
        )

    @classmethod
    def of(cls, carried: CarriedInbound) -> Inbound:
        return cls(
            carried.signal,
            carried.payload,
            carried.received_at,
            carried.problem,
            carried.origin,
            None,
            carried.refusal,
        )


def inbound(signal: str, args: Sequence[Any]) -> Inbound:
    """One JSON object is a signal's payload; anything else is recorded as malformed."""
    if len(args) == 1:
        return Inbound(signal, args[0], workflow.now())
    problem = f"expected one JSON object as the payload, got {len(args)} values"
    return Inbound(signal, list(args), workflow.now(), problem)


def _raw_values(args: Sequence[RawValue]) -> tuple[list[Any], str | None]:
    try:
        return [workflow.payload_converter().from_payload(a.payload) for a in args], None
    except Exception as err:  # an encoding no converter reads
        return [], f"unreadable payload: {err}"


W = TypeVar("W", bound=type)


def _handler_shape(self, *args):  # type: ignore[no-untyped-def]
    """The shape of every contract signal's handler, for its signature."""


_HANDLER_SIGNATURE = inspect.signature(_handler_shape)


def contract_signals(names: Iterable[str]) -> Callable[[W], W]:
    """Give a workflow class one signal handler per name, each putting the signal in the inbox.

    Applied under `@workflow.defn`, so that adding a signal to the contract is one entry in
    its payload table (`yuqing.models`) and its decision.
    """

    def handler_for(name: str) -> Callable[..., None]:
        def handler(self: Inboxed, *args: Any) -> None:
            self._put(inbound(name, args))

        handler.__name__ = handler.__qualname__ = f"signal_{name}"
        # The SDK reads a handler's argument types from its hints and signature; for
        # `(self, *args)` they are none (each payload decoded as plain JSON) whatever the
        # annotations say. Without them, and with the signature made once, defining the
        # contract's handlers (once per process since yuqing.sandbox passes the workflow
        # modules through; before, again for every run, in its sandbox) costs a third.
        handler.__annotations__ = {}
        vars(handler)["__signature__"] = _HANDLER_SIGNATURE
        return workflow.signal(name=name)(handler)

    def wire(cls: W) -> W:
        for name in names:
            setattr(cls, f"signal_{name}", handler_for(name))
        return cls

    return wire


class Inboxed:
    """Signals and the `decide` update go into one inbox, decided one by one by `run`.

    The update waits until its item is decided and answers with the trail entry the decision
    added (an acceptance or a refusal, recorded exactly as the same signal's would be).
    """

    noun = "workflow"

    def _open_inbox(self) -> None:
        self._inbox: deque[Inbound] = deque()
        # Kept as items come and go, so that checking them costs nothing however many wait.
        self._inbox_bytes = 0
        self._updates_waiting = 0
        self._answers: dict[int, TrailEntry] = {}
        self._tickets = 0
        # Set once the workflow is on its way out: later updates are told so.
        self._closed: str | None = None

    @workflow.update(name=DECIDE_UPDATE)
    async def decide(self, request: Any = None) -> TrailEntry:
        """`{"signal": name, "payload": {...}}`: the same decision as that signal, answered."""
        signal, payload, problem = _read_request(request)
        return await self._await_decision(signal, payload, problem, None)

    @decide.validator
    def _decide_now(self, request: Any = None) -> None:
        self._admit()

    def _admit(self) -> None:
        """Refuse an update before it is taken (nothing enters the history) while the workflow
        readies to continue as new: it must answer every update it took before it goes on.
        The caller sends it again (`starter.decide` does) and the next run decides it."""
        if self._continuing():
            raise ApplicationError(
                f"the {self.noun} is moving to its next run: send the decision again",
                type=CONTINUING,
            )

    def _continuing(self) -> bool:
        return False

    @workflow.update(dynamic=True)
    async def other_update(self, name: str, args: Sequence[RawValue]) -> TrailEntry:
        values, problem = _raw_values(args)
        payload = values[0] if len(values) == 1 else values
        reason = (
            f"{name} is not an update this {self.noun} takes: send the update "
            f'{DECIDE_UPDATE} with {{"signal": "{name}", "payload": {{...}}}}'
        )
        return await self._await_decision(name, payload, problem, reason)

    @other_update.validator
    def _other_update_now(self, name: str, args: Sequence[RawValue]) -> None:
        self._admit()

    @workflow.signal(dynamic=True)
    def other_signal(self, name: str, args: Sequence[RawValue]) -> None:
        # Recorded and refused rather than left waiting unseen in the history.
        values, problem = _raw_values(args)
        if problem is not None:
            self._put(Inbound(name, None, workflow.now(), problem))
            return
        self._put(inbound(name, values))

    def _put(self, item: Inbound, *, first: bool = False) -> None:
        if first:
            self._inbox.appendleft(item)
        else:
            self._inbox.append(item)
        self._inbox_bytes += item.size
        self._updates_waiting += item.ticket is not None

    def _take(self) -> Inbound:
        item = self._inbox.popleft()
        self._inbox_bytes -= item.size
        self._updates_waiting -= item.ticket is not None
        return item

    async def _await_decision(
        self, signal: str, payload: Any, problem: str | None, refusal: str | None
    ) -> TrailEntry:
        if self._closed is not None:
            raise ApplicationError(self._closed, type="WorkflowEnded", non_retryable=True)
        self._tickets += 1
        ticket = self._tickets
        self._put(Inbound(signal, payload, workflow.now(), problem, UPDATE, ticket, refusal))
        await workflow.wait_condition(lambda: ticket in self._answers)
        return self._answers.pop(ticket)

    def _file_answer(self, item: Inbound, state: Tracked, before: int) -> None:
        """Keep the answer of an update: the first trail entry its decision added."""
        if item.ticket is None:
            return
        if state.trail_total > before:
            entry = state.trail[before - state.trail_offset]
        else:
            entry = TrailEntry(
                at=item.received_at, kind="unchanged", detail="nothing changed", signal=item.signal
            )
        self._answers[item.ticket] = entry


# At most this many inbox items are decided in one workflow task: a flood of signals arrives in
# one task, and deciding thousands at once (each proof checked) would outlast the SDK's 2 s
# deadlock detection, failing the task again at every retry and wedging the workflow.
DECISIONS_PER_TASK = 100


class Pacer:
    """Ends the workflow task after `DECISIONS_PER_TASK` decisions when more are waiting."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self._decided = 0

    async def decided(self, waiting: bool) -> None:
        self._decided += 1
        if not self.enabled or not waiting:
            self._decided = 0
            return
        if self._decided >= DECISIONS_PER_TASK:
            self._decided = 0
            # A timer is the one way to end a workflow task and come straight back.
            await workflow.sleep(timedelta(milliseconds=1), summary="more signals waiting")


def page_request(page: Any) -> tuple[int, int]:
    """(offset, limit) of a `trail` query's `{"offset": n, "limit": m}`."""
    if page is None:
        return 0, TRAIL_PAGE
    if not isinstance(page, dict):
        raise ApplicationError('give {"offset": n, "limit": m} as whole numbers')
    offset, limit = page.get("offset", 0), page.get("limit", TRAIL_PAGE)
    if not isinstance(offset, int) or not isinstance(limit, int):
        raise ApplicationError('give {"offset": n, "limit": m} as whole numbers')
    return max(offset, 0), limit


def _read_request(request: Any) -> tuple[str, Any, str | None]:
    """(signal, payload, problem) of a `decide` request."""
    if not isinstance(request, dict):
        return DECIDE_UPDATE, request, 'expected {"signal": name, "payload": {...}}'
    signal = request.get("signal")
    extra = sorted(set(request) - {"signal", "payload"})
    if not isinstance(signal, str) or not signal.strip():
        return DECIDE_UPDATE, request, "signal: give the name of the signal to decide"
    if extra:
        return signal, request.get("payload"), f"unknown field(s) {', '.join(extra)}"
    if "payload" not in request:
        return signal, None, "payload: Field required"
    return signal, request["payload"], None


# Workflows that began before the audit projection existed replay without it.
AUDIT_PROJECTION_PATCH = "audit-projection"
# A record_trail input stays far under Temporal's 2 MB payload limit: lines go in batches of at
# most this many bytes (of JSON) and lines; a single line is at most ~4 KB (yuqing.decider).
RECORD_BATCH_BYTES = 64 * 1024
RECORD_BATCH_LINES = 200
# (speed) Lines that wait for their effects' first tries (SPEED_PATCH) go anyway at this many.
SETTLING_LINES = 20


class Projector:
    """Copies each new line of a trail, and the deadlines when they changed, to PostgreSQL.

    Lines that come while a copy is under way go with the next one. `position` is the first
    line not yet copied: a workflow that continues as new carries it (and the lines from it
    on). Workflows older than the batches (`batched` false) copy all new lines at once, with
    every deadline each time, as they always did.
    """

    def __init__(
        self,
        state: IncidentState | PostState,
        post_id: str | None,
        ending: Callable[[], bool],
        *,
        batched: bool,
        lean: bool = False,
        yielding: Callable[[], bool] | None = None,
        settling: Callable[[], bool] | None = None,
    ) -> None:
        self.state = state
        self.post_id = post_id
        self.ending = ending
        self.batched = batched
        # hist (issue 9, LEAN_HISTORY_PATCH): each deadline only when it changed since it was
        # last sent (the table upserts by key), and no summary on the activity.
        self.lean = batched and lean
        self._sent: dict[str, str] = {}
        # (tools) Whether the workflow is ready to continue as new with the lines not copied
        # yet: then no copy begins, whichever of the two resumes first in a workflow task.
        self.yielding = yielding or (lambda: False)
        # (speed, SPEED_PATCH) Whether an effect of the last decision is on its first try: its
        # line (the notice sent, the statement out) then goes in the same copy as the decision's.
        self.settling = settling or (lambda: False)
        self.position = state.trail_offset
        self.busy = False
        # Set while the workflow readies to continue as new: no new copy begins.
        self.hold = False
        self._deadlines_sent: str | None = None

    def unprojected(self) -> int:
        """Lines not copied yet."""
        return self.state.trail_total - self.position

    def held(self) -> bool:
        return self.hold or self.yielding()

    async def run(self) -> None:
        """Copy lines until `ending()` holds and everything is copied."""
        state = self.state
        while True:
            await workflow.wait_condition(
                lambda: (
                    (state.trail_total > self.position and not self.held() and self._due())
                    or self.ending()
                )
            )
            if self.held() and not self.ending():
                continue  # woken together with the workflow's move to its next run
            if state.trail_total == self.position:
                return
            entries = self._batch()
            deadlines = state.deadlines
            if self.lean:
                now = {d.key: d.model_dump_json() for d in deadlines}
                deadlines = [d for d in deadlines if self._sent.get(d.key) != now[d.key]]
            elif self.batched:
                sent = _deadlines_json(deadlines)
                deadlines = [] if sent == self._deadlines_sent else deadlines
            # The activity's name says as much; a summary would be one more sealed payload.
            summary = None if self.lean else f"record {len(entries)} line(s) of the decision trail"
            self.busy = True
            try:
                await AuditActivities.record_trail.run(
                    RecordTrail(
                        workflow_id=state.workflow_id,
                        incident_id=state.incident_id,
                        post_id=self.post_id,
                        first_seq=self.position,
                        entries=entries,
                        deadlines=deadlines,
                    ),
                    # A few inserts: if an attempt takes longer, the database is in trouble
                    # and a fresh attempt (which writes only what is missing) is the better bet.
                    start_to_close_timeout=RECORD_TIMEOUT,
                    retry_policy=CONFIG_RETRY,
                    summary=summary,
                )
            finally:
                self.busy = False
            if self.lean:
                self._sent.update((d.key, now[d.key]) for d in deadlines)
            elif self.batched and deadlines:
                self._deadlines_sent = sent
            self.position += len(entries)

    def _due(self) -> bool:
        """Whether the lines waiting go now: no effect of theirs on its first try, or so many
        waiting (decisions coming faster than their effects end) that they go regardless."""
        return not self.settling() or self.unprojected() >= SETTLING_LINES

    def _batch(self) -> list[TrailEntry]:
        held = self.state.trail[self.position - self.state.trail_offset :]
        if not self.batched:
            return held
        batch: list[TrailEntry] = []
        size = 0
        for entry in held[:RECORD_BATCH_LINES]:
            line = len(entry.model_dump_json())
            if batch and size + line > RECORD_BATCH_BYTES:
                break
            batch.append(entry)
            size += line
        return batch


def _deadlines_json(deadlines: Sequence[Any]) -> str:
    return "[" + ",".join(d.model_dump_json() for d in deadlines) + "]"


async def project_trail(
    state: IncidentState | PostState, post_id: str | None, ending: Callable[[], bool]
) -> None:
    """The projection as workflows older than `Projector`'s batches ran it."""
    await Projector(state, post_id, ending, batched=False).run()


# Workflows that began before the `decide` update and the guarded internal names decide every
# signal as they always did (so their histories replay); new ones refuse internal names from
# outside, bound their trail lines, and hear from their posts by nudge.
DECISION_PATH_PATCH = "core-decision-path"
# And those that began before the bounds: inputs checked against `yuqing.limits` (and dates
# against `workflow.now()`), lean activity inputs, the trail projected in batches, a small
# `state` answer, and continue-as-new when the history grows.
BOUNDED_PATCH = "core-bounded"
# (console, i18n) And those that began before notices were data: new ones send each notice as
# a catalog key and its parameters (rendered in the reader's language by the activity) and ask
# each approver in turn when a draft reaches their step.
NOTICE_TEXT_PATCH = "console-notice-text"
# (console, i18n) And those that began before trail lines kept their message (key + params)
# beside the English detail, for readers of either language.
TRAIL_MESSAGES_PATCH = "console-trail-messages"
# (i18n) And those that began before the plan's own lines (yuqing.rules: contacts, the leading
# group, interviews, downgrades, "no response needed", waived deadlines) kept their message.
PLAN_MESSAGES_PATCH = "i18n-plan-messages"


# Later patches asked in the run's first task. A patched() first asked after the run's first
# awaits has its marker where the code happened to reach it; a replay whose tasks fall
# otherwise (a legacy query of a closed run in a live worker) meets the marker before the
# call: "Non-deprecated patch marker encountered". Asked at once, every marker is in the first
# task, whatever follows. Runs begun before this keep asking where they did.
PATCHES_FIRST = "core-patches-first"


def patches_first(*later: str) -> None:
    """Ask `later` patches now (their answers are kept), when this run is new enough."""
    if workflow.patched(PATCHES_FIRST):
        for patch_id in later:
            workflow.patched(patch_id)


# -- record (#11): each closed run's history archived in PostgreSQL ---------------------------

# Workflows that began before the archive existed end without asking for their archive.
ARCHIVE_PATCH = "record-archive-history"
# Those that begin now ask for nothing: the worker's sweeper (yuqing.audit.sweeper) archives
# every run once it has closed, however it closed, at no cost to the run itself.
SWEEPER_PATCH = "record-archive-sweeper"
# ... decided at the top of run(), before any activity: a patch first asked after a local
# activity whose workflow task was merged with a heartbeat task replays as not there (a
# non-determinism error), and the end of a run can come just after one (read_post).
SWEPT_AT_START_PATCH = "record-swept-at-start"


# -- hist (issue 9): lean histories ------------------------------------------------------------
# Runs that begin now send less: the trail's copies carry each deadline only when it changed
# (Projector), the configuration comes without what only the API reads (the routes table of
# config/authorization.toml). Asked at the top of run(), like every patch (see PATCHES_FIRST).
LEAN_HISTORY_PATCH = "hist-lean-history"


def lean_from_start() -> bool:
    """Ask first thing in run(): whether this run keeps its history lean."""
    return workflow.patched(LEAN_HISTORY_PATCH)


# -- hist (issue 9): leaner still ---------------------------------------------------------------
# Runs that begin now put no summary on their activities and local activities: each was one more
# sealed payload, 11 in a general incident. The activity's name and its input (decrypted by the
# UI through the codec endpoint) say what it does. Timers keep theirs: nothing else in the UI
# says which deadline a timer waits for. Their memo keeps times to the second (the console shows
# minutes) and is upserted in parts (yuqing.listing.memo_parts). Asked at the top of run().
LEANER_HISTORY_PATCH = "hist-leaner-history"


def leaner_from_start() -> bool:
    """Ask first thing in run(): whether this run's activities go without summaries, and its
    memo in parts (LEANER_HISTORY_PATCH)."""
    return workflow.patched(LEANER_HISTORY_PATCH)


def said(summary: str | None) -> str | None:
    """An activity's `summary`, or None in a run whose activities go without (its `_unsaid`,
    set in run())."""
    return None if getattr(workflow.instance(), "_unsaid", False) else summary


# -- speed (issue 9): fewer workflow tasks per decision ------------------------------------------
# Runs that begin now copy their trail once the decision's own effects (its notices, its
# statement's publications, a clock to plan, more evidence to fix) have had their first try,
# so that one copy carries the decision and what it sent, instead of one copy each: a first
# try ends within DELIVERY_TIMEOUT (workflows/delivery.py), and one that fails does not hold
# the copy while the delivery waits for its channel. Their clocks are planned by a local
# activity (a computation: only its result is kept). Asked at the top of run().
SPEED_PATCH = "speed-settled-copies"


class Settling:
    """The effects on their first try (SPEED_PATCH): the trail's copy waits while any is."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.count = 0

    def __call__(self) -> bool:
        return self.count > 0

    @contextmanager
    def first_try(self) -> Iterator[Callable[[], None]]:
        """One effect counted in while it runs; it may count itself out sooner with what it is
        given (a delivery whose first try failed), once however often it calls it."""
        if not self.enabled:
            yield _nothing
            return
        self.count += 1
        ended = False

        def end() -> None:
            nonlocal ended
            if not ended:
                ended = True
                self.count -= 1

        try:
            yield end
        finally:
            end()


def _nothing() -> None:
    pass


def swept_from_start() -> bool:
    """Ask first thing in run(): whether this run is archived by the sweeper alone."""
    return workflow.patched(SWEPT_AT_START_PATCH)


async def archive_when_closed(incident_id: str, post_id: str | None, *, swept: bool) -> None:
    """Runs that began between patches record-archive-history and -sweeper have this run
    archived once it has closed: an activity starts its archiver (a workflow of its own, not a
    child, so it outlives this run). Called last, before completing (or continuing as new);
    `swept` (`swept_from_start()`): a no-op that asks nothing."""
    if swept or workflow.patched(SWEEPER_PATCH) or not workflow.patched(ARCHIVE_PATCH):
        return
    info = workflow.info()
    await AuditActivities.start_archiver.run(
        ArchiveHistory(
            workflow_id=info.workflow_id,
            run_id=info.run_id,
            incident_id=incident_id,
            post_id=post_id,
        ),
        start_to_close_timeout=QUICK,
        retry_policy=CONFIG_RETRY,
        summary="archive this history once it has closed",
    )
