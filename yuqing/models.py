"""Inputs and signal payloads: one pydantic model each, plain snake_case JSON on the wire.

Workflow code validates signal payloads with these models itself (handlers receive raw JSON),
so a malformed signal is refused *and recorded*, rather than dropped by the SDK's decoder.
"""

from __future__ import annotations

import base64
import binascii
from datetime import datetime
from enum import StrEnum
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, model_validator

from yuqing.limits import (
    EVIDENCE_BYTES,
    EVIDENCE_ITEMS,
    INLINE_EVIDENCE_BYTES,
    LIST_ITEMS,
    AwareDatetime,
    Count,
    DraftVersion,
    EvidenceBase64,
    EvidenceText,
    IntakeKey,
    MaxItems,
    Name,
    Names,
    Note,
    PersonId,
    Said,
    Sha256,
    Size,
    SomeNames,
    Statement,
    StrictBool,
    Url,
    Words,
    WorkflowKey,
    WorkingDays,
    _unbounded,
    instant_problem,
    items_check,
)
from yuqing.roles import Role

__all__ = ["AwareDatetime", "IncidentId", "NonEmpty", "PostId"]

IncidentId = WorkflowKey
PostId = WorkflowKey
NonEmpty = Name  # kept for the API's schemas


class Model(BaseModel):
    # Unknown fields are refused so that a misspelt field is named, not silently ignored.
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class IntakeChannel(StrEnum):
    media_monitor = "media_monitor"
    weibo = "weibo"
    wechat = "wechat"
    forum = "forum"
    newspaper = "newspaper"
    tv = "tv"
    radio = "radio"
    hotline_12315 = "hotline_12315"
    email = "email"
    manual = "manual"


class Sensitivity(StrEnum):
    important = "important"  # 重要敏感负面舆情: report within 4 h
    especially_major = "especially_major"  # 特别重大敏感负面舆情: report within 2 h


class Grade(StrEnum):
    general = "general"  # 一般
    major = "major"  # 重大


class Decision(StrEnum):
    approve = "approve"
    reject = "reject"


class PublicationChannel(StrEnum):
    website = "website"
    weibo = "weibo"
    wechat = "wechat"
    press = "press"


class EvidenceKind(StrEnum):
    web_page = "web_page"
    article_scan = "article_scan"
    tv_frame = "tv_frame"
    audio_clip = "audio_clip"
    screenshot = "screenshot"
    text = "text"
    other = "other"


class StagedContent(Model):
    """Evidence content already stored in PostgreSQL (`evidence_staged`), by its SHA-256."""

    sha256: Sha256
    size_bytes: Size


class EvidenceItem(Model):
    """One piece of evidence as captured; its content is fixed (stored and hashed) at intake.

    The content comes inline (`content_text` or `content_base64`) or, once the HTTP API or the
    e-mail intake has stored it, as a reference (`content_ref`) with its SHA-256.
    """

    kind: EvidenceKind
    source_url: Url | None = None
    captured_at: AwareDatetime | None = None
    description: Note = ""
    content_text: EvidenceText | None = None
    content_base64: EvidenceBase64 | None = None
    content_ref: StagedContent | None = None

    @model_validator(mode="after")
    def _one_content(self, info: ValidationInfo) -> EvidenceItem:
        given = [c for c in (self.content_text, self.content_base64, self.content_ref) if c]
        if self.content_ref is None and (self.content_text is None) == (
            self.content_base64 is None
        ):
            raise ValueError("give exactly one of content_text or content_base64")
        if len(given) > 1:
            raise ValueError("give exactly one of content_text, content_base64 or content_ref")
        if self.content_base64 is not None:
            try:
                base64.b64decode(self.content_base64, validate=True)
            except binascii.Error as err:
                raise ValueError(f"content_base64 is not valid base64: {err}") from err
        if not _unbounded(info) and self.content_size > EVIDENCE_BYTES:
            raise ValueError(
                f"the content is {self.content_size} bytes; an evidence item holds at most"
                f" {EVIDENCE_BYTES}"
            )
        return self

    @property
    def content(self) -> bytes:
        if self.content_text is not None:
            return self.content_text.encode("utf-8")
        return base64.b64decode(self.content_base64 or "", validate=True)

    @property
    def content_size(self) -> int:
        """Bytes of the content: staged, or inline once decoded."""
        if self.content_ref is not None:
            return self.content_ref.size_bytes
        if self.content_text is not None:
            return len(self.content_text.encode("utf-8"))
        encoded = self.content_base64 or ""
        return len(encoded) // 4 * 3 - encoded[-2:].count("=")

    @property
    def inline_size(self) -> int:
        return 0 if self.content_ref is not None else self.content_size


