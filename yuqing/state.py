"""The incident as the `state` query returns it (SPEC §5): one model, kept by the workflow."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from datetime import datetime
from enum import StrEnum
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, Field, computed_field

from yuqing.models import (
    Assessment,
    Decision,
    Grade,
    IntakeChannel,
    LegalOpinion,
    Metrics,
    PublicationChannel,
    Review,
    Sensitivity,
    UpwardReport,
)
from yuqing.roles import Role

_Keyed = TypeVar("_Keyed", "Notification", "Publication")


class Stage(StrEnum):
    discovered = "discovered"
    reported = "reported"
    assessed = "assessed"
    handling = "handling"
    approving = "approving"
    published = "published"
    monitoring = "monitoring"
    closed = "closed"
    reviewed = "reviewed"


class DeadlineStatus(StrEnum):
    pending = "pending"
    met = "met"
    breached = "breached"
    # A post's deadline the leading group released when it closed the incident with the post
    # still open (SPEC §4); the reason is in the trail.
    waived = "waived"


class DraftStatus(StrEnum):
    in_review = "in_review"
    returned = "returned"
    superseded = "superseded"
    approved = "approved"
    published = "published"


class FixedEvidence(BaseModel):
    evidence_id: str
    kind: str
    source_url: str | None
    description: str
    captured_at: datetime
    sha256: str
    size_bytes: int


class Deadline(BaseModel):
    key: str
    title: str
    clock: str
    starts_at: datetime
    due_at: datetime
    reminders_at: list[datetime]
    remind: list[Role]
    escalate_to: list[Role]
    responsible_unit: str
    responsible_person: str | None
    policy_version: str
    calendar_version: str | None = None
    status: DeadlineStatus = DeadlineStatus.pending
    met_at: datetime | None = None
    breached_at: datetime | None = None
    # The reminders (1-based, in `reminders_at` order) already sent, so that re-arming the
    # deadline (after a continue-as-new, say) never sends one twice.
    reminders_sent: list[int] = Field(default_factory=list)


class Draft(BaseModel):
    version: int
    author_id: str
    text: str
    channels: list[PublicationChannel]
    submitted_at: datetime
    status: DraftStatus = DraftStatus.in_review
    returned_reason: str | None = None
    # In the `state` answer, drafts before the latest two leave their text out (`draft` query).
    text_omitted: bool = False


class ApprovalRecord(BaseModel):
    signal: str
    role: Role
    approver_id: str
    decision: Decision
    draft_version: int
    comment: str
    at: datetime
    void: bool = False
    void_reason: str | None = None


class Waiting(BaseModel):
    """How a notice or a statement is faring while a channel keeps it waiting (all empty once it
    went out at the first try). The workflow learns this after each bounded round of attempts
    (see workflows/delivery.py), so `last_error` is the error of the round's last attempt."""

    waiting_since: datetime | None = None
    attempts: int = 0
    last_error: str | None = None
    last_attempt_at: datetime | None = None
    # Set only when the next try is held back on purpose: a receiver that took the message but
    # did not answer in time is not sent another copy before this.
    retry_at: datetime | None = None


class Publication(Waiting):
    """A statement on one channel: `published`, or `pending` while its gateway has not taken it
    (then it has no address, hash or time yet, and `last_error` says why)."""

    channel: PublicationChannel
    draft_version: int
    status: Literal["published", "pending"] = "published"
    address: str | None = None
    content_sha256: str | None = None
    published_at: datetime | None = None
    idempotency_key: str

    @property
    def published(self) -> bool:
        return self.status == "published"


class Notification(Waiting):
    """A notice: `sent` (every target has it, or refused it for good), or `pending` while a
    channel is down (then `sent_at` is empty and `last_error` says what is keeping it)."""

    idempotency_key: str
    kind: str
    subject: str
    recipients: list[str]
    channel: str
    status: Literal["sent", "pending"] = "sent"
    result: str
    sent_at: datetime | None = None


def put(entries: list[_Keyed], entry: _Keyed) -> None:
    """`entry` in place of the one with its idempotency key (a pending one), else appended."""
    for index, existing in enumerate(entries):
        if existing.idempotency_key == entry.idempotency_key:
            entries[index] = entry
            return
    entries.append(entry)


class GradeChange(BaseModel):
    grade: Grade
    criteria: list[str]
    by: str
    reason: str
    at: datetime


