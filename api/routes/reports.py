"""Reporting an incident: generic JSON, the monitoring system's webhook, the 12315 hotline form.

All three make an `IncidentReport` and go through signal-with-start (`starter.report_incident`),
so one story reported through two channels is one incident: its id comes from the story's URL
when there is one, else from the channel and the channel's own id (`yuqing.intake`).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import uuid
from datetime import UTC, datetime
from typing import Annotated, Any

import structlog
from fastapi import APIRouter, Form, Query, Request, Response
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from activities.evidence import stage_evidence
from api.deps import Me, Services, Svc, may_report
from api.errors import RESPONSES, ApiError, field_error
from api.schemas import IncidentReportBody, MonitorAlert, ReportAccepted
from yuqing import incident_workflow_id
from yuqing.email_intake import EmailRefused, Senders, parse_email
from yuqing.i18n import Said
from yuqing.intake import incident_id_for, intake_key
from yuqing.models import (
    EvidenceKind,
    IncidentReport,
    IntakeChannel,
    Metrics,
    Sensitivity,
    report_time_problem,
)
from yuqing.roles import Role
from yuqing.roster import Person
from yuqing.state import Stage
from yuqing.working_time import SHANGHAI

log = structlog.get_logger("yuqing.api")

router = APIRouter(tags=["reporting"], responses=RESPONSES)

_ANSWERS: dict[int | str, dict[str, object]] = {
    200: {"model": ReportAccepted, "description": "added to the open incident of this story"},
    201: {"model": ReportAccepted, "description": "a new incident"},
}


@router.post(
    "/incidents",
    status_code=201,
    response_model=ReportAccepted,
    responses=_ANSWERS,
    summary="Report an incident (IncidentReport JSON)",
)
async def report_incident(
    body: IncidentReportBody, response: Response, me: Me, svc: Svc
) -> ReportAccepted:
    """Start an incident, or add this report to the open incident of the same story.

    `reporter_id` is you (by your token). Without `incident_id` the incident is named by the
    story's `source_url`, else by `channel` and `external_id`.
    """
    if body.reporter_id is not None and body.reporter_id != me.id:
        raise ApiError(
            403,
            Said("api.not_your_report", person=me.id, named=body.reporter_id),
        )
    try:
        key = intake_key(body.channel, external_id=body.external_id, url=body.source_url)
    except ValueError as err:
        if body.incident_id is None:
            if body.source_url:
                raise field_error("source_url", str(err), body.source_url) from err
            raise field_error("incident_id", Said("api.field.incident_named")) from err
        key = None
    data = body.model_dump(mode="json", exclude={"external_id"})
    data.update(
        incident_id=body.incident_id or incident_id_for(key or ""),
        reporter_id=me.id,
        intake_key=body.intake_key or key,
    )
    return await _take(svc, _report(**data), response, me)


@router.post(
    "/intake/monitor",
    status_code=201,
    response_model=ReportAccepted,
    responses=_ANSWERS,
    summary="Webhook of the media-monitoring system",
)
async def monitor_alert(
    alert: MonitorAlert,
    response: Response,
    me: Me,
    svc: Svc,
    unit: Annotated[
        str | None, Query(description="the responsible unit, when the alert does not name it")
    ] = None,
) -> ReportAccepted:
    """A story the monitor found: channel `media_monitor`, named by its URL.

    Its excerpt and screenshot are fixed as evidence; on Weibo its reposts count towards the
    grade. A repeated delivery of the same alert adds nothing; a later alert about a story
    already open adds its evidence there and passes its new repost count on (`update_metrics`).
    """
    responsible = alert.unit or unit
    if responsible is None:
        raise field_error("unit", Said("api.field.unit_named"))
    key = _key(IntakeChannel.media_monitor, url=alert.url)
    evidence: list[dict[str, Any]] = []
    if alert.excerpt:
        evidence.append(
            dict(  # validated with the report, so a bad field is named
                kind=EvidenceKind.web_page,
                source_url=alert.url,
                captured_at=alert.captured_at,
                description=f"{alert.platform}: {alert.title}",
                content_text=alert.excerpt,
            )
        )
    if alert.screenshot_base64:
        evidence.append(
            dict(  # validated with the report, so a bad field is named
                kind=EvidenceKind.screenshot,
                source_url=alert.url,
                captured_at=alert.captured_at,
                description=f"screenshot by the monitor: {alert.title}",
                content_base64=alert.screenshot_base64,
            )
        )
    reposts = alert.reposts if alert.on_weibo else None
    fingerprint = json.dumps(alert.model_dump(mode="json"), sort_keys=True, ensure_ascii=False)
    report = _report(
        incident_id=incident_id_for(key),
        title=alert.title,
        channel=IntakeChannel.media_monitor,
        reporter_id=me.id,
        unit=responsible,
        sensitivity=alert.sensitivity,
        summary=f"{alert.platform}: {alert.excerpt or alert.title}",
        source_url=alert.url,
        discovered_at=alert.captured_at,
        evidence=evidence,
        metrics=Metrics(weibo_reposts=reposts or 0),
        intake_key=key,
        # The monitor is the system it came through; the token's person reports it.
        source=f"media_monitor:{alert.platform}",
        # The same alert delivered twice (a webhook retry) is one submission.
        submission_id="media_monitor:" + hashlib.sha256(fingerprint.encode()).hexdigest()[:24],
    )
    accepted = await _take(svc, report, response, me)
    if not accepted.created and reposts is not None:
        # The report joined an open incident, whose figures only update_metrics moves on:
        # sent by the token's person, from the monitor.
        source = f"media_monitor:{alert.platform}"
        accepted.metrics_update = await svc.workflows.decide(
            accepted.workflow_id,
            "update_metrics",
            {"source": source, "weibo_reposts": reposts, "reported_by": me.id},
            me.id,
        )
    return accepted


@router.post(
    "/intake/hotline-12315",
    status_code=201,
    response_model=ReportAccepted,
    responses=_ANSWERS,
    summary="12315 hotline ticket (form)",
)
async def hotline_ticket(
    response: Response,
    me: Me,
    svc: Svc,
    ticket_no: Annotated[str, Form(min_length=1, description="the 12315 ticket number")],
    summary: Annotated[str, Form(min_length=1, description="the caller's account, summarised")],
    unit: Annotated[str, Form(min_length=1, description="the responsible unit (roster key)")],
    time: Annotated[
        str | None,
        Form(description="when the call came in, ISO 8601; without a zone it is Beijing time"),
    ] = None,
    place: Annotated[str, Form(description="where it happened")] = "",
    title: Annotated[str | None, Form(description="default: from the summary")] = None,
    url: Annotated[
        str | None, Form(description="a post or article the caller points to: joins that story")
    ] = None,
    sensitivity: Annotated[Sensitivity, Form()] = Sensitivity.important,
) -> ReportAccepted:
    """A hotline ticket as an incident: channel `hotline_12315`, named by its ticket number,
    or by the URL of the story the caller points to, so it joins that story's incident."""
    called_at = _beijing_time(time) if time else None
    ticket = ticket_no.strip()
    key = _key(IntakeChannel.hotline_12315, external_id=ticket, url=url or None)
    record = "\n".join(
        line
        for line in (
            f"12315 工单 {ticket}",
            f"来电时间: {called_at.isoformat()}" if called_at else "",
            f"地点: {place}" if place else "",
            f"来电摘要: {summary}",
        )
        if line
    )
    report = _report(
        incident_id=incident_id_for(key),
        title=title or f"12315 来电: {summary.strip()[:40]}",
        channel=IntakeChannel.hotline_12315,
        reporter_id=me.id,
        unit=unit,
        sensitivity=sensitivity,
        summary=summary,
        source_url=url or None,
        discovered_at=called_at,
        evidence=[
            dict(  # validated with the report, so a bad field is named
                kind=EvidenceKind.text,
                source_url=url or None,
                captured_at=called_at,
                description=f"12315 hotline ticket {ticket}",
                content_text=record,
            )
        ],
        intake_key=key,
        # One ticket is one submission, however often the form is sent.
        submission_id=f"hotline_12315:{ticket.lower()}",
    )
    return await _take(svc, report, response, me)