def _inline_bounded(evidence: list[EvidenceItem], info: ValidationInfo) -> None:
    """Evidence inside a workflow input stays small; larger content is stored first."""
    if _unbounded(info) or (info.context and info.context.get("staging")):
        return
    inline = sum(item.inline_size for item in evidence)
    if inline > INLINE_EVIDENCE_BYTES:
        raise ValueError(
            f"evidence: {inline} bytes of content inline; at most {INLINE_EVIDENCE_BYTES} travel"
            " inside a report: send larger evidence through the HTTP API or e-mail, which store"
            " it in PostgreSQL first"
        )


class Metrics(Model):
    """The figures that grade an incident (SPEC §2.3). Counts only grow; lists accumulate."""

    weibo_reposts: Count = 0
    districts: Names = Field(default_factory=list)
    beyond_city: StrictBool = False
    mainstream_media: Names = Field(default_factory=list)

    def merged_size(self, update: MetricsUpdate) -> int:
        """Items the longest list would hold once `update` is merged."""
        return max(
            len(_union(self.districts, update.districts)),
            len(_union(self.mainstream_media, update.mainstream_media)),
        )

    def merged(self, update: MetricsUpdate) -> Metrics:
        return Metrics(
            weibo_reposts=max(self.weibo_reposts, update.weibo_reposts or 0),
            districts=_union(self.districts, update.districts),
            beyond_city=self.beyond_city or bool(update.beyond_city),
            mainstream_media=_union(self.mainstream_media, update.mainstream_media),
        )


def _union(old: list[str], new: list[str] | None) -> list[str]:
    return old + [item for item in (new or []) if item not in old]


Evidence = Annotated[list[EvidenceItem], items_check(EVIDENCE_ITEMS), MaxItems(EVIDENCE_ITEMS)]


class DrillMark(Model):
    """What makes an incident a drill (§5.3): its scenario, and how fast its clocks run."""

    scenario: Name
    speed: float = Field(
        default=1, gt=0, le=100_000, description="12: a 4 h deadline falls due in 20 minutes"
    )
    started_by: PersonId


class IncidentReport(Model):
    """The workflow input: an incident as discovered on any intake channel (SPEC §2.1)."""

    incident_id: IncidentId
    title: Name
    channel: IntakeChannel
    reporter_id: PersonId
    unit: PersonId = Field(description="the unit responsible for handling (roster unit key)")
    sensitivity: Sensitivity
    summary: Words = ""
    source_url: Url | None = None
    discovered_at: AwareDatetime | None = Field(
        default=None, description="when the bureau discovered it; defaults to the workflow start"
    )
    evidence: Evidence = Field(default_factory=list)
    metrics: Metrics = Field(default_factory=Metrics)
    intake_key: IntakeKey | None = Field(
        default=None, description="channel + external id or URL, normalised (yuqing.intake)"
    )
    submission_id: Name | None = Field(
        default=None, description="names this submission, so a repeated delivery adds nothing"
    )
    source: Name | None = Field(
        default=None,
        description="the system it came through, beside the reporter (a monitor; an e-mail's "
        "sender, verified or not)",
    )
    drill: DrillMark | None = Field(
        default=None, description="set when the incident is a drill (§5.3), never a real one"
    )

    @model_validator(mode="after")
    def _small_inline(self, info: ValidationInfo) -> IncidentReport:
        _inline_bounded(self.evidence, info)
        return self


def evidence_time_problem(evidence: list[EvidenceItem], now: datetime) -> str | None:
    for index, item in enumerate(evidence):
        if item.captured_at is not None and (
            problem := instant_problem(item.captured_at, now)
        ):
            return f"evidence.{index}.captured_at: {problem}"
    return None


def report_time_problem(report: IncidentReport, now: datetime) -> str | None:
    """Why the report's times make no sense against `now` (the clock of whoever checks)."""
    if report.discovered_at is not None and (
        problem := instant_problem(report.discovered_at, now)
    ):
        return f"discovered_at: {problem}"
    return evidence_time_problem(report.evidence, now)


class AdditionalReport(Model):
    """`add_evidence`: the same story reported again, through another channel or later on."""

    submission_id: Name
    channel: IntakeChannel
    reporter_id: PersonId
    summary: Words = ""
    source_url: Url | None = None
    evidence: Evidence = Field(default_factory=list)
    source: Name | None = None

    @model_validator(mode="after")
    def _small_inline(self, info: ValidationInfo) -> AdditionalReport:
        _inline_bounded(self.evidence, info)
        return self


class BasicFacts(Model):
    time: Name
    place: Said
    units_involved: SomeNames
    course: Said
    outcome: Said


class UpwardReport(Model):
    """`submit_report`: the report to the leaders (SPEC §2.2); every element is required."""

    reporter_id: PersonId
    medium: Name
    facts: BasicFacts
    comment_tendency: Said


