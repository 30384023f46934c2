"""Activity inputs and results: one model each, so fields can be added without breaking runs."""

from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel

from yuqing.models import EvidenceItem, Grade, PublicationChannel, Sensitivity
from yuqing.policy import Policy
from yuqing.roster import Recipient, Roster
from yuqing.state import ApprovalRecord, Deadline, FixedEvidence


class LoadConfiguration(BaseModel):
    incident_id: str


class Configuration(BaseModel):
    policy: Policy
    roster: Roster


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