class TrailEntry(BaseModel):
    """One line of the decision trail: an input, a decision or an outcome, and who made it."""

    at: datetime
    kind: str
    actor: str | None = None
    role: str | None = None
    detail: str
    signal: str | None = None
    refused: bool = False
    # malformed, forbidden, conflict or unknown (yuqing.outcomes.RefusalKind), when refused.
    refusal_kind: str | None = None
    # A system the input came through, beside the person acting (a monitor, an e-mail's
    # claimed sender); and the key whose signature proved the actor (yuqing.signing).
    source: str | None = None
    key_id: str | None = None
    # console (i18n): what happened as data, `{"key": "msg.<…>", "params": {…}}`, rendered in
    # the reader's language (yuqing.i18n.render); `detail` keeps the English of it. None:
    # a line of free text (a reason, an opinion) or from before messages existed.
    message: dict[str, Any] | None = None


class Replan(BaseModel):
    """A pending deadline moved by a new calendar or an extension: old due, new due, why."""

    key: str
    old_due_at: datetime
    new_due_at: datetime
    reason: str
    calendar_version: str | None
    at: datetime


# How much of each list the `state` answer shows: the latest items (README "The state").
RECENT_TRAIL = 20
RECENT_ITEMS = 20
RECENT_OPINIONS = 3
DRAFT_TEXTS = 2
# A page of the `trail` query holds at most this many lines.
TRAIL_PAGE = 100
# How much of a post's texts its incident lists (the post's own state has them whole).
LISTED_CHARS = 300
# plan (issue 12): how many contacts, notices, interviews, breaches and votes the `state`
# answer shows, and how much of each text.
RECENT_PLAN = 5
PLAN_CHARS = 100


def clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


class Tracked(BaseModel):
    """What every decided workflow keeps: its deadlines and its decision trail.

    `trail` holds the lines from position `trail_offset` on: lines already copied to the audit
    table are left behind when the workflow continues as new, and counted in the offset. In the
    `state` answer it is the latest lines only; `trail_total` counts them all.
    """

    deadlines: list[Deadline] = Field(default_factory=list)
    replans: list[Replan] = Field(default_factory=list)
    trail: list[TrailEntry] = Field(default_factory=list)
    trail_offset: int = 0
    # Refusals over the whole trail, including lines no longer held.
    refused_total: int = 0
    # In the `state` answer: how many earlier items of each list it leaves out.
    omitted: dict[str, int] = Field(default_factory=dict)

    def deadline(self, key: str) -> Deadline | None:
        return next((d for d in self.deadlines if d.key == key), None)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def trail_total(self) -> int:
        return self.trail_offset + len(self.trail)

    def page(self, offset: int, limit: int) -> TrailPage:
        """Lines `offset`.. of the trail, as far as this workflow still holds them."""
        limit = max(0, min(limit, TRAIL_PAGE))
        start = max(offset, self.trail_offset)
        lines = self.trail[start - self.trail_offset : start - self.trail_offset + limit]
        return TrailPage(
            offset=start, lines=lines, total=self.trail_total, first_held=self.trail_offset
        )

    def _trimmed(self, recent: dict[str, int]) -> dict[str, object]:
        """The latest items of each named list, and how many are left out."""
        update: dict[str, object] = {}
        omitted = dict(self.omitted)
        for name, keep in recent.items():
            items = getattr(self, name)
            if len(items) > keep:
                update[name] = items[len(items) - keep :]
                omitted[name] = omitted.get(name, 0) + len(items) - keep
        held = len(self.trail)
        if held > RECENT_TRAIL:
            update["trail"] = self.trail[held - RECENT_TRAIL :]
            update["trail_offset"] = self.trail_offset + held - RECENT_TRAIL
        update["omitted"] = omitted
        return update

    @property
    def refusals(self) -> list[TrailEntry]:
        return [entry for entry in self.trail if entry.refused]

    @property
    def refusal_count(self) -> int:
        """Refusals in all, for workflows that count them; else those in the held trail."""
        return self.refused_total or len(self.refusals)


class TrailPage(BaseModel):
    """Part of a trail: `lines` begin at position `offset` of `total`.

    A workflow holds its lines from `first_held` on; earlier ones are in the audit table
    (`GET /incidents/{id}/trail` reads both).
    """

    offset: int
    lines: list[TrailEntry]
    total: int
    first_held: int


class PostStatus(StrEnum):
    received = "received"
    awaiting_reply = "awaiting_reply"
    answered = "answered"
    closed_unanswered = "closed_unanswered"


class PostAction(BaseModel):
    """A step taken on a post, and who took it when (SPEC §4)."""

    by: str
    at: datetime
    text: str