@router.post(
    "/intake/email",
    status_code=201,
    response_model=ReportAccepted,
    responses=_ANSWERS,
    summary="An e-mail (RFC 822, the body as sent: message/rfc822)",
    openapi_extra={"requestBody": {"content": {"message/rfc822": {"schema": {"type": "string"}}}}},
)
async def email_report(
    request: Request,
    response: Response,
    me: Me,
    svc: Svc,
    unit: Annotated[
        str | None, Query(description="the responsible unit; default YUQING_EMAIL_UNIT")
    ] = None,
) -> ReportAccepted:
    """An e-mail as an incident report, its attachments and the message itself kept as
    evidence. The reporter is the roster person who sent it when a DKIM signature of the
    bureau's domain proves it (YUQING_EMAIL_DOMAIN), else you; the trail says which."""
    data = await request.body()
    try:
        # DKIM asks DNS for the signer's key: off the event loop.
        report = await asyncio.to_thread(
            parse_email,
            data,
            roster=svc.directory.roster,
            default_reporter=me.id,
            unit=unit or svc.settings.email_intake_unit,
            senders=Senders.from_settings(svc.settings),
            staged=True,
        )
    except EmailRefused as err:
        raise field_error("body", str(err), None) from err
    return await _take(svc, report, response, me)


