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

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

from yuqing.roles import Role


def _aware(value: datetime | None) -> datetime | None:
    if value is not None and value.tzinfo is None:
        raise ValueError("must carry a time zone (e.g. 2026-11-28T09:30:00+08:00)")
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_aware)]
NonEmpty = Annotated[str, Field(min_length=1)]
IncidentId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


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


class EvidenceItem(Model):
    """One piece of evidence as captured; its content is fixed (stored and hashed) at intake."""

    kind: EvidenceKind
    source_url: str | None = None
    captured_at: AwareDatetime | None = None
    description: str = ""
    content_text: str | None = None
    content_base64: str | None = None

    @model_validator(mode="after")
    def _one_content(self) -> EvidenceItem:
        if (self.content_text is None) == (self.content_base64 is None):
            raise ValueError("give exactly one of content_text or content_base64")
        if self.content_base64 is not None:
            try:
                base64.b64decode(self.content_base64, validate=True)
            except binascii.Error as err:
                raise ValueError(f"content_base64 is not valid base64: {err}") from err
        return self

    @property
    def content(self) -> bytes:
        if self.content_text is not None:
            return self.content_text.encode("utf-8")
        return base64.b64decode(self.content_base64 or "", validate=True)


class Metrics(Model):
    """The figures that grade an incident (SPEC §2.3). Counts only grow; lists accumulate."""

    weibo_reposts: int = Field(default=0, ge=0)
    districts: list[NonEmpty] = Field(default_factory=list)
    beyond_city: bool = False
    mainstream_media: list[NonEmpty] = Field(default_factory=list)

    def merged(self, update: MetricsUpdate) -> Metrics:
        return Metrics(
            weibo_reposts=max(self.weibo_reposts, update.weibo_reposts or 0),
            districts=_union(self.districts, update.districts),
            beyond_city=self.beyond_city or bool(update.beyond_city),
            mainstream_media=_union(self.mainstream_media, update.mainstream_media),
        )


def _union(old: list[str], new: list[str] | None) -> list[str]:
    return old + [item for item in (new or []) if item not in old]


class DrillMark(Model):
    """What makes an incident a drill (§5.3): its scenario, and how fast its clocks run."""

    scenario: str = Field(min_length=1, max_length=200)
    speed: float = Field(
        default=1, gt=0, le=100_000, description="12: a 4 h deadline falls due in 20 minutes"
    )
    started_by: NonEmpty


class IncidentReport(Model):
    """The workflow input: an incident as discovered on any intake channel (SPEC §2.1)."""

    incident_id: IncidentId
    title: NonEmpty
    channel: IntakeChannel
    reporter_id: NonEmpty
    unit: NonEmpty = Field(description="the unit responsible for handling (roster unit key)")
    sensitivity: Sensitivity
    summary: str = ""
    source_url: str | None = None
    discovered_at: AwareDatetime | None = Field(
        default=None, description="when the bureau discovered it; defaults to the workflow start"
    )
    evidence: list[EvidenceItem] = Field(default_factory=list)
    metrics: Metrics = Field(default_factory=Metrics)
    intake_key: str | None = Field(
        default=None, description="channel + external id or URL, normalised (yuqing.intake)"
    )
    submission_id: str | None = Field(
        default=None, description="names this submission, so a repeated delivery adds nothing"
    )
    source: str | None = Field(
        default=None,
        description="the system it came through, beside the reporter (a monitor; an e-mail's "
        "sender, verified or not)",
    )
    drill: DrillMark | None = Field(
        default=None, description="set when the incident is a drill (§5.3), never a real one"
    )


class AdditionalReport(Model):
    """`add_evidence`: the same story reported again, through another channel or later on."""

    submission_id: NonEmpty
    channel: IntakeChannel
    reporter_id: NonEmpty
    summary: str = ""
    source_url: str | None = None
    evidence: list[EvidenceItem] = Field(default_factory=list)
    source: str | None = None


