"""Notices and statements leave the building through real sockets, each exactly once.

The bureau's mail server, a chat robot and a publishing gateway are played by small servers on
127.0.0.1 that fail the first attempts; Temporal retries the activity, and every receiver ends
up with each notice or statement once, with every attempt on record.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import WorkflowEnvironment

from activities.notifications import NotificationActivities
from activities.publications import PublicationActivities
from tests.driver import UPWARD_REPORT, IncidentDriver, report
from tests.receivers import (
    MailCollector,
    WebhookReceiver,
    channel_worker,
    delivery_env,
    write_channels,
)
from yuqing.channels import Channels, ChannelsError, load_channels, notice_channels
from yuqing.channels.smtp import message_id
from yuqing.channels.webhook import RobotChannel
from yuqing.effects import PublishStatement, SendNotification
from yuqing.models import Decision, Grade, PublicationChannel
from yuqing.policy import load_policy
from yuqing.roles import Role
from yuqing.roster import Recipient
from yuqing.settings import Settings
from yuqing.state import ApprovalRecord

# -- notices -----------------------------------------------------------------------------------


async def test_notice_reaches_every_mailbox_and_robot_once_through_retries(
    env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    async with MailCollector(deferrals=2) as mail, WebhookReceiver(failures=2) as robots:
        channels = write_channels(
            tmp_path / "channels.toml",
            f"""
[smtp]
host = "127.0.0.1"
port = {mail.port}
from_address = "yuqing@aic.example"
from_name = "舆情应对系统"

[[webhooks]]
name = "office-group"
kind = "wecom"
url = "{robots.url("/office")}"
roles = ["office"]
kinds = ["report"]

