"""Activity inputs and results: one model each, so fields can be added without breaking runs."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field

from yuqing.authorization import Authorization
from yuqing.i18n.notices import NoticeCopy, NoticeText
from yuqing.models import EvidenceItem, Grade, PublicationChannel, Sensitivity
from yuqing.policy import Policy, Reminders
from yuqing.roles import Role
from yuqing.roster import Recipient, Roster
from yuqing.signing import Keyring
from yuqing.state import (
    ApprovalRecord,
    Deadline,
    FixedEvidence,
    IncidentState,
    PostState,
    TrailEntry,
)


class LoadConfiguration(BaseModel):
    incident_id: str
    # A drill's clocks run this many times faster (§5.3): the policy comes back scaled.
    drill_speed: float | None = None
    # (hist, issue 9) Asked by a workflow keeping its history lean: without what the workflow
    # never reads (the authorization's routes table, the API's alone).
    for_workflow: bool = False


class Configuration(BaseModel):
    policy: Policy
    roster: Roster
    # Absent from histories recorded before they existed (then: the rules of old, no proofs).
    authorization: Authorization | None = None
    keys: Keyring | None = None
    # The working calendar in force when the incident began (SPEC §7); None in histories
    # recorded before it was kept.
    calendar_version: str | None = None
    # Their digests (activities.configuration): what lean inputs carry instead of the texts.
    policy_sha256: str | None = None
    roster_sha256: str | None = None
    # After how many decisions a run continues as new (Settings.continue_after_decisions).
    continue_after_decisions: int | None = None


class LoadSnapshot(BaseModel):
    policy_sha256: str
    roster_sha256: str


class LoadKeys(BaseModel):
    """Read the keys file again: a decision names a key the incident has not seen."""

    incident_id: str
    key_id: str | None = None


class FixEvidence(BaseModel):
    incident_id: str
    items: list[EvidenceItem]
    first_index: int = 0


class FixedEvidenceList(BaseModel):
    items: list[FixedEvidence]


class PlanDeadlines(BaseModel):
    incident_id: str
    discovered_at: datetime
    sensitivity: Sensitivity
    unit: str
    responsible_person: str | None
    policy: Policy


class DeadlinePlan(BaseModel):
    deadlines: list[Deadline]


class SendNotification(BaseModel):
    idempotency_key: str
    incident_id: str
    kind: str
    subject: str
    body: str
    recipients: list[Recipient]
    # console (i18n): the notice as data, rendered by the activity (then `subject` and `body`
    # hold the notices' language, `copies` every language, for recipients who read another).
    text: NoticeText | None = None
    copies: dict[str, NoticeCopy] = Field(default_factory=dict)

    def copy_for(self, language: str | None) -> tuple[str, str]:
        """Subject and body in `language`, if rendered in it; else as the notice has them."""
        copy = self.copies.get(language) if language else None
        return (copy.subject, copy.body) if copy is not None else (self.subject, self.body)


class PublishStatement(BaseModel):
    idempotency_key: str
    incident_id: str
    channel: PublicationChannel
    draft_version: int
    text: str
    grade: Grade
    approvals: list[ApprovalRecord]
    # The policy whose chain is checked once more: by digest (or, in older inputs, whole).
    policy: Policy | None = None
    policy_sha256: str | None = None


class PlanPostDeadline(BaseModel):
    """A working-time deadline of a post: `working_hours` or `working_days` from `starts_at`."""

    incident_id: str
    post_id: str
    key: str
    title: str
    starts_at: datetime
    working_hours: float | None = None
    working_days: int | None = None
    remind: list[Role]
    escalate_to: list[Role]
    unit: str
    responsible_person: str | None
    # Older inputs carry the whole policy; newer ones only what the plan reads of it.
    policy: Policy | None = None
    policy_version: str | None = None
    reminders: Reminders | None = None
    # A drill's post (§5.3): its clocks in elapsed time, this many times faster.
    drill_speed: float | None = None


class PlannedPostDeadline(BaseModel):
    deadline: Deadline
    # Set when a year on the way had no official schedule and Monday–Friday stood in for it.
    provisional_note: str | None = None


class PostStart(BaseModel):
    """The input of a NetizenPostWorkflow: the post as received, and the incident's rules.

    The rules come by digest (the post reads them through `load_snapshot`); inputs older than
    that carry the whole policy and roster.
    """

    post: PostState
    policy: Policy | None = None
    roster: Roster | None = None
    policy_sha256: str | None = None
    roster_sha256: str | None = None
    responsible_person: str | None
    # The incident's authorization and keys (none: an incident from before signed decisions).
    authorization: Authorization | None = None
    keys: Keyring | None = None
    keys_loaded_at: datetime | None = None
    # The incident's patch ids for the rules that came later (yuqing.rules.PLAN_FEATURES).
    features: list[str] = Field(default_factory=list)
    # A drill's post (§5.3): its lines and notices are marked, its notices go to the sink.
    drill: bool = False


class ReadPost(BaseModel):
    """Read a netizen post's state from its own workflow, for its incident."""

    workflow_id: str