class BasicFacts(Model):
    time: NonEmpty
    place: NonEmpty
    units_involved: list[NonEmpty] = Field(min_length=1)
    course: NonEmpty
    outcome: NonEmpty


class UpwardReport(Model):
    """`submit_report`: the report to the leaders (SPEC §2.2); every element is required."""

    reporter_id: NonEmpty
    medium: NonEmpty
    facts: BasicFacts
    comment_tendency: NonEmpty


class Assessment(Model):
    """`submit_assessment`: the Office's assessment (SPEC §2.3), and whether to respond (§4.3)."""

    assessor_id: NonEmpty
    cross_district: bool = False
    large_image_effect: bool = False
    mainstream_media_exposure: bool = False
    comment: str = ""
    # §4.3 是否需要应对、进行何种程度的应对措施: whether to respond, and how far.
    response_needed: bool = True
    response_measures: str = Field(default="", max_length=2000)
    response_reason: str = Field(default="", max_length=2000)

    @model_validator(mode="after")
    def _reason_for_no_response(self) -> Assessment:
        if not self.response_needed and not self.response_reason:
            raise ValueError("response_needed false must give its reason in response_reason")
        return self


class MetricsUpdate(Model):
    """`update_metrics`: new figures from monitoring; may upgrade the incident."""

    source: NonEmpty = Field(description="where the figures come from: a system, or the sender")
    reported_by: NonEmpty | None = Field(
        default=None, description="the person who sends them (required by the authorization)"
    )
    weibo_reposts: int | None = Field(default=None, ge=0)
    districts: list[NonEmpty] | None = None
    beyond_city: bool | None = None
    mainstream_media: list[NonEmpty] | None = None


class DraftSubmission(Model):
    """`submit_draft`: the unit's proposed statement; the workflow numbers the versions."""

    author_id: NonEmpty
    text: NonEmpty
    channels: list[PublicationChannel] | None = Field(
        default=None, min_length=1, description="defaults to the policy's channels"
    )


class LegalOpinion(Model):
    """`legal_opinion`: Legal's opinion, shown to every approver; it does not gate."""

    author_id: NonEmpty
    opinion: NonEmpty
    legal_basis: str = ""


class Approval(Model):
    """Payload of every approval signal (SPEC §5)."""

    approver_id: NonEmpty
    decision: Decision
    draft_version: int = Field(ge=1)
    comment: str = ""

    @model_validator(mode="after")
    def _reason_for_rejection(self) -> Approval:
        if self.decision is Decision.reject and not self.comment:
            raise ValueError("a rejection must give its reason in comment")
        return self


class CloseIncident(Model):
    """`close_incident`: the leading group declares the incident over (SPEC §2.8)."""

    closed_by: NonEmpty
    reason: NonEmpty
    open_posts: dict[str, NonEmpty] = Field(
        default_factory=dict,
        description="posts left unanswered, each with why; only the leading group may do this",
    )


class Review(Model):
    """`submit_review`: what happened, what worked, what to change (SPEC §2.9)."""

    author_id: NonEmpty
    what_happened: NonEmpty
    what_worked: NonEmpty
    what_to_change: NonEmpty


PostId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class NetizenPost(Model):
    """`netizen_post`: an opinion, suggestion or demand from a netizen (SPEC §4)."""

    post_id: PostId
    platform: NonEmpty
    author: NonEmpty
    content: NonEmpty
    url: str | None = None
    received_by: NonEmpty
    learnt_at: AwareDatetime | None = Field(
        default=None, description="when the bureau learnt of it; defaults to when it arrives"
    )


class EffectFailure(Model):
    """An activity or child workflow that failed for good (sent by the workflow to itself)."""

    what: NonEmpty
    error: str
    draft_version: int | None = None
    post_id: str | None = None


class CalendarChanged(Model):
    """`calendar_changed`: a new official schedule is loaded; re-plan pending deadlines."""

    changed_by: NonEmpty
    reason: NonEmpty