class PostState(Tracked):
    """One netizen post as its `NetizenPostWorkflow` keeps it, and as the incident lists it."""

    post_id: str
    workflow_id: str
    incident_id: str
    unit: str
    platform: str
    author: str
    content: str
    url: str | None
    learnt_at: datetime
    received_by: str
    status: PostStatus = PostStatus.received
    needs_formal_handling: bool | None = None
    initial_response: PostAction | None = None
    formal_reply: PostAction | None = None
    extension: PostAction | None = None
    extended_to_days: int | None = None
    closed_reason: str | None = None
    # Counts the snapshots the post has sent its incident, so an older one never wins.
    revision: int = 0
    # Its notices still waiting for a channel (status `pending`); a notice once sent leaves
    # this list and is in the trail as `notified`.
    pending_notifications: list[Notification] = Field(default_factory=list)

    @property
    def open(self) -> bool:
        return self.status in (PostStatus.received, PostStatus.awaiting_reply)

    def view(self) -> PostState:
        """The `state` answer: the latest trail lines only."""
        return self.model_copy(update=self._trimmed({"replans": RECENT_ITEMS}))

    def listed(self) -> PostState:
        """As its incident lists it: without its trail, which the post keeps, and its texts
        shortened (the post's own `state` has them whole)."""
        update: dict[str, object] = {
            "trail": [],
            "trail_offset": self.trail_total,
            "content": clip(self.content, LISTED_CHARS),
            "url": clip(self.url, LISTED_CHARS) if self.url else self.url,
        }
        for name in ("initial_response", "formal_reply", "extension"):
            action = getattr(self, name)
            if action is not None:
                update[name] = action.model_copy(update={"text": clip(action.text, LISTED_CHARS)})
        return self.model_copy(update=update)


class ResponseStatus(StrEnum):
    """Where the assessment's decision to respond or not stands (§4.3)."""

    respond = "respond"  # a statement is due
    awaiting_waiver = "awaiting_waiver"  # "no response needed", waiting for its approval
    waived = "waived"  # approved: the statement deadline is waived, the incident monitored
    waiver_refused = "waiver_refused"  # the approver refused: a statement is due after all
    duty_returned = "duty_returned"  # waived, then an upgrade or new figures brought it back


class ResponseDecision(BaseModel):
    needed: bool
    measures: str
    reason: str
    decided_by: str
    decided_at: datetime
    status: ResponseStatus
    approved_by: str | None = None
    approver_role: str | None = None
    approved_at: datetime | None = None
    approval_comment: str | None = None
    # The major-incident criteria (their keys) that held when the waiver was approved: a new
    # one firing later brings the duty back.
    criteria_when_waived: list[str] = Field(default_factory=list)
    grade_when_waived: Grade | None = None
    returned_at: datetime | None = None
    returned_reason: str | None = None


class InterviewStatus(StrEnum):
    requested = "requested"
    authorised = "authorised"
    refused = "refused"
    held = "held"
    held_unauthorised = "held_unauthorised"


class InterviewRecord(BaseModel):
    """A media interview (§4.4): asked for, authorised or refused by the leading group, held."""

    interview_id: str
    interviewee: str
    medium: str
    scheduled_at: datetime | None
    topic: str
    requested_by: str | None
    requested_at: datetime | None
    status: InterviewStatus
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_comment: str | None = None
    held_at: datetime | None = None
    held_summary: str | None = None
    reported_by: str | None = None


class Breach(BaseModel):
    """A rule of the plan broken, and who answers for it (§5.4)."""

    rule: str
    person: str
    unit: str | None
    at: datetime
    detail: str


class GroupVote(BaseModel):
    """One leading-group member's vote on one matter (a draft, a waiver, an interview …)."""

    matter: str
    member: str
    decision: Decision
    comment: str
    at: datetime


class GroupChoice(BaseModel):
    """The leading group's members chosen for this incident (§5.1)."""

    members: list[str]
    chosen_by: str
    reason: str
    at: datetime
    # 1 for the first choice, 2 when the group chose again …
    number: int = 1


class DepartmentContactRecord(BaseModel):
    department: str
    department_name: str
    recorded_by: str
    contacted_at: datetime
    contact_person: str
    said: str
    at: datetime
    # Set once `said` is left out of a continued run's input: what `key()` was.
    fingerprint: str | None = None

    def key(self) -> str:
        """Which contact this is: the department, the moment and the words."""
        if self.fingerprint is not None:
            return self.fingerprint
        return contact_key(self.department, self.contacted_at, self.said)


def contact_key(department: str, contacted_at: datetime, said: str) -> str:
    words = f"{department}\n{contacted_at.isoformat()}\n{said}".encode()
    return hashlib.sha256(words).hexdigest()


class DepartmentNoticeRecord(BaseModel):
    request_id: str
    department: str
    department_name: str
    requested_by: str
    message: str
    at: datetime


