"""The mechanics every decided workflow shares: validate, decide, refuse, record.

A subclass maps signal names to (payload model, decision). `apply` checks the proof of a
deciding payload (`yuqing.signing`: the author's signature, against the keys the incident
loaded), validates the raw payload, runs the decision, and on a refusal records why.
Decisions check everything before they change anything, so a refused signal leaves the state
as it was. Deadlines (reminders, breaches) are decided here too, the same way for an incident
and for a post.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

from pydantic import BaseModel, ValidationError

from yuqing.authorization import LEGACY, Authorization, SignalRule, Workflow
from yuqing.i18n.notices import NoticeText
from yuqing.limits import UNBOUNDED
from yuqing.models import Grade
from yuqing.outcomes import Notify, Outcome, RefusalKind, Refused
from yuqing.roles import Role
from yuqing.roster import Roster
from yuqing.signing import KEY_ID, PROOF, Keyring, PublicKey, SignatureRefused
from yuqing.state import Deadline, DeadlineStatus, Tracked, TrailEntry

S = TypeVar("S", bound=Tracked)
DecideFn = Callable[[Any, datetime], Outcome]
# A signal passed on from the incident to its posts carries the incident's signed payload here.
FORWARDED = "forwarded"
# The keys are read again before a decision when its key is unknown (a key added since the
# incident began), at most this many times, or when the copy is older than KEYS_FRESH (so a
# key withdrawn early stops counting within the hour).
KEY_FETCHES = 8
KEYS_FRESH = timedelta(hours=1)

# A trail line quotes what it records (an opinion, a reason) up to this many characters; the
# whole text stays in the state and in the signal's own event.
DETAIL_LIMIT = 1000


class Decider(Generic[S]):
    # What the workflow is called in refusals: "incident", "post".
    noun = "workflow"

    # Which rules of the authorization file apply: "incident" or "post".
    workflow: Workflow = "incident"

    def __init__(
        self,
        state: S,
        roster: Roster,
        unit: str,
        label: str,
        *,
        authorization: Authorization | None = None,
        keys: Keyring | None = None,
        keys_loaded_at: datetime | None = None,
        parent_workflow_id: str | None = None,
    ) -> None:
        self.state = state
        self.roster = roster
        self.unit = unit
        # How notices name what they concern, e.g. "[t-42]" or "[t-42 post p1]".
        self.label = label
        # Who may send what; without a file (a history from before it), the rules of old.
        self.authorization = authorization or LEGACY
        # The public keys decisions are checked against; None: nothing is checked (a history
        # from before signed decisions, which must replay as it ran).
        self.keys = keys
        self.keys_loaded_at = keys_loaded_at
        self._key_fetches: set[str] = set()
        # Signatures of the decisions taken: a proof read from the history and sent again
        # decides nothing twice.
        self.used_proofs: set[str] = set()
        self.parent_workflow_id = parent_workflow_id
        self._decisions: dict[str, tuple[type[BaseModel], DecideFn]] = {}
        # Signals only the workflow itself may send (an effect's failure, a child's state).
        self._internal: set[str] = set()
        # The signal being decided: every trail entry it causes names it.
        self._signal: str | None = None
        # The key that proved it, and its payload as signed (for passing on to the posts).
        self._key: PublicKey | None = None
        self._signed: dict[str, Any] | None = None
        # Workflows that began before trail lines were bounded keep their lines as they were
        # (the workflow sets this from its patch); new ones clip quotes and name a NUL's sender.
        self.clip_trail = True
        # And those that began before the inputs had limits decide by the rules they began with.
        self.bounded = True
        # console (i18n): trail lines carry their message (key + params) beside the English
        # detail; workflows older than that (the workflow sets this from its patch) do not.
        self.trail_messages = True
        # i18n: the plan's own lines (yuqing.rules) carry their message too; workflows that
        # began before that (the workflow sets this from patch i18n-plan-messages) do not.
        self.plan_messages = True
        # console (i18n): notices as data, rendered in the reader's language, and a notice to
        # each approver whose step a draft reaches; workflows older than that (the workflow sets
        # this from its patch) send the English notices they always did.
        self.notice_texts = True

    @property
    def workflow_id(self) -> str:
        """What a proof must name: the workflow the payload was sent to."""
        return str(getattr(self.state, "workflow_id", ""))

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
            sender = raw if self.clip_trail else None
            return self._refuse(signal, sender, at, Refused(reason, RefusalKind.malformed))
        if signal not in self._decisions:
            reason = f"{signal} is not a signal this {self.noun} takes"
            return self._refuse(signal, raw, at, Refused(reason, RefusalKind.unknown))
        model, decide = self._decisions[signal]
        rule = self.authorization.rule(self.workflow, signal)
        key: PublicKey | None = None
        signed = raw
        if isinstance(raw, dict):
            raw = {k: v for k, v in raw.items() if k not in (PROOF, FORWARDED)}
            if self.keys is not None and rule is not None and rule.signed and not rule.internal:
                try:
                    key = self._proven(signal, rule, signed, raw, at)
                except SignatureRefused as err:
                    claim = _sender(raw)
                    who = f" (in the name of {claim}, unproven)" if claim else ""
                    reason = f"{signal}{who} refused: {err}"
                    refusal = Refused(reason, RefusalKind.forbidden)
                    return self._refuse(signal, raw, at, refusal, actor=None)
        try:
            # Workflows older than the bounds decide by the rules they began with (replay).
            payload = model.model_validate(raw, context=None if self.bounded else UNBOUNDED)
        except ValidationError as err:
            reason = f"malformed {signal}: {describe(err)}"
            return self._refuse(signal, raw, at, Refused(reason, RefusalKind.malformed))
        if key is not None and _signature(signed) in self.used_proofs:
            # Proven (its author did sign it), but decided once already: a proof read from the
            # history and sent again changes nothing. Refused for what the decision itself
            # would say now, if anything, else as a repeat.
            return self._refuse(signal, raw, at, self._repeat(signal, decide, payload, at))
        self._signal, self._key, self._signed = signal, key, signed if key else None
        try:
            outcome = decide(payload, at)
        except Refused as refusal:
            return self._refuse(signal, raw, at, refusal)
        finally:
            self._signal, self._key, self._signed = None, None, None
        if key is not None and outcome.refusal is None:
            self.used_proofs.add(_signature(signed))
        return outcome

    # -- proofs ------------------------------------------------------------------------------

    def _repeat(self, signal: str, decide: DecideFn, payload: BaseModel, at: datetime) -> Refused:
        kept = self.state
        self.state = kept.model_copy(deep=True)
        try:
            decide(payload, at)
        except Refused as refusal:
            return refusal
        finally:
            self.state = kept
        return Refused(
            f"this signed {signal} was already decided: the same signed payload counts once "
            "(a new decision needs a new signature)"
        )

    def _proven(
        self,
        signal: str,
        rule: SignalRule,
        signed: dict[str, Any],
        raw: dict[str, Any],
        at: datetime,
    ) -> PublicKey:
        """The key that proves this payload; SignatureRefused when none does."""
        assert self.keys is not None
        if rule.forwarded_from is None:
            if FORWARDED in signed:
                raise SignatureRefused(f"{signal} is not a signal passed on from the incident")
            verified = self.keys.verify(self.workflow_id, signal, signed, at)
        else:
            # Passed on by the incident: the person's proof is over the incident's payload.
            forwarded = signed.get(FORWARDED)
            if not isinstance(forwarded, dict) or not isinstance(forwarded.get("payload"), dict):
                raise SignatureRefused(
                    f"{signal} comes only from the incident, with the signed {rule.forwarded_from}"
                )
            if forwarded.get("signal") != rule.forwarded_from:
                raise SignatureRefused(f"{signal} must carry a signed {rule.forwarded_from}")
            origin = forwarded["payload"]
            verified = self.keys.verify(
                self.parent_workflow_id or "", rule.forwarded_from, origin, at
            )
            if not self.derived(signal, verified.payload, raw):
                raise SignatureRefused(
                    f"{signal} does not follow from the signed {rule.forwarded_from} it carries"
                )
        holder = verified.key.holder
        named = raw.get(rule.actor) if rule.actor else None
        if holder is not None and named != holder:
            raise SignatureRefused(
                f"key {verified.key.key_id} is {holder}'s: it cannot sign for {named}"
            )
        return verified.key

    def derived(self, signal: str, origin: dict[str, Any], payload: dict[str, Any]) -> bool:
        """Whether `payload`, passed on from the incident, says what the signed `origin` said."""
        return all(origin.get(field) == value for field, value in payload.items())

    def forwarding(self) -> dict[str, Any] | None:
        """What a signal passed on to the posts carries: the decision as its author signed it."""
        if self._signed is None or self._signal is None:
            return None
        if FORWARDED in self._signed:
            return dict(self._signed[FORWARDED])
        return {"signal": self._signal, "payload": self._signed}

    def key_wanted(self, signal: str, raw: Any, at: datetime) -> bool:
        """Whether to read the keys again before deciding this payload: its key is not in the
        incident's copy (added since), or the copy is older than KEYS_FRESH."""
        rule = self.authorization.rule(self.workflow, signal)
        if self.keys is None or rule is None or not rule.signed or not isinstance(raw, dict):
            return False
        carrier = raw.get(FORWARDED, {}).get("payload") if FORWARDED in raw else raw
        proof = carrier.get(PROOF) if isinstance(carrier, dict) else None
        key_id = proof.get("key_id") if isinstance(proof, dict) else None
        if not isinstance(key_id, str) or not re.match(KEY_ID, key_id):
            return False
        if self.keys.key(key_id) is None:
            if key_id in self._key_fetches or len(self._key_fetches) >= KEY_FETCHES:
                return False
            self._key_fetches.add(key_id)
            return True
        loaded = self.keys_loaded_at
        return loaded is not None and at - loaded > KEYS_FRESH

    def keys_reloaded(self, keys: Keyring, at: datetime) -> None:
        self.keys = keys
        self.keys_loaded_at = at

    def carried(self) -> dict[str, Any]:
        """What this decider keeps beside its state, for the workflow's next run: the
        signatures already used (so none counts twice) and the keys as last read."""
        carried: dict[str, Any] = {"used_proofs": sorted(self.used_proofs)}
        if self.keys is not None:
            carried["keys"] = self.keys.model_dump(mode="json")
            loaded = self.keys_loaded_at
            carried["keys_loaded_at"] = loaded.isoformat() if loaded is not None else None
        return carried

    def restore(self, carried: dict[str, Any]) -> None:
        """Take back, in the workflow's next run, what `carried` gave."""
        self.used_proofs = set(carried.get("used_proofs", []))
        if carried.get("keys") is not None:
            self.keys = Keyring.model_validate(carried["keys"])
            loaded = carried.get("keys_loaded_at")
            self.keys_loaded_at = datetime.fromisoformat(loaded) if loaded else None

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
                    text=self.deadline_text("reminder", deadline),
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
            message=said(
                "msg.deadline_breached",
                **_named(deadline),
                due=deadline.due_at.isoformat(),
                unit=deadline.responsible_unit,
                person=deadline.responsible_person,
            ),
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
                    text=self.deadline_text("escalation", deadline),
                )
            ]
        )

    def deadline_text(self, kind: str, deadline: Deadline) -> dict[str, Any] | None:
        """A deadline's notice as data (yuqing.i18n.notices), if this workflow sends them so."""
        if not self.notice_texts:
            return None
        return self.notice_text(
            kind,
            deadline=deadline.key,
            deadline_title=deadline.title,
            due=deadline.due_at.isoformat(),
            unit=deadline.responsible_unit,
            person=deadline.responsible_person,
        )

    def notice_text(self, kind: str, **params: Any) -> dict[str, Any]:
        """A notice of `kind` about `params`, naming the people and units in them."""
        return NoticeText.about(kind, self.roster, label=self.label, **params).plain()

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
            self.record(
                at,
                "deadline_met",
                f"{deadline.title} met",
                message=said("msg.deadline_met", **_named(deadline)),
            )
        else:
            late = at - deadline.due_at
            self.record(
                at,
                "deadline_met_late",
                f"{deadline.title} met late, by {late}",
                message=said(
                    "msg.deadline_met_late",
                    **_named(deadline),
                    late_seconds=late.total_seconds(),
                ),
            )

    # -- roster checks -----------------------------------------------------------------------

    def authorized(self, signal: str, person_id: str, grade: Grade | None = None) -> Role:
        """The role in which `person_id` may send `signal` (the authorization file's entry)."""
        rule = self.authorization.rule(self.workflow, signal)
        roles = rule.roles_for(grade) if rule is not None else None
        if not roles:
            raise Refused(
                f"no role may send {signal} (authorization {self.authorization.version})",
                RefusalKind.forbidden,
            )
        return self.require_any(person_id, tuple(roles))

    def checks(self, signal: str) -> bool:
        """Whether the authorization names who may send `signal` (the rules of old did not,
        for some)."""
        rule = self.authorization.rule(self.workflow, signal)
        return rule is not None and (rule.roles is not None or bool(rule.by_grade))

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
        source: str | None = None,
        message: dict[str, Any] | None = None,
    ) -> None:
        """Append to the trail; an entry naming its actor names the key that proved it too.
        `message` (`said(...)`): the line as data, for readers of other languages."""
        key = self._key.key_id if self._key is not None and actor is not None else None
        self.state.trail.append(
            TrailEntry(
                at=at,
                kind=kind,
                actor=actor,
                role=role,
                detail=self._quote(detail),
                signal=signal or self._signal,
                source=source,
                key_id=key,
                message=message if self.trail_messages else None,
            )
        )

    def _refuse(
        self, signal: str, raw: Any, at: datetime, refusal: Refused, **who: str | None
    ) -> Outcome:
        actor = who["actor"] if "actor" in who else _sender(raw)
        if self.clip_trail:
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
        return clip(printable(detail), DETAIL_LIMIT) if self.clip_trail else detail


def _named(deadline: Deadline) -> dict[str, Any]:
    """How a message names a deadline: by its key (the catalog's name), else by its title."""
    return {"deadline": deadline.key, "deadline_title": deadline.title}


def said(key: str, **params: Any) -> dict[str, Any]:
    """A trail line's message: its catalog key and parameters (plain JSON: ids, numbers, ISO
    times), rendered by `yuqing.i18n.render`."""
    return {"key": key, "params": params}


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


def _signature(signed: dict[str, Any]) -> str:
    """What identifies a signed decision: its signature (for a post, the incident's it carries)."""
    carrier = signed.get(FORWARDED, {}).get("payload", {}) if FORWARDED in signed else signed
    proof = carrier.get(PROOF) if isinstance(carrier, dict) else None
    return str(proof.get("signature")) if isinstance(proof, dict) else ""


def _sender(raw: Any) -> str | None:
    if isinstance(raw, dict):
        for key in (
            "reported_by",
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