class InitialResponse(Model):
    """`initial_response` on a post: the unit's first answer, within 3 working hours."""

    responder_id: NonEmpty
    text: NonEmpty
    needs_formal_handling: bool = False


class FormalReply(Model):
    """`formal_reply` on a post: the reply opinion, approved by the department leader."""

    approver_id: NonEmpty
    text: NonEmpty


class ExtensionRequest(Model):
    """`request_extension` on a post: more working days for the formal reply, with a reason."""

    requested_by: NonEmpty
    reason: str = ""
    total_working_days: int = Field(ge=1, description="the reply's whole allowance, in days")


class Withdrawal(Model):
    """`withdraw` on a post: the incident closed with this post left open, and why."""

    closed_by: NonEmpty
    reason: NonEmpty


# -- the rest of the plan (issue 12): respond or not, interviews, downgrade, the leading group,
# contacts, drills. Every text has a bound, so no payload comes near Temporal's limits.

ShortText = Annotated[str, Field(min_length=1, max_length=200)]
LongText = Annotated[str, Field(min_length=1, max_length=4000)]
Comment = Annotated[str, Field(max_length=2000)]
RecordId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")]


class NoResponseApproval(Model):
    """`no_response_approval`: the approval (or refusal) of "no response needed" (§4.3)."""

    approver_id: NonEmpty
    decision: Decision
    comment: Comment = ""

    @model_validator(mode="after")
    def _reason_for_rejection(self) -> NoResponseApproval:
        if self.decision is Decision.reject and not self.comment:
            raise ValueError("a rejection must give its reason in comment")
        return self


class InterviewRequest(Model):
    """`request_interview`: a media interview asked for (§4.4): who, which medium, when, on what."""

    requested_by: NonEmpty
    interviewee: ShortText = Field(description="who is to be interviewed (a roster id or a name)")
    medium: ShortText
    scheduled_at: AwareDatetime
    topic: LongText
    interview_id: RecordId | None = Field(default=None, description="defaults to i1, i2, …")


class InterviewDecision(Model):
    """`interview_decision`: the leading group authorises or refuses an interview (§4.4)."""

    decided_by: NonEmpty
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

    reported_by: NonEmpty
    interview_id: RecordId | None = Field(
        default=None, description="the request it answers; none: it was never asked for"
    )
    interviewee: ShortText | None = Field(default=None, description="needed without interview_id")
    medium: ShortText | None = Field(default=None, description="needed without interview_id")
    held_at: AwareDatetime
    summary: LongText
    responsible_id: str | None = Field(
        default=None,
        max_length=100,
        description="who answers for it (roster id); defaults to the interviewee",
    )

    @model_validator(mode="after")
    def _what_was_held(self) -> InterviewHeld:
        if self.interview_id is None and (self.interviewee is None or self.medium is None):
            raise ValueError("without interview_id, give interviewee and medium")
        return self


class Downgrade(Model):
    """`downgrade`: the leading group lowers the grade, with its reason (SPEC §2.3 reading)."""

    decided_by: NonEmpty
    to_grade: Grade = Grade.general
    reason: LongText
    decision: Decision = Field(
        default=Decision.approve,
        description="a member's vote, where the policy has the group decide by quorum",
    )


class GroupMembers(Model):
    """`choose_group_members`: the members the leading group works with on this incident (§5.1)."""

    chosen_by: NonEmpty
    members: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(
        min_length=1, max_length=30
    )
    reason: Comment = ""


class DepartmentContact(Model):
    """`record_contact`: a contact with a department outside the bureau (§4.4)."""

    recorded_by: NonEmpty
    department: Role
    contacted_at: AwareDatetime
    contact_person: str = Field(default="", max_length=200)
    said: LongText


class DepartmentNotice(Model):
    """`notify_department`: a notice to a named department outside the bureau (§4.4)."""

    requested_by: NonEmpty
    department: Role
    message: LongText
    request_id: RecordId | None = Field(
        default=None, description="names the request, so sending it twice sends one notice"
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