class RecordTrail(BaseModel):
    """New lines of a workflow's decision trail, for the PostgreSQL audit projection.

    `first_seq` is the position of `entries[0]` in that workflow's trail (0-based), so the pair
    (workflow_id, seq) keys each row and a retried activity writes nothing twice.
    """

    workflow_id: str
    incident_id: str
    post_id: str | None = None
    first_seq: int
    entries: list[TrailEntry]
    deadlines: list[Deadline]


class TrailRecorded(BaseModel):
    rows: int
    last_hash: str | None


class CarriedEffect(BaseModel):
    """An effect under way when the workflow continued as new, to be done again by the next run.

    Every effect is keyed (notices and publications by workflow and step), so doing it again
    sends or publishes nothing twice. `kind` is the `yuqing.outcomes` class; `data` its fields,
    and for a publication also the channel still to publish on.
    """

    kind: str
    data: dict[str, Any]


class CarriedInbound(BaseModel):
    """A signal received but not decided yet when the workflow continued as new."""

    signal: str
    payload: Any = None
    received_at: datetime
    problem: str | None = None
    origin: str = "signal"
    refusal: str | None = None


class Continued(BaseModel):
    """The input of an incident's next run (continue-as-new): everything it needs, and no more.

    The state carries only the trail lines not yet copied to the audit table (`trail_offset`
    is the first of them); due times are in its deadlines (with the reminders already sent);
    the posts' workflows run on by themselves and are read by nudge.
    """

    state: IncidentState
    configuration: Configuration
    responsible_person: str | None
    effects: list[CarriedEffect] = Field(default_factory=list)
    # Runs before this one (the first run is 0).
    runs: int = 1
    # Posts that said they changed and were not read yet.
    stale_posts: list[str] = Field(default_factory=list)
    # Signals received and not decided yet, in the order they came: decided first.
    inbox: list[CarriedInbound] = Field(default_factory=list)
    # What a decider adds to carry (e.g. the signatures already used), by its own names.
    extras: dict[str, Any] = Field(default_factory=dict)


class PlanClockRequest(BaseModel):
    incident_id: str
    key: str
    title: str
    starts_at: datetime
    hours: float
    # Hours after the start to remind at; None: the policy's reminder points (`reminders`).
    remind_after: list[float] | None
    reminders: Reminders
    remind: list[Role]
    escalate_to: list[Role]
    responsible_unit: str
    responsible_person: str | None
    policy_version: str


class ArchiveHistory(BaseModel):
    """Archive every run of `workflow_id` up to `run_id` (the last one), once it is closed."""

    workflow_id: str
    run_id: str
    incident_id: str
    post_id: str | None = None


class ArchivedRun(BaseModel):
    run_id: str
    sha256: str
    events: int
    chain_row: int
    # False when an earlier attempt (or another archiver) had archived it already.
    new: bool


class HistoryArchived(BaseModel):
    workflow_id: str
    runs: list[ArchivedRun]
