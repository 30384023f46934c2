"""Activity inputs and results: one model each, so fields can be added without breaking runs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, Field

from yuqing.authorization import Authorization
from yuqing.models import EvidenceItem, Grade, PublicationChannel, Sensitivity
from yuqing.policy import Policy
from yuqing.roles import Role
from yuqing.roster import Recipient, Roster
from yuqing.signing import Keyring
from yuqing.state import ApprovalRecord, Deadline, FixedEvidence, PostState, TrailEntry


class LoadConfiguration(BaseModel):
    incident_id: str
    # A drill's clocks run this many times faster (§5.3): the policy comes back scaled.
    drill_speed: float | None = None


class Configuration(BaseModel):
    policy: Policy
    roster: Roster
    # Absent from histories recorded before they existed (then: the rules of old, no proofs).
    authorization: Authorization | None = None
    keys: Keyring | None = None
    # The working calendar in force when the incident began (SPEC §7); None in histories
    # recorded before it was kept.
    calendar_version: str | None = None


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


class PublishStatement(BaseModel):
    idempotency_key: str
    incident_id: str
    channel: PublicationChannel
    draft_version: int
    text: str
    grade: Grade
    approvals: list[ApprovalRecord]
    policy: Policy


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
    policy: Policy


class PlannedPostDeadline(BaseModel):
    deadline: Deadline
    # Set when a year on the way had no official schedule and Monday–Friday stood in for it.
    provisional_note: str | None = None


class PostStart(BaseModel):
    """The input of a NetizenPostWorkflow: the post as received, and the incident's rules."""

    post: PostState
    policy: Policy
    roster: Roster
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