[[webhooks]]
name = "police-liaison"
kind = "dingtalk"
url = "{robots.url("/police")}"
kinds = ["major_notice"]
""",
        )
        own = replace(settings, channels_path=channels)
        task_queue = f"test-{uuid.uuid4()}"
        async with channel_worker(env.client, pool, own, task_queue):
            driver = IncidentDriver(env, pool, task_queue)
            await driver.start(report())
            await driver.accepted("submit_report", UPWARD_REPORT)
            state = await until_notified(driver, env, "report")
            await driver.terminate_if_running()

    notice = next(n for n in state.notifications if n.kind == "report")
    assert notice.channel == "email+wecom"
    assert notice.result == "delivered to 5 of 5"

    # Four leaders and the Office, one message each, once, though two were deferred at first.
    mailboxes = ["li.ming", "mo.jun", "tang.guo", "zhou.min"]
    for person in mailboxes:
        [msg] = mail.to(f"{person}@aic.example")
        assert msg["Message-ID"] == message_id(notice.idempotency_key, "aic.example")
        assert msg["Subject"] == notice.subject
        assert "媒体/平台：新浪微博" in msg.get_content()
    assert len(mail.messages) == 4 and mail.deferred == 2

    # The robot was down twice; the third request got through, and only one did.
    [posted] = robots.delivered("/office")
    assert len([r for r in robots.requests if r.path == "/office"]) == 3
    assert posted.headers["idempotency-key"] == notice.idempotency_key
    assert posted.body["idempotency_key"] == notice.idempotency_key
    assert posted.body["msgtype"] == "text"
    assert notice.subject in posted.body["text"]["content"]
    assert robots.delivered("/police") == []

    [outbox] = await driver.rows("notification_outbox")
    assert (outbox["status"], outbox["attempts"]) == ("sent", 3)
    assert outbox["result"] == "delivered to 5 of 5"
    deliveries = {
        (r["channel"], r["target"]): r
        for r in await pool.fetch(
            "SELECT * FROM deliveries WHERE idempotency_key = $1", notice.idempotency_key
        )
    }
    assert set(deliveries) == {("email", f"{p}@aic.example") for p in mailboxes} | {
        ("wecom", "office-group")
    }
    assert all(r["status"] == "delivered" for r in deliveries.values())
    assert sorted(r["attempts"] for r in deliveries.values()) == [1, 1, 2, 2, 3]
    attempts = await pool.fetch(
        "SELECT * FROM delivery_attempts WHERE idempotency_key = $1 AND channel = 'wecom'"
        " ORDER BY attempt",
        notice.idempotency_key,
    )
    assert [(a["attempt"], a["status"]) for a in attempts] == [
        (1, "failed"),
        (2, "failed"),
        (3, "delivered"),
    ]
    assert attempts[0]["detail"].startswith("HTTP 500")
    deferred = await pool.fetch(
        "SELECT * FROM delivery_attempts WHERE idempotency_key = $1 AND status = 'failed'"
        " AND channel = 'email'",
        notice.idempotency_key,
    )
    assert len(deferred) == 2 and all("451" in a["detail"] for a in deferred)


async def until_notified(driver: IncidentDriver, env: WorkflowEnvironment, kind: str) -> Any:
    """The state once a notice of `kind` is recorded, letting retry backoffs pass meanwhile."""
    for _ in range(20):
        state = await driver.state()
        if any(n.kind == kind and n.status == "sent" for n in state.notifications):
            return state
        # The retry waits on the server's clock: move it on rather than wait it out.
        await env.sleep(timedelta(seconds=5))
    raise AssertionError(f"no {kind} notice was recorded")


def notice(recipients: list[Recipient], kind: str = "major_notice") -> SendNotification:
    incident_id = f"ch-{uuid.uuid4().hex[:8]}"
    return SendNotification(
        idempotency_key=f"incident-{incident_id}/notice/{kind}",
        incident_id=incident_id,
        kind=kind,
        subject="重大舆情通报",
        body="西乡塘区某超市过期食品事件已升级为重大舆情。",
        recipients=recipients,
    )


POLICE = Recipient(
    id="contact:public_security",
    name="市公安局网安支队",
    role=Role.public_security,
    email="wangan@police.example",
)
PROPAGANDA = Recipient(
    id="contact:propaganda_department",
    name="市委宣传部网络舆情处",
    role=Role.propaganda_department,
    email="yuqing@propaganda.example",
)
EMERGENCY = Recipient(id="contact:emergency_office", name="市应急办", role=Role.emergency_office)


def smtp_only(tmp_path: Path, port: int) -> Channels:
    return load_channels(
        write_channels(
            tmp_path / "channels.toml",
            f'[smtp]\nhost = "127.0.0.1"\nport = {port}\nfrom_address = "yuqing@aic.example"\n',
        )
    )


async def test_a_mailbox_refused_for_good_does_not_hold_up_the_notice(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with MailCollector(unknown=("yuqing@propaganda.example",)) as mail:
        send = NotificationActivities(pool, smtp_only(tmp_path, mail.port)).send_notification
        request = notice([POLICE, PROPAGANDA, EMERGENCY])
        sent = await delivery_env().run(send, request)
        again = await delivery_env().run(send, request)
    assert sent == again
    assert sent.channel == "email"
    assert sent.result == (
        "delivered to 1 of 2; rejected: email yuqing@propaganda.example (recipient refused:"
        " 550 5.1.1 no such mailbox here); no e-mail address: 市应急办"
    )
    assert [rcpt for rcpt, _ in mail.messages] == [["wangan@police.example"]]


async def test_a_mail_server_that_is_down_fails_the_activity_for_a_retry(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    async with MailCollector() as mail:
        port = mail.port  # free once the collector has stopped
    send = NotificationActivities(pool, smtp_only(tmp_path, port)).send_notification
    request = notice([POLICE, PROPAGANDA])
    with pytest.raises(ApplicationError) as failed:
        await delivery_env().run(send, request)
    assert failed.value.type == "ChannelUnavailable" and not failed.value.non_retryable
    assert "delivered to 0 of 2 so far" in failed.value.message
    [row] = await pool.fetch(
        "SELECT * FROM notification_outbox WHERE idempotency_key = $1", request.idempotency_key
    )
    assert (row["status"], row["attempts"]) == ("pending", 1)
    assert f"127.0.0.1:{port}" in row["result"]

    async with MailCollector() as mail:
        send = NotificationActivities(pool, smtp_only(tmp_path, mail.port)).send_notification
        sent = await delivery_env().run(send, request)
    assert sent.result == "delivered to 2 of 2"
    assert len(mail.messages) == 2


async def test_without_channels_a_notice_is_recorded_only(pool: asyncpg.Pool) -> None:
    send = NotificationActivities(pool).send_notification
    request = notice([POLICE])
    sent = await delivery_env().run(send, request)
    assert (sent.channel, sent.result) == (
        "outbox",
        "recorded for 1 recipient(s); no channel is configured",
    )
    # A retry (its answer lost on the way) finds the notice recorded: the same, counted once.
    assert await delivery_env().run(send, request) == sent
    [row] = await pool.fetch(
        "SELECT * FROM notification_outbox WHERE idempotency_key = $1", request.idempotency_key
    )
    assert (row["status"], row["attempts"], row["sent_at"]) == ("sent", 1, sent.sent_at)


# -- statements --------------------------------------------------------------------------------


def statement(
    channel: PublicationChannel, incident_id: str, settings: Settings
) -> PublishStatement:
    policy = load_policy(settings.policy_path)
    approvals = [
        ApprovalRecord(
            signal=step.signal,
            role=step.role,
            approver_id="x",
            decision=Decision.approve,
            draft_version=1,
            comment="",
            at="2026-11-28T10:00:00+08:00",
        )
        for step in policy.chain(Grade.general)
    ]
    return PublishStatement(
        idempotency_key=f"incident-{incident_id}/draft-1/{channel}",
        incident_id=incident_id,
        channel=channel,
        draft_version=1,
        text="经核查，涉事超市已下架相关商品。",
        grade=Grade.general,
        approvals=approvals,
        policy=policy,
    )


async def test_statement_goes_through_its_gateway_exactly_once(
    pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    incident_id = f"pub-{uuid.uuid4().hex[:8]}"
    base = "https://www.aic.example/statements"
    async with WebhookReceiver(
        failures=1, answer={"address": "https://weibo.example/aic/5000000009"}
    ) as gateway:
        channels = load_channels(
            write_channels(
                tmp_path / "channels.toml",
                f'[publications.weibo]\nurl = "{gateway.url("/weibo")}"\n',
            )
        )
        publish = PublicationActivities(pool, base, channels).publish_statement
        weibo = statement(PublicationChannel.weibo, incident_id, settings)
        with pytest.raises(ApplicationError) as failed:
            await delivery_env().run(publish, weibo)
        assert failed.value.type == "ChannelUnavailable"
        assert (
            await pool.fetch("SELECT 1 FROM publications WHERE incident_id = $1", incident_id) == []
        )
        env = delivery_env()
        beats: list[tuple[object, ...]] = []
        env.on_heartbeat = lambda *details: beats.append(details)
        published = await env.run(publish, weibo)
        assert beats == []  # taken at once: no heartbeat (yuqing.channels.pulse)
        again = await delivery_env().run(publish, weibo)
        website = await delivery_env().run(
            publish, statement(PublicationChannel.website, incident_id, settings)
        )
        wechat = await delivery_env().run(
            publish, statement(PublicationChannel.wechat, incident_id, settings)
        )

    assert published == again
    assert published.address == "https://weibo.example/aic/5000000009"
    assert website.address == f"{base}/{incident_id}-v1"
    assert wechat.address == f"{base}/{incident_id}-v1#wechat"  # no gateway: recorded only
    [posted] = gateway.delivered("/weibo")
    assert len(gateway.requests) == 2
    assert posted.headers["idempotency-key"] == weibo.idempotency_key
    assert posted.body["text"] == weibo.text
    assert posted.body["website_address"] == website.address
    assert posted.body["content_sha256"] == published.content_sha256
    rows = await pool.fetch(
        "SELECT status, attempts FROM deliveries WHERE idempotency_key = $1", weibo.idempotency_key
    )
    assert [tuple(r) for r in rows] == [("delivered", 2)]
    assert (
        len(await pool.fetch("SELECT 1 FROM publications WHERE incident_id = $1", incident_id)) == 3
    )


# -- the channels file -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        (
            '[[webhooks]]\nname = "office-group"\nkind = "wecom"\nurl = "http://127.0.0.1/a"\n'
            '[[webhooks]]\nname = "police-liaison"\nkind = "feishu"\nurl = "http://127.0.0.1/b"\n',
            "webhooks[1] ('police-liaison').kind: Input should be 'wecom' or 'dingtalk'",
        ),
        (
            '[[webhooks]]\nname = "office-group"\nkind = "wecom"\nurl = "http://127.0.0.1/a"\n'
            'kinds = ["report", "reminders"]\n',
            "webhooks[0] ('office-group').kinds.1: Input should be 'report'",
        ),
        (
            '[[webhooks]]\nname = "office-group"\nkind = "wecom"\nurl = "127.0.0.1/a"\n',
            "webhooks[0] ('office-group').url: '127.0.0.1/a' is not an http(s) URL",
        ),
        (
            '[[webhooks]]\nname = "office-group"\nkind = "wecom"\nurl = "http://127.0.0.1/a"\n'
            'roles = ["press_officer"]\n',
            "webhooks[0] ('office-group').roles.0: Input should be 'office'",
        ),
        (
            '[smtp]\nhost = "127.0.0.1"\nfrom_address = "yuqing"\n',
            "smtp.from_address: 'yuqing' is not an e-mail address",
        ),
        (
            '[smtp]\nhost = "127.0.0.1"\nfrom_address = "yuqing@aic.example"\nusername = "u"\n'
            'password_env = "YUQING_TEST_NO_SUCH_VARIABLE"\n',
            "smtp.password_env: environment variable YUQING_TEST_NO_SUCH_VARIABLE is not set",
        ),
        (
            '[smtp]\nhost = "127.0.0.1"\nfrom_adress = "yuqing@aic.example"\n',
            "smtp.from_adress: Extra inputs are not permitted",
        ),
        (
            '[publications.website]\nurl = "http://127.0.0.1/site"\n',
            "the website serves statements from the publications table itself",
        ),
        ('[publications.tiktok]\nurl = "http://127.0.0.1/t"\n', "publications.tiktok.[key]"),
        # One copy must end well inside its activity's 30 s heartbeat timeout.
        (
            '[publications.weibo]\nurl = "http://127.0.0.1/w"\ntimeout_seconds = 30\n',
            "publications.weibo.timeout_seconds: Input should be less than or equal to 20",
        ),
        ("[smtp\n", "is not valid TOML"),
    ],
)
def test_a_malformed_channels_file_is_refused_naming_the_entry(
    tmp_path: Path, text: str, problem: str
) -> None:
    path = write_channels(tmp_path / "channels.toml", text)
    with pytest.raises(ChannelsError) as refused:
        load_channels(path)
    assert str(path) in str(refused.value)
    assert problem in str(refused.value)


def test_the_example_channels_file_is_valid(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in (
        "YUQING_SMTP_PASSWORD",
        "YUQING_WECOM_OFFICE_URL",
        "YUQING_DINGTALK_LEADERS_URL",
        "YUQING_DINGTALK_SECRET",
        "YUQING_GATEWAY_TOKEN",
    ):
        monkeypatch.setenv(name, "https://robot.example/send?key=secret")
    channels = load_channels(Path(__file__).parent.parent / "config" / "channels.example.toml")
    assert channels.smtp is not None and channels.configured
    assert [w.name for w in channels.webhooks] == ["office-group", "leaders-dingtalk"]
    assert set(channels.publications) == {PublicationChannel.weibo, PublicationChannel.wechat}


def test_a_dingtalk_robot_signs_each_request_with_its_secret(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(
        "YUQING_TEST_ROBOT_URL", "https://oapi.dingtalk.example/robot/send?access_token=t"
    )
    monkeypatch.setenv("YUQING_TEST_ROBOT_SECRET", "SEC-test")
    channels = load_channels(
        write_channels(
            tmp_path / "channels.toml",
            '[[webhooks]]\nname = "leaders"\nkind = "dingtalk"\nurl_env = "YUQING_TEST_ROBOT_URL"\n'
            'secret_env = "YUQING_TEST_ROBOT_SECRET"\n',
        )
    )
    [robot] = notice_channels(channels)
    assert isinstance(robot, RobotChannel)
    query = parse_qs(urlsplit(robot.url()).query)
    assert query["access_token"] == ["t"]
    timestamp = query["timestamp"][0]
    expected = hmac.new(b"SEC-test", f"{timestamp}\nSEC-test".encode(), hashlib.sha256).digest()
    assert base64.b64decode(query["sign"][0]) == expected
    assert "leaders" in channels.describe()[0] and "token" not in " ".join(channels.describe())