def _key(channel: IntakeChannel, *, external_id: str | None = None, url: str | None = None) -> str:
    try:
        return intake_key(channel, external_id=external_id, url=url)
    except ValueError as err:
        raise field_error("url", str(err), url) from err


def _beijing_time(value: str) -> datetime:
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError as err:
        raise field_error("time", Said("api.field.not_iso", cause=str(err)), value) from err
    return moment if moment.tzinfo else moment.replace(tzinfo=SHANGHAI)


async def _take(
    svc: Services, report: IncidentReport, response: Response, me: Person
) -> ReportAccepted:
    # An incident whose unit has no head could never have its statement signed; the workflow
    # would fail at intake, so say so now, naming the field.
    roster = svc.directory.roster
    if not roster.recipients([Role.unit_head], report.unit):
        raise field_error(
            "unit",
            Said("api.field.no_unit_head", unit=report.unit, roster=roster.version),
            report.unit,
        )
    # Only for a unit the token's person may report for (the authorization's report scope).
    may_report(svc, me, report.unit)
    # Times that make no sense now would make no sense to the incident either.
    problem = report_time_problem(report, datetime.now(UTC))
    if problem is not None:
        where, _, what = problem.partition(": ")
        loc = ("body", *(int(p) if p.isdigit() else p for p in where.split(".")))
        raise RequestValidationError([{"type": "value_error", "loc": loc, "msg": what}])
    if report.submission_id is None:
        report = report.model_copy(update={"submission_id": str(uuid.uuid4())})
    # The evidence goes to PostgreSQL first: the incident is handed its SHA-256 and size only.
    report = report.model_copy(update={"evidence": await stage_evidence(svc.pool, report.evidence)})
    reported = await svc.workflows.report(report)
    log.info(
        "incident reported",
        incident_id=report.incident_id,
        channel=report.channel.value,
        reporter=report.reporter_id,
        created=reported.created,
    )
    response.status_code = 201 if reported.created else 200
    return ReportAccepted(
        incident_id=report.incident_id,
        workflow_id=incident_workflow_id(report.incident_id),
        submission_id=reported.submission_id,
        created=reported.created,
        stage=Stage.discovered if reported.created else None,
        entry=reported.entry,
        state_url=f"/incidents/{report.incident_id}",
    )


def _report(**fields: Any) -> IncidentReport:
    try:
        # The evidence is stored before the report goes anywhere (`_take`): it may be large.
        return IncidentReport.model_validate(fields, context={"staging": True})
    except ValidationError as err:
        # Derived from the body, so the body's fields are the ones to name.
        raise RequestValidationError(
            [{**e, "loc": ("body", *e["loc"])} for e in err.errors()]
        ) from err
