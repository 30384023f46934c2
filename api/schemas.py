"""What the API takes and gives: the wire models of `yuqing.models`, with the acting person's
field made optional, since the token says who acts; and the intake shapes of other systems.

Each body model is its signal's payload model with one field relaxed, so FastAPI refuses a
malformed body with the same field names and rules the workflow would (422 naming the field)
before anything is sent.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from api.errors import ApiError
from yuqing.decider import describe
from yuqing.i18n import Said
from yuqing.limits import (
    Count,
    EvidenceBase64,
    Name,
    PersonId,
    Statement,
    Url,
)
from yuqing.models import (
    Approval,
    Assessment,
    AwareDatetime,
    CalendarChanged,
    CloseIncident,
    DraftSubmission,
    ExtensionRequest,
    FormalReply,
    IncidentId,
    IncidentReport,
    InitialResponse,
    LegalOpinion,
    MetricsUpdate,
    Model,
    NetizenPost,
    Review,
    Sensitivity,
    UpwardReport,
)
from yuqing.roster import Person
from yuqing.state import Stage, TrailEntry

_YOU = "you, by your token; if given, it must be you"


class IncidentReportBody(IncidentReport):
    """An `IncidentReport`. Without `incident_id`, the story's URL (`source_url`) or else the
    channel's own id (`external_id`) names the incident, so one story is one incident.

    Its evidence may be as large as an evidence item may be: the API stores it in PostgreSQL
    before the incident starts, and the incident is handed its SHA-256 only."""

    incident_id: IncidentId | None = Field(  # type: ignore[assignment]
        default=None, description="default: derived from source_url, else external_id"
    )
    reporter_id: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]
    external_id: Name | None = Field(
        default=None, description="the channel's own id of the story (ticket, message id)"
    )

    @model_validator(mode="after")
    def _small_inline(self, info: ValidationInfo) -> IncidentReportBody:
        return self  # stored first: see the docstring


class UpwardReportBody(UpwardReport):
    reporter_id: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class AssessmentBody(Assessment):
    assessor_id: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class MetricsUpdateBody(MetricsUpdate):
    source: Name | None = Field(  # type: ignore[assignment]
        default=None, description="where the figures come from; default: you"
    )


class DraftBody(DraftSubmission):
    author_id: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class LegalOpinionBody(LegalOpinion):
    author_id: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class ApprovalBody(Approval):
    approver_id: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class NetizenPostBody(NetizenPost):
    received_by: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class CloseBody(CloseIncident):
    closed_by: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class ReviewBody(Review):
    author_id: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class CalendarChangedBody(CalendarChanged):
    changed_by: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class InitialResponseBody(InitialResponse):
    responder_id: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class FormalReplyBody(FormalReply):
    approver_id: PersonId | None = Field(default=None, description=_YOU)  # type: ignore[assignment]


class ExtensionBody(ExtensionRequest):
    requested_by: PersonId | None = Field(  # type: ignore[assignment]
        default=None, description=_YOU
    )


def acting(body: BaseModel, field: str, person: Person, model: type[Model]) -> dict[str, Any]:
    """The signal payload, in the name of the token's person; 403 if the body names another."""
    named = getattr(body, field)
    if named is not None and named != person.id:
        raise ApiError(
            403,
            Said("api.not_your_name", person=person.id, field=field, named=named),
        )
    data = body.model_dump(mode="json")
    data[field] = person.id
    try:
        return model.model_validate(data).model_dump(mode="json")
    except ValidationError as err:  # cannot happen while the body models mirror the payloads
        raise ApiError(422, Said("api.payload_invalid", errors=describe(err))) from err


class MonitorAlert(BaseModel):
    """What the media-monitoring system posts when it finds a story (its webhook shape).

    Fields the monitor adds beyond these are ignored: the monitor is another vendor's system.
    """

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    platform: Name = Field(description="e.g. weibo, 新浪微博, douyin, a forum's name")
    url: Url = Field(min_length=1, description="the post or article found; it names the incident")
    title: Name
    excerpt: Statement | Literal[""] = ""
    reposts: Count | None = Field(
        default=None, description="reposts so far; counted as Weibo reposts on Weibo only"
    )
    captured_at: AwareDatetime | None = None
    screenshot_base64: EvidenceBase64 | None = None
    unit: PersonId | None = Field(
        default=None, description="the responsible unit; or `?unit=` on the webhook's URL"
    )
    sensitivity: Sensitivity = Sensitivity.important

    @field_validator("screenshot_base64")
    @classmethod
    def _base64(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                base64.b64decode(value, validate=True)
            except binascii.Error as err:
                raise ValueError(f"not valid base64: {err}") from err
        return value

    @property
    def on_weibo(self) -> bool:
        platform = self.platform.lower()
        return "weibo" in platform or "微博" in platform


class ReportAccepted(BaseModel):
    """The incident a report went to: 201 when it started one, 200 when it joined one."""

    incident_id: str
    workflow_id: str
    submission_id: str
    created: bool = Field(description="true: a new incident; false: added to an open one")
    stage: Stage | None = Field(
        default=None, description="`discovered` for a new incident; not given for one joined"
    )
    entry: TrailEntry = Field(
        description="the incident's answer: its discovery when new, else the trail entry this "
        "report added (`reported_again`, or `duplicate_submission` for a repeated delivery)"
    )
    state_url: str
    metrics_update: TrailEntry | None = Field(
        default=None, description="the monitor's new figures, sent to an incident it joined"
    )