class Assessment(Model):
    """`submit_assessment`: the Office's assessment (SPEC §2.3), and whether to respond (§4.3)."""

    assessor_id: PersonId
    cross_district: StrictBool = False
    large_image_effect: StrictBool = False
    mainstream_media_exposure: StrictBool = False
    comment: Note = ""
    # §4.3 是否需要应对、进行何种程度的应对措施: whether to respond, and how far.
    response_needed: StrictBool = True
    response_measures: Words = ""
    response_reason: Words = ""

    @model_validator(mode="after")
    def _reason_for_no_response(self) -> Assessment:
        if not self.response_needed and not self.response_reason:
            raise ValueError("response_needed false must give its reason in response_reason")
        return self


class MetricsUpdate(Model):
    """`update_metrics`: new figures from monitoring; may upgrade the incident."""

    source: Name = Field(description="where the figures come from: a system, or the sender")
    reported_by: PersonId | None = Field(
        default=None, description="the person who sends them (required by the authorization)"
    )
    weibo_reposts: Count | None = None
    districts: Names | None = None
    beyond_city: StrictBool | None = None
    mainstream_media: Names | None = None


Channels = Annotated[
    list[PublicationChannel],
    items_check(len(PublicationChannel)),
    MaxItems(len(PublicationChannel)),
]


class DraftSubmission(Model):
    """`submit_draft`: the unit's proposed statement; the workflow numbers the versions."""

    author_id: PersonId
    text: Statement
    channels: Channels | None = Field(
        default=None, min_length=1, description="defaults to the policy's channels"
    )


class LegalOpinion(Model):
    """`legal_opinion`: Legal's opinion, shown to every approver; it does not gate."""

    author_id: PersonId
    opinion: Statement
    legal_basis: Note = ""


class Approval(Model):
    """Payload of every approval signal (SPEC §5)."""

    approver_id: PersonId
    decision: Decision
    draft_version: DraftVersion
    comment: Note = ""

    @model_validator(mode="after")
    def _reason_for_rejection(self) -> Approval:
        if self.decision is Decision.reject and not self.comment:
            raise ValueError("a rejection must give its reason in comment")
        return self


OpenPosts = Annotated[dict[PostId, Said], items_check(LIST_ITEMS), MaxItems(LIST_ITEMS)]


class CloseIncident(Model):
    """`close_incident`: the leading group declares the incident over (SPEC §2.8)."""

    closed_by: PersonId
    reason: Said
    open_posts: OpenPosts = Field(
        default_factory=dict,
        description="posts left unanswered, each with why; only the leading group may do this",
    )


class Review(Model):
    """`submit_review`: what happened, what worked, what to change (SPEC §2.9)."""

    author_id: PersonId
    what_happened: Said
    what_worked: Said
    what_to_change: Said


class NetizenPost(Model):
    """`netizen_post`: an opinion, suggestion or demand from a netizen (SPEC §4)."""

    post_id: PostId
    platform: Name
    author: Name
    content: Said
    url: Url | None = None
    received_by: PersonId
    learnt_at: AwareDatetime | None = Field(
        default=None, description="when the bureau learnt of it; defaults to when it arrives"
    )


class EffectFailure(Model):
    """An activity or child workflow that failed for good (sent by the workflow to itself)."""

    what: Name
    error: Words
    draft_version: int | None = None
    post_id: PostId | None = None


class CalendarChanged(Model):
    """`calendar_changed`: a new official schedule is loaded; re-plan pending deadlines."""

    changed_by: PersonId
    reason: Said


class InitialResponse(Model):
    """`initial_response` on a post: the unit's first answer, within 3 working hours."""

    responder_id: PersonId
    text: Statement
    needs_formal_handling: StrictBool = False


class FormalReply(Model):
    """`formal_reply` on a post: the reply opinion, approved by the department leader."""

    approver_id: PersonId
    text: Statement


class ExtensionRequest(Model):
    """`request_extension` on a post: more working days for the formal reply, with a reason."""

    requested_by: PersonId
    reason: Note = ""
    total_working_days: WorkingDays = Field(description="the reply's whole allowance, in days")


class Withdrawal(Model):
    """`withdraw` on a post: the incident closed with this post left open, and why."""

    closed_by: PersonId
    reason: Said


# -- the rest of the plan (issue 12): respond or not, interviews, downgrade, the leading group,
# contacts, drills. Every text has a bound, so no payload comes near Temporal's limits.

ShortText = Name
LongText = Said
Comment = Words
RecordId = WorkflowKey
GROUP_MEMBERS_MAX = 15
Members = Annotated[
    list[PersonId], Field(min_length=1), items_check(GROUP_MEMBERS_MAX), MaxItems(GROUP_MEMBERS_MAX)
]