class DrillInfo(BaseModel):
    """A drill (§5.3): its scenario, and how many times faster its clocks run."""

    scenario: str
    speed: float
    started_by: str


class IncidentState(Tracked):
    incident_id: str
    workflow_id: str
    title: str
    channel: IntakeChannel
    unit: str
    reporter_id: str
    summary: str
    source_url: str | None
    sensitivity: Sensitivity
    discovered_at: datetime
    policy_version: str | None = None
    roster_version: str | None = None
    stage: Stage = Stage.discovered
    grade: Grade | None = None
    grade_criteria: list[str] = Field(default_factory=list)
    grade_history: list[GradeChange] = Field(default_factory=list)
    metrics: Metrics = Field(default_factory=Metrics)
    evidence: list[FixedEvidence] = Field(default_factory=list)
    # Submissions taken (the first report's and each add_evidence), and evidence numbers given.
    submissions: list[str] = Field(default_factory=list)
    evidence_numbered: int = 0
    report: UpwardReport | None = None
    reported_at: datetime | None = None
    assessment: Assessment | None = None
    legal_opinions: list[LegalOpinion] = Field(default_factory=list)
    drafts: list[Draft] = Field(default_factory=list)
    approvals: list[ApprovalRecord] = Field(default_factory=list)
    publications: list[Publication] = Field(default_factory=list)
    notifications: list[Notification] = Field(default_factory=list)
    closed_at: datetime | None = None
    close_reason: str | None = None
    review: Review | None = None
    posts: list[PostState] = Field(default_factory=list)
    # -- the rest of the plan (issue 12) ---------------------------------------------------
    calendar_version: str | None = None
    response: ResponseDecision | None = None
    interviews: list[InterviewRecord] = Field(default_factory=list)
    breaches: list[Breach] = Field(default_factory=list)
    group_choice: GroupChoice | None = None
    group_votes: list[GroupVote] = Field(default_factory=list)
    # Matters the group has decided (its votes on them are closed).
    group_decided: list[str] = Field(default_factory=list)
    contacts: list[DepartmentContactRecord] = Field(default_factory=list)
    department_notices: list[DepartmentNoticeRecord] = Field(default_factory=list)
    # Major-incident criteria (keys) the leading group overruled when it downgraded: they no
    # longer upgrade the incident by themselves.
    overruled_criteria: list[str] = Field(default_factory=list)
    # Keys of deadlines an activity is planning, so that none is asked for twice.
    planning: list[str] = Field(default_factory=list)
    drill: DrillInfo | None = None

    @property
    def current_draft(self) -> Draft | None:
        return self.drafts[-1] if self.drafts else None

    def view(self) -> IncidentState:
        """The `state` answer, small however long the incident lives (README "The state").

        The latest trail lines and items of each growing list, with `omitted` counting the rest;
        every draft, but only the latest two with their text; posts without their trails.
        """
        update = self._trimmed(
            {
                "evidence": RECENT_ITEMS,
                "submissions": RECENT_ITEMS,
                "grade_history": RECENT_ITEMS,
                "legal_opinions": RECENT_OPINIONS,
                "approvals": RECENT_ITEMS,
                "publications": RECENT_ITEMS,
                "notifications": RECENT_ITEMS,
                "posts": RECENT_ITEMS,
                "replans": RECENT_ITEMS,
                # plan (issue 12): the latest few, their texts shortened (_plan_shown).
                "interviews": RECENT_PLAN,
                "breaches": RECENT_PLAN,
                "group_votes": RECENT_PLAN,
                "contacts": RECENT_PLAN,
                "department_notices": RECENT_PLAN,
            }
        )
        update.update(self._plan_shown(update))
        cut = len(self.drafts) - DRAFT_TEXTS
        update["drafts"] = [
            d if i >= cut else d.model_copy(update={"text": "", "text_omitted": True})
            for i, d in enumerate(self.drafts)
        ]
        posts = update.get("posts", self.posts)
        assert isinstance(posts, list)
        update["posts"] = [p.listed() if p.trail else p for p in posts]
        return self.model_copy(update=update)

    def draft(self, version: int) -> Draft | None:
        return next((d for d in self.drafts if d.version == version), None)

    def carried(self) -> IncidentState:
        """The state as the next run takes it (continue-as-new): all it decides by, but not
        what only the record needs, which this run's history, the trail and PostgreSQL keep:
        texts of drafts before the latest two and of legal opinions before the latest three,
        evidence and notices but the latest (and any notice still waiting), approvals of
        earlier draft versions but the latest; posts as listed. `omitted` counts what went."""
        cut = len(self.drafts) - DRAFT_TEXTS
        kept = len(self.legal_opinions) - RECENT_OPINIONS
        current = self.current_draft.version if self.current_draft else None
        omitted = dict(self.omitted)

        def latest(name: str, items: list[Any], keep: Callable[[Any], bool]) -> list[Any]:
            recent = set(range(max(0, len(items) - RECENT_ITEMS), len(items)))
            chosen = [item for i, item in enumerate(items) if i in recent or keep(item)]
            if len(chosen) < len(items):
                omitted[name] = omitted.get(name, 0) + len(items) - len(chosen)
            return chosen

        update: dict[str, object] = {
            "drafts": [
                d if i >= cut else d.model_copy(update={"text": "", "text_omitted": True})
                for i, d in enumerate(self.drafts)
            ],
            "legal_opinions": [
                o if i >= kept else o.model_copy(update={"opinion": "…", "legal_basis": ""})
                for i, o in enumerate(self.legal_opinions)
            ],
            "evidence": latest("evidence", self.evidence, lambda _: False),
            # A notice still waiting for its channel is still the incident's business.
            "notifications": latest(
                "notifications",
                self.notifications,
                lambda n: getattr(n, "status", "sent") != "sent",
            ),
            "approvals": latest(
                "approvals", self.approvals, lambda a: a.draft_version == current
            ),
            # A post read from its workflow is listed already; one not started yet keeps
            # its texts whole, for the workflow it starts.
            "posts": [p.listed() if p.trail else p for p in self.posts],
        }
        update["omitted"] = omitted
        return self.model_copy(update={**update, **self._plan_carried()})

    def _plan_shown(self, update: dict[str, object]) -> dict[str, object]:
        """plan (issue 12): in the `state` answer, the texts of contacts, notices, interviews,
        breaches and votes shortened; each is whole on the trail (README "The state")."""
        texts = {
            "interviews": ("interviewee", "medium", "topic", "decision_comment", "held_summary"),
            "breaches": ("detail",),
            "group_votes": ("comment",),
            "contacts": ("department_name", "contact_person", "said"),
            "department_notices": ("department_name", "message"),
        }
        shown: dict[str, object] = {}
        for name, fields in texts.items():
            items = update.get(name, getattr(self, name))
            assert isinstance(items, list)
            shown[name] = [
                item.model_copy(
                    update={
                        f: clip(getattr(item, f), PLAN_CHARS)
                        for f in fields
                        if isinstance(getattr(item, f), str)
                    }
                )
                for item in items
            ]
        return shown

    def _plan_carried(self) -> dict[str, object]:
        """plan (issue 12): what the next run needs of contacts, notices, interviews, breaches
        and votes, and no more: their texts are on the trail (and in the audit table), so
        the next run's input stays small with every list at its maximum. Repeats are still
        found (a contact by its fingerprint, a notice by its request id), and the votes on
        matters still open keep a short comment."""
        gone = "…"
        return {
            "contacts": [
                c.model_copy(update={"said": gone, "contact_person": "", "fingerprint": c.key()})
                for c in self.contacts
            ],
            "department_notices": [
                n.model_copy(update={"message": gone}) for n in self.department_notices
            ],
            "interviews": [
                v.model_copy(
                    update={
                        "interviewee": clip(v.interviewee, PLAN_CHARS),
                        "medium": clip(v.medium, PLAN_CHARS),
                        "topic": gone,
                        "decision_comment": None,
                        "held_summary": None,
                    }
                )
                for v in self.interviews
            ],
            "breaches": [b.model_copy(update={"detail": gone}) for b in self.breaches],
            # A vote on a matter decided counts no more (refused before it is tallied).
            "group_votes": [
                v.model_copy(update={"comment": clip(v.comment, PLAN_CHARS)})
                for v in self.group_votes
                if v.matter not in self.group_decided
            ],
        }

    def count(self, name: str) -> int:
        """How many items a list has had, including those a continued run left behind."""
        items = getattr(self, name)
        assert isinstance(items, list)
        return len(items) + self.omitted.get(name, 0)

    def post(self, post_id: str) -> PostState | None:
        return next((p for p in self.posts if p.post_id == post_id), None)


class IncidentSummary(BaseModel):
    """What the workflow returns when the incident is reviewed."""

    incident_id: str
    grade: Grade | None
    grade_criteria: list[str]
    policy_version: str | None
    discovered_at: datetime
    closed_at: datetime | None
    close_reason: str | None
    deadlines: dict[str, DeadlineStatus]
    publications: int
    notifications: int
    refused_signals: int
