"""The mechanics every decided workflow shares: validate, decide, refuse, record.

A subclass maps signal names to (payload model, decision). `apply` validates the raw payload,
runs the decision, and on a refusal records why. Decisions check everything before they change
anything, so a refused signal leaves the state as it was. Deadlines
(reminders, breaches) are decided here too, the same way for an incident and for a post.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from yuqing.outcomes import Notify, Outcome, RefusalKind, Refused
from yuqing.roles import Role
from yuqing.roster import Roster
from yuqing.state import DeadlineStatus, Tracked, TrailEntry

S = TypeVar("S", bound=Tracked)
DecideFn = Callable[[Any, datetime], Outcome]

# A trail line quotes what it records (an opinion, a reason) up to this many characters; the
# whole text stays in the state and in the signal's own event.
DETAIL_LIMIT = 1000


class Decider(Generic[S]):
    # What the workflow is called in refusals: "incident", "post".
    noun = "workflow"

    def __init__(self, state: S, roster: Roster, unit: str, label: str) -> None:
        self.state = state
        self.roster = roster
        self.unit = unit
        # How notices name what they concern, e.g. "[t-42]" or "[t-42 post p1]".
        self.label = label
        self._decisions: dict[str, tuple[type[BaseModel], DecideFn]] = {}
        # Signals only the workflow itself may send (an effect's failure, a child's state).
        self._internal: set[str] = set()
        # The signal being decided: every trail entry it causes names it.
        self._signal: str | None = None
        # Workflows that began before trail lines were bounded keep their lines as they were
        # (the workflow sets this from its patch); new ones clip quotes and name a NUL's sender.
        self.bounded = True

    def decides(
        self, signal: str, model: type[BaseModel], decision: DecideFn, *, internal: bool = False
    ) -> None:
        self._decisions[signal] = (model, decision)
        if internal:
            self._internal.add(signal)

    def apply(
        self,
        signal: str,
        raw: Any,
        at: datetime,
        problem: str | None = None,
        *,
        internal: bool = False,
    ) -> Outcome:
        """Decide one signal; `problem` says why its payload could not be read at all.

        `internal` is true only for what the workflow hands itself; an internal signal's name
        arriving from outside is refused as forbidden, and recorded like any refusal.
        """
        if problem is not None:
            reason = f"malformed {signal}: {problem}"
            return self._refuse(signal, raw, at, Refused(reason, RefusalKind.malformed))
        if signal in self._internal and not internal:
            reason = (
                f"{signal} is what this {self.noun}'s own workflow tells itself; "
                "it cannot be sent from outside"
            )
            return self._refuse(signal, raw, at, Refused(reason, RefusalKind.forbidden))
        if contains_nul(raw):
            # PostgreSQL text cannot hold it: taken, it would stall every record of this trail.
            reason = f"malformed {signal}: text contains a NUL character"
            sender = raw if self.bounded else None
            return self._refuse(signal, sender, at, Refused(reason, RefusalKind.malformed))
        if signal not in self._decisions:
            reason = f"{signal} is not a signal this {self.noun} takes"
            return self._refuse(signal, raw, at, Refused(reason, RefusalKind.unknown))
        model, decide = self._decisions[signal]
        try:
            payload = model.model_validate(raw)
        except ValidationError as err:
            reason = f"malformed {signal}: {describe(err)}"
            return self._refuse(signal, raw, at, Refused(reason, RefusalKind.malformed))
        self._signal = signal
        try:
            return decide(payload, at)
        except Refused as refusal:
            return self._refuse(signal, raw, at, refusal)
        finally:
            self._signal = None

    def refuse(self, signal: str, raw: Any, at: datetime, reason: str) -> Outcome:
        """Record `signal` as refused for a reason of the workflow's (e.g. no such update)."""
        return self._refuse(signal, raw, at, Refused(reason, RefusalKind.unknown))

    # -- deadlines ---------------------------------------------------------------------------

    def deadline_reminder(self, key: str, index: int) -> Outcome:
        deadline = self.state.deadline(key)
        if deadline is None or deadline.status is not DeadlineStatus.pending:
            return Outcome()
        if index in deadline.reminders_sent:
            return Outcome()
        deadline.reminders_sent.append(index)
        return Outcome(
            effects=[
                Notify(
                    key=f"deadline/{key}/reminder-{index}",
                    kind="reminder",
                    subject=self.subject(f"due {moment(deadline.due_at)}: {deadline.title}"),
                    body=f"{deadline.title} falls due {moment(deadline.due_at)}.",
                    roles=deadline.remind,
                    summary=f"remind: {deadline.title}",
                )
            ]
        )

    def deadline_breached(self, key: str, at: datetime) -> Outcome:
        deadline = self.state.deadline(key)
        if deadline is None or deadline.status is not DeadlineStatus.pending:
            return Outcome()
        deadline.status = DeadlineStatus.breached
        deadline.breached_at = at
        who = deadline.responsible_person or deadline.responsible_unit
        self.record(
            at,
            "deadline_breached",
            f"{deadline.title} missed (due {moment(deadline.due_at)}; "
            f"responsible: {deadline.responsible_unit}, {who})",
        )
        return Outcome(
            effects=[
                Notify(
                    key=f"deadline/{key}/escalation",
                    kind="escalation",
                    subject=self.subject(f"missed: {deadline.title}"),
                    body=f"{deadline.title} was due {moment(deadline.due_at)} and is not met. "
                    f"Responsible unit: {deadline.responsible_unit}.",
                    roles=deadline.escalate_to,
                    summary=f"escalate: {deadline.title} missed",
                )
            ]
        )

    def meet(self, key: str, at: datetime) -> None:
        deadline = self.state.deadline(key)
        if deadline is None or deadline.met_at is not None:
            return
        deadline.met_at = at
        if deadline.status is DeadlineStatus.pending and at > deadline.due_at:
            # Met after its due time, before the timer's breach was decided: late all the same.
            deadline.status = DeadlineStatus.breached
            deadline.breached_at = deadline.due_at
        if deadline.status is DeadlineStatus.pending:
            deadline.status = DeadlineStatus.met
            self.record(at, "deadline_met", f"{deadline.title} met")
        else:
            self.record(
                at, "deadline_met_late", f"{deadline.title} met late, by {at - deadline.due_at}"
            )

    # -- roster checks -----------------------------------------------------------------------

    def require(self, person_id: str, role: Role) -> Role:
        refusal = self.roster.role_refusal(person_id, role, self.unit)
        if refusal is not None:
            raise Refused(refusal, RefusalKind.forbidden)
        return role

    def require_any(self, person_id: str, roles: tuple[Role, ...]) -> Role:
        for role in roles:
            if self.roster.holds(person_id, role, self.unit):
                return role
        if self.roster.person(person_id) is None:
            raise Refused(f"{person_id!r} is not in the roster", RefusalKind.forbidden)
        wanted = " or ".join(roles)
        raise Refused(f"{person_id} is not {wanted} for {self.unit}", RefusalKind.forbidden)

    # -- the trail ---------------------------------------------------------------------------

    def subject(self, text: str) -> str:
        return f"[{self.label}] {text}"

    def record(
        self,
        at: datetime,
        kind: str,
        detail: str,
        *,
        actor: str | None = None,
        role: str | None = None,
        signal: str | None = None,
    ) -> None:
        self.state.trail.append(
            TrailEntry(
                at=at,
                kind=kind,
                actor=actor,
                role=role,
                detail=self._quote(detail),
                signal=signal or self._signal,
            )
        )

    def _refuse(self, signal: str, raw: Any, at: datetime, refusal: Refused) -> Outcome:
        actor = _sender(raw)
        if self.bounded:
            self.state.refused_total += 1
            if actor is not None:
                actor = clip(printable(actor), 200)
            signal = clip(printable(signal), 200)
        self.state.trail.append(
            TrailEntry(
                at=at,
                kind="refused",
                actor=actor,
                detail=self._quote(str(refusal)),
                signal=signal,
                refused=True,
                refusal_kind=refusal.kind.value,
            )
        )
        return Outcome(refusal=refusal)

    def _quote(self, detail: str) -> str:
        return clip(printable(detail), DETAIL_LIMIT) if self.bounded else detail


