"""Timeouts, retry policies and the deadline wait that both workflows use."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RawValue, RetryPolicy
from temporalio.exceptions import ApplicationError

with workflow.unsafe.imports_passed_through():
    from activities.audit import AuditActivities
    from yuqing.effects import RecordTrail
    from yuqing.state import IncidentState, PostState, Tracked, TrailEntry

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

DECIDE_UPDATE = "decide"


@dataclass(frozen=True)
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


def contract_signals(names: Iterable[str]) -> Callable[[W], W]:
    """Give a workflow class one signal handler per name, each putting the signal in the inbox.

    Applied under `@workflow.defn`, so that adding a signal to the contract is one entry in
    its payload table (`yuqing.models`) and its decision.
    """

    def handler_for(name: str) -> Callable[..., None]:
        def handler(self: Inboxed, *args: Any) -> None:
            self._inbox.append(inbound(name, args))

        handler.__name__ = handler.__qualname__ = f"signal_{name}"
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
        self._inbox: list[Inbound] = []
        self._answers: dict[int, TrailEntry] = {}
        self._tickets = 0
        # Set once the workflow is on its way out: later updates are told so.
        self._closed: str | None = None

    @workflow.update(name=DECIDE_UPDATE)
    async def decide(self, request: Any = None) -> TrailEntry:
        """`{"signal": name, "payload": {...}}`: the same decision as that signal, answered."""
        signal, payload, problem = _read_request(request)
        return await self._await_decision(signal, payload, problem, None)

    @workflow.update(dynamic=True)
    async def other_update(self, name: str, args: Sequence[RawValue]) -> TrailEntry:
        values, problem = _raw_values(args)
        payload = values[0] if len(values) == 1 else values
        reason = (
            f"{name} is not an update this {self.noun} takes: send the update "
            f'{DECIDE_UPDATE} with {{"signal": "{name}", "payload": {{...}}}}'
        )
        return await self._await_decision(name, payload, problem, reason)

    @workflow.signal(dynamic=True)
    def other_signal(self, name: str, args: Sequence[RawValue]) -> None:
        # Recorded and refused rather than left waiting unseen in the history.
        values, problem = _raw_values(args)
        if problem is not None:
            self._inbox.append(Inbound(name, None, workflow.now(), problem))
            return
        self._inbox.append(inbound(name, values))

    async def _await_decision(
        self, signal: str, payload: Any, problem: str | None, refusal: str | None
    ) -> TrailEntry:
        if self._closed is not None:
            raise ApplicationError(self._closed, type="WorkflowEnded", non_retryable=True)
        self._tickets += 1
        ticket = self._tickets
        self._inbox.append(
            Inbound(signal, payload, workflow.now(), problem, UPDATE, ticket, refusal)
        )
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


async def project_trail(
    state: IncidentState | PostState, post_id: str | None, ending: Callable[[], bool]
) -> None:
    """Copy each new line of the trail, and the deadlines as they stand, to PostgreSQL.

    Lines that come while a copy is under way go with the next one; once `ending()` holds and
    everything is copied, it returns, and the workflow may complete.
    """
    projected = 0
    while True:
        await workflow.wait_condition(
            lambda done=projected: len(state.trail) > done or ending()  # type: ignore[misc]
        )
        if len(state.trail) == projected:
            return
        entries = state.trail[projected:]
        await workflow.execute_activity_method(
            AuditActivities.record_trail,
            RecordTrail(
                workflow_id=state.workflow_id,
                incident_id=state.incident_id,
                post_id=post_id,
                first_seq=projected,
                entries=entries,
                deadlines=state.deadlines,
            ),
            # A few inserts: if an attempt takes longer, the database is in trouble and a fresh
            # attempt (which writes only what is missing) is the better bet.
            start_to_close_timeout=RECORD_TIMEOUT,
            retry_policy=CONFIG_RETRY,
            summary=f"record {len(entries)} line(s) of the decision trail",
        )
        projected += len(entries)


# Workflows that began before the `decide` update and the guarded internal names decide every
# signal as they always did (so their histories replay); new ones refuse internal names from
# outside, bound their trail lines, and hear from their posts by nudge.
DECISION_PATH_PATCH = "core-decision-path"