class NoResponseApproval(Model):
    """`no_response_approval`: the approval (or refusal) of "no response needed" (§4.3)."""

    approver_id: PersonId
    decision: Decision
    comment: Comment = ""

    @model_validator(mode="after")
    def _reason_for_rejection(self) -> NoResponseApproval:
        if self.decision is Decision.reject and not self.comment:
            raise ValueError("a rejection must give its reason in comment")
        return self


class InterviewRequest(Model):
    """`request_interview`: a media interview asked for (§4.4): who, which medium, when, on what."""

    requested_by: PersonId
    interviewee: ShortText = Field(description="who is to be interviewed (a roster id or a name)")
    medium: ShortText
    scheduled_at: AwareDatetime
    topic: LongText
    interview_id: RecordId | None = Field(default=None, description="defaults to i1, i2, …")


class InterviewDecision(Model):
    """`interview_decision`: the leading group authorises or refuses an interview (§4.4)."""

    decided_by: PersonId
    interview_id: RecordId
    decision: Decision
    comment: Comment = ""

    @model_validator(mode="after")
    def _reason_for_refusal(self) -> InterviewDecision:
        if self.decision is Decision.reject and not self.comment:
            raise ValueError("a refusal must give its reason in comment")
        return self


class InterviewHeld(Model):
    """`interview_held`: the record of an interview that took place (§4.4)."""

    reported_by: PersonId
    interview_id: RecordId | None = Field(
        default=None, description="the request it answers; none: it was never asked for"
    )
    interviewee: ShortText | None = Field(default=None, description="needed without interview_id")
    medium: ShortText | None = Field(default=None, description="needed without interview_id")
    held_at: AwareDatetime
    summary: LongText
    responsible_id: PersonId | None = Field(
        default=None, description="who answers for it (roster id); defaults to the interviewee"
    )

    @model_validator(mode="after")
    def _what_was_held(self) -> InterviewHeld:
        if self.interview_id is None and (self.interviewee is None or self.medium is None):
            raise ValueError("without interview_id, give interviewee and medium")
        return self


class Downgrade(Model):
    """`downgrade`: the leading group lowers the grade, with its reason (SPEC §2.3 reading)."""

    decided_by: PersonId
    to_grade: Grade = Grade.general
    reason: LongText
    decision: Decision = Field(
        default=Decision.approve,
        description="a member's vote, where the policy has the group decide by quorum",
    )


class GroupMembers(Model):
    """`choose_group_members`: the members the leading group works with on this incident (§5.1)."""

    chosen_by: PersonId
    members: Members
    reason: Comment = ""


class DepartmentContact(Model):
    """`record_contact`: a contact with a department outside the bureau (§4.4)."""

    recorded_by: PersonId
    department: Role
    contacted_at: AwareDatetime
    contact_person: Note = ""
    said: LongText


class DepartmentNotice(Model):
    """`notify_department`: a notice to a named department outside the bureau (§4.4)."""

    requested_by: PersonId
    department: Role
    message: LongText
    request_id: RecordId | None = Field(
        default=None,
        description="names the request, so sending it twice sends one notice (default: one "
        "derived from department and message, so the same words go once)",
    )


PLAN_SIGNAL_PAYLOADS: dict[str, type[Model]] = {
    "no_response_approval": NoResponseApproval,
    "request_interview": InterviewRequest,
    "interview_decision": InterviewDecision,
    "interview_held": InterviewHeld,
    "downgrade": Downgrade,
    "choose_group_members": GroupMembers,
    "record_contact": DepartmentContact,
    "notify_department": DepartmentNotice,
}


# The payload model of each signal of SPEC §5 that this version decides.
SIGNAL_PAYLOADS: dict[str, type[Model]] = {
    "submit_report": UpwardReport,
    "submit_assessment": Assessment,
    "update_metrics": MetricsUpdate,
    "submit_draft": DraftSubmission,
    "legal_opinion": LegalOpinion,
    "add_evidence": AdditionalReport,
    "netizen_post": NetizenPost,
    "calendar_changed": CalendarChanged,
    "unit_head_approval": Approval,
    "section_head_review": Approval,
    "publicity_lead_approval": Approval,
    "leadership_group_approval": Approval,
    "close_incident": CloseIncident,
    "submit_review": Review,
    **PLAN_SIGNAL_PAYLOADS,
}

# The signals of a NetizenPostWorkflow, `incident-<incident_id>-post-<post_id>`.
POST_SIGNAL_PAYLOADS: dict[str, type[Model]] = {
    "initial_response": InitialResponse,
    "formal_reply": FormalReply,
    "request_extension": ExtensionRequest,
    "calendar_changed": CalendarChanged,
    "withdraw": Withdrawal,
}