def contains_nul(value: Any) -> bool:
    """Whether any string in a decoded JSON value holds U+0000."""
    if isinstance(value, str):
        return "\x00" in value
    if isinstance(value, dict):
        return any(contains_nul(k) or contains_nul(v) for k, v in value.items())
    if isinstance(value, list):
        return any(contains_nul(item) for item in value)
    return False


def printable(text: str) -> str:
    """`text` as PostgreSQL and UTF-8 can hold it: a NUL or a lone surrogate shown escaped."""
    if "\x00" not in text and text.isprintable():
        return text
    return "".join(
        ch
        if ch != "\x00" and not 0xD800 <= ord(ch) <= 0xDFFF
        else ch.encode("unicode_escape").decode("ascii")
        for ch in text
    )


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def describe(err: ValidationError) -> str:
    """Each problem with the field it concerns, e.g. `facts.place: Field required`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in err.errors()
    )


def _sender(raw: Any) -> str | None:
    if isinstance(raw, dict):
        for key in (
            "approver_id",
            "author_id",
            "reporter_id",
            "assessor_id",
            "responder_id",
            "requested_by",
            "received_by",
            "changed_by",
            "closed_by",
            "decided_by",
            "reported_by",
            "chosen_by",
            "recorded_by",
            "source",
        ):
            if isinstance(raw.get(key), str):
                return str(raw[key])
    return None


def moment(value: datetime | None) -> str:
    return value.isoformat(timespec="minutes") if value else "(unknown)"
