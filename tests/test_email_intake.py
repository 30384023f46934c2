"""E-mails become incident reports: through the SMTP intake port, with their attachments fixed
as evidence, and joined by the same story from another channel; bad mail starts nothing."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import smtplib
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from email import message_from_bytes, policy
from pathlib import Path

import pytest
from temporalio.service import RPCError

from starter import report_incident
from tests.driver import IncidentDriver, report
from workflows.incident import IncidentWorkflow
from yuqing import incident_workflow_id
from yuqing.email_intake import EmailRefused, SmtpIntake, parse_email
from yuqing.intake import incident_id_for, intake_key
from yuqing.roster import load_roster
from yuqing.settings import Settings

FIXTURES = Path(__file__).parent / "fixtures"
SCREENSHOT = FIXTURES / "report-with-screenshot.eml"
STORY = "https://weibo.example/status/5000000001"
CHINA = timezone(timedelta(hours=8))


def parse(data: bytes, settings: Settings) -> object:
    return parse_email(
        data,
        roster=load_roster(settings.roster_path),
        default_reporter="office-intake",
        unit="xixiangtang-branch",
    )


def attachment(path: Path, filename: str) -> bytes:
    msg = message_from_bytes(path.read_bytes(), policy=policy.default)
    part = next(p for p in msg.walk() if p.get_filename() == filename)
    content = part.get_payload(decode=True)
    assert isinstance(content, bytes)
    return content


def test_an_email_makes_a_report_keyed_by_its_link(settings: Settings) -> None:
    data = SCREENSHOT.read_bytes()
    incident = parse(data, settings)
    assert incident.incident_id == incident_id_for(intake_key("media_monitor", url=STORY))
    assert incident.channel == "email"
    assert incident.title == "网传西乡塘某超市销售过期牛奶"
    assert incident.reporter_id == "office-intake"  # a citizen: not in the roster
    assert (incident.unit, incident.sensitivity) == ("xixiangtang-branch", "important")
    assert incident.source_url == STORY + "?from=email_share"
    assert "帖子在这里" in incident.summary and "\r" not in incident.summary
    assert incident.submission_id == "email:<citizen-5000000001@citizen.example>"
    raw, screenshot = incident.evidence
    assert (raw.kind, raw.content) == ("other", data)
    assert screenshot.kind == "screenshot"
    assert screenshot.content == attachment(SCREENSHOT, "screenshot.png")
    assert screenshot.captured_at == datetime(2026, 11, 28, 9, 5, tzinfo=CHINA)


def test_an_email_without_a_link_is_keyed_by_its_message_id(settings: Settings) -> None:
    incident = parse((FIXTURES / "hotline-recording-from-office.eml").read_bytes(), settings)
    assert incident.intake_key == "email:<office-20261128-0007@aic.example>"
    # From Li.Ming@aic.example, but nothing proves it (tests/test_email_senders.py for what
    # does): the intake account reports it, and its source says so.
    assert incident.reporter_id == "office-intake"
    assert "li.ming@aic.example (sender unverified" in (incident.source or "")
    assert incident.source_url is None
    assert incident.summary == "12315 热线来电，反映青秀区某药店哄抬口罩价格，录音附后。"
    assert [e.kind for e in incident.evidence] == ["other", "audio_clip", "web_page"]


HEAD = b"From: wang@citizen.example\r\nMessage-ID: <m-1@citizen.example>\r\n"


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"", "the e-mail is empty"),
        (b"just some words\r\nno headers at all\r\n", "it has no header fields"),
        ((FIXTURES / "no-subject.eml").read_bytes(), "the e-mail has no Subject"),
        (b"Subject: x\r\nMessage-ID: <m-1@x>\r\n\r\nbody", "has no From address"),
        (
            b"Subject: x\r\nFrom: wang\r\nMessage-ID: <m-1@x>\r\n\r\nbody",
            "is not an e-mail address",
        ),
        (HEAD + b"Subject: x\r\nDate: yesterday\r\n\r\nbody", "'yesterday' is not a date"),
        (
            b"Subject: x\r\nFrom: wang@citizen.example\r\n\r\nno link here",
            "neither a link to the story nor a Message-ID",
        ),
        (
            HEAD + b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nbody",
            "the message is malformed: no boundary in multipart",
        ),
    ],
)
def test_a_malformed_email_is_refused_saying_why(
    settings: Settings, data: bytes, reason: str
) -> None:
    with pytest.raises(EmailRefused, match=reason.replace("(", r"\(")):
        parse(data, settings)


def test_an_email_too_large_to_keep_is_refused(settings: Settings) -> None:
    padding = base64.encodebytes(b"\x00" * 700_000)
    data = (
        HEAD + b"Subject: x\r\nContent-Type: image/png\r\nContent-Transfer-Encoding: base64\r\n\r\n"
    )
    data += padding
    with pytest.raises(EmailRefused, match="too large to fix as evidence"):
        parse(data, settings)


def submit(port: int, data: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", port, timeout=30) as smtp:
        smtp.sendmail("wang.nvshi@citizen.example", ["yuqing-intake@aic.example"], data)


async def test_an_email_through_the_smtp_intake_starts_the_incident_and_the_monitor_joins_it(
    driver: IncidentDriver, settings: Settings
) -> None:
    own = replace(settings, task_queue=driver.task_queue)
    async with SmtpIntake(driver.client, own, port=0) as intake:
        # smtplib blocks; the intake answers on this loop, so the client runs in a thread.
        await asyncio.to_thread(submit, intake.port, SCREENSHOT.read_bytes())

    incident_id = incident_id_for(intake_key("email", url=STORY))
    driver.handle = driver.client.get_workflow_handle_for(
        IncidentWorkflow.run, incident_workflow_id(incident_id)
    )
    state = await driver.until(lambda s: len(s.evidence) == 2)
    assert state.title == "网传西乡塘某超市销售过期牛奶"
    assert state.stage == "discovered"
    screenshot = state.evidence[1]
    assert screenshot.kind == "screenshot"
    image = attachment(SCREENSHOT, "screenshot.png")
    assert screenshot.sha256 == hashlib.sha256(image).hexdigest()
    assert screenshot.captured_at == datetime(2026, 11, 28, 9, 5, tzinfo=CHINA)
    raw = state.evidence[0]
    assert raw.sha256 == hashlib.sha256(SCREENSHOT.read_bytes()).hexdigest()

    # The monitoring system finds the same Weibo post, shared with tracking parameters.
    monitored = report(
        incident_id=incident_id_for(intake_key("media_monitor", url=STORY + "?utm_source=wx")),
        channel="media_monitor",
        source_url=STORY + "?utm_source=wx",
    )
    again = await report_incident(driver.client, monitored, driver.task_queue)
    assert again.kind == "reported_again" and not again.refused
    state = await driver.until(lambda s: len(s.evidence) == 4)
    assert len(state.submissions) == 2
    assert any(e.kind == "reported_again" and "media_monitor" in e.detail for e in state.trail)


async def test_a_malformed_email_is_bounced_by_the_intake_and_starts_nothing(
    driver: IncidentDriver, settings: Settings
) -> None:
    data = (FIXTURES / "no-subject.eml").read_bytes()
    own = replace(settings, task_queue=driver.task_queue)
    async with SmtpIntake(driver.client, own, port=0) as intake:
        with pytest.raises(smtplib.SMTPDataError) as bounced:
            await asyncio.to_thread(submit, intake.port, data)
    assert bounced.value.smtp_code == 554
    assert b"the e-mail has no Subject" in bounced.value.smtp_error

    would_be = incident_id_for(intake_key("email", url="https://weibo.example/status/5000000002"))
    with pytest.raises(RPCError, match="not found"):
        await driver.client.get_workflow_handle(incident_workflow_id(would_be)).describe()
