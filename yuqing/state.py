"""The incident as the `state` query returns it (SPEC §5): one model, kept by the workflow."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Literal, TypeVar

from pydantic import BaseModel, Field

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


class Replan(BaseModel):
    """A pending deadline moved by a new calendar or an extension: old due, new due, why."""

    key: str
    old_due_at: datetime
    new_due_at: datetime
    reason: str
    calendar_version: str | None
    at: datetime


class Tracked(BaseModel):
    """What every decided workflow keeps: its deadlines and its decision trail.

    `trail` holds the lines from position `trail_offset` on: lines already copied to the audit
    table are left behind when the workflow continues as new, and counted in the offset.
    """

    deadlines: list[Deadline] = Field(default_factory=list)
    replans: list[Replan] = Field(default_factory=list)
    trail: list[TrailEntry] = Field(default_factory=list)
    trail_offset: int = 0
    # Refusals over the whole trail, including lines no longer held.
    refused_total: int = 0

    def deadline(self, key: str) -> Deadline | None:
        return next((d for d in self.deadlines if d.key == key), None)

    @property
    def trail_total(self) -> int:
        return self.trail_offset + len(self.trail)

    @property
    def refusals(self) -> list[TrailEntry]:
        return [entry for entry in self.trail if entry.refused]

    @property
    def refusal_count(self) -> int:
        """Refusals in all, for workflows that count them; else those in the held trail."""
        return self.refused_total or len(self.refusals)


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
