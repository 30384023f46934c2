"""Channels that are down or slow: what waits shows as pending, and goes out once it can, once.

A mail server that is down, a publishing gateway that answers 503, a chat robot that takes a
request and then trickles its answer a byte at a time: the state lists every notice or
statement still waiting as `pending` with its last error, the Temporal UI's current details
say so, and when the channel comes back each target gets its copy once (a copy the trickling
receiver took without answering is the one extra it may get). Server time passes through the
time-skipping server; the deadlines of single copies are real seconds, kept short here.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.api.sdk.v1 import WorkflowMetadata
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError
from temporalio.testing import WorkflowEnvironment

from activities.notifications import NotificationActivities
from tests.conftest import start_time_skipping
from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from tests.receivers import (
    MailCollector,
    TricklingMailServer,
    WebhookReceiver,
    channel_worker,
    delivery_env,
    write_channels,
)
from worker import create_worker
from workflows.delivery import DELIVERY_HEARTBEAT
from yuqing.audit.projection import projected_trail
from yuqing.channels import load_channels, pulse
from yuqing.channels.config import MAX_DEADLINE_SECONDS
from yuqing.channels.ledger import OVERRUN_SECONDS
from yuqing.effects import SendNotification
from yuqing.roles import Role
from yuqing.roster import Recipient
from yuqing.settings import Settings
from yuqing.state import IncidentState, Notification, PostState
from yuqing.working_time import SHANGHAI

LEADERS = ["li.ming", "mo.jun", "tang.guo", "zhou.min"]


async def skip(env: WorkflowEnvironment, duration: timedelta) -> None:
    """Let `duration` of server time pass (the activities retrying meanwhile run for real)."""
    target = await env.get_current_time() + duration
    while (remaining := target - await env.get_current_time()) > timedelta(0):
        try:
            await env.sleep(remaining)
        except RPCError:
            continue  # the test server now and then drops a long skip part-way; go on


async def until_in_server_time(
    driver: IncidentDriver,
    env: WorkflowEnvironment,
    condition: Callable[[IncidentState], bool],
    step: timedelta = timedelta(minutes=1),
    limit: timedelta = timedelta(minutes=30),
) -> IncidentState:
    """The state once `condition` holds, moving the server's clock on by `step` meanwhile."""
    waited = timedelta(0)
    while True:
        state = await driver.state()
        if condition(state):
            return state
        if waited >= limit:
            raise AssertionError(f"not so after {limit} of server time: {state.notifications}")
        await skip(env, step)
        waited += step


async def current_details(driver: IncidentDriver) -> str:
    """What the Temporal UI shows as the incident's current details."""
    assert driver.handle is not None
    metadata = await driver.handle.query(
        "__temporal_workflow_metadata", result_type=WorkflowMetadata
    )
    return str(metadata.current_details)


async def history_length(driver: IncidentDriver) -> int:
    assert driver.handle is not None
    return len((await driver.handle.fetch_history()).events)


def report_notice(state: IncidentState) -> Notification | None:
    return next((n for n in state.notifications if n.kind == "report"), None)


async def copied(driver: IncidentDriver, lines: int) -> list[dict[str, Any]]:
    """The incident's rows of the audit table, once it holds `lines` of them (the copy is an
    activity of its own: its rows come a moment after the state shows the lines)."""
    assert driver.handle is not None
    for _ in range(400):
        rows = await projected_trail(driver.pool, driver.handle.id)
        if len(rows) >= lines:
            return rows
        await asyncio.sleep(0.05)
    raise AssertionError(f"the audit table holds {len(rows)} of {lines} lines")


def is_pending(notice: Notification | None) -> bool:
    return notice is not None and notice.status == "pending"


def is_sent(notice: Notification | None) -> bool:
    return notice is not None and notice.status == "sent"


async def test_a_notice_waiting_for_a_mail_server_that_is_down_shows_as_pending_then_goes_once(
    env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    mail = MailCollector()
    await mail.start()
    await mail.stop()  # down, its port known
    channels = write_channels(
        tmp_path / "channels.toml",
        f'[smtp]\nhost = "127.0.0.1"\nport = {mail.port}\nfrom_address = "yuqing@aic.example"\n',
    )
    task_queue = f"test-{uuid.uuid4()}"
    try:
        own = replace(settings, channels_path=channels)
        async with channel_worker(env.client, pool, own, task_queue):
            driver = IncidentDriver(env, pool, task_queue)
            await driver.start(report())
            await driver.accepted("submit_report", UPWARD_REPORT)

            # Within the first round (a single attempt) the notice shows, and says why.
            state = await driver.until(lambda s: is_pending(report_notice(s)))
            notice = report_notice(state)
            assert notice is not None and notice.sent_at is None
            assert notice.last_error is not None and f"127.0.0.1:{mail.port}" in notice.last_error
            assert notice.waiting_since is not None and notice.attempts == 1
            assert notice.channel == "email"
            assert all(e.kind != "notified" for e in state.trail)
            # The decision's lines are copied meanwhile: the copy waits for a notice's first
            # try (patch speed-settled-copies), not for its channel to come back.
            assert [row["kind"] for row in await copied(driver, state.trail_total)] == [
                e.kind for e in state.trail
            ]
            details = await current_details(driver)
            assert "Waiting for a channel" in details
            assert f"notice report ({notice.subject}): pending since" in details
            assert f"127.0.0.1:{mail.port}" in details

            # Two hours down cost three more rounds (of 6, 12 and 24 attempts), not an event
            # per attempt: some 6 events a round.
            before = await history_length(driver)
            await skip(env, timedelta(hours=2))
            state = await driver.state()
            notice = report_notice(state)
            assert is_pending(notice) and notice is not None
            assert notice.attempts >= 1 + 6 + 12  # Temporal kept trying, at most 5 min apart
            assert await history_length(driver) - before <= 4 * 6
            assert mail.messages == []

            await mail.start()  # back, on the same port
            state = await until_in_server_time(driver, env, lambda s: is_sent(report_notice(s)))
            assert "Waiting for a channel" not in await current_details(driver)
            await driver.save_history("delivery_email_down_then_sent")
            await driver.terminate_if_running()
    finally:
        await mail.stop()

    notice = report_notice(state)
    assert notice is not None and notice.result == "delivered to 4 of 4"
    assert notice.last_error is None and notice.sent_at is not None
    # (sent_at is the database's clock, waiting_since the workflow's: not comparable here,
    # where the time-skipping server's clock runs ahead.)
    assert notice.waiting_since is not None and notice.attempts > 1 + 6 + 12
    for person in LEADERS:
        assert len(mail.to(f"{person}@aic.example")) == 1
    assert len(mail.messages) == 4
    assert len([e for e in state.trail if e.kind == "notified"]) == 1
    [outbox] = await driver.rows("notification_outbox")
    assert outbox["status"] == "sent" and outbox["attempts"] == notice.attempts


async def test_a_statement_waiting_for_its_gateway_shows_as_pending_then_goes_once(
    env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    async with WebhookReceiver(
        down=True, answer={"address": "https://weibo.example/aic/5000000042"}
    ) as gateway:
        channels = write_channels(
            tmp_path / "channels.toml", f'[publications.weibo]\nurl = "{gateway.url("/weibo")}"\n'
        )
        task_queue = f"test-{uuid.uuid4()}"
        own = replace(settings, channels_path=channels)
        async with channel_worker(env.client, pool, own, task_queue):
            driver = IncidentDriver(env, pool, task_queue)
            await driver.start(report())
            await driver.accepted("submit_report", UPWARD_REPORT)
            await driver.accepted("submit_assessment", {"assessor_id": "li.ming", "comment": ""})
            text = "经核查，涉事超市已下架相关商品。"
            await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": text})
            await driver.accepted("unit_head_approval", approval("huang.wei", 1))
            await driver.accepted("publicity_lead_approval", approval("zhou.min", 1))

            def weibo(s: IncidentState) -> str | None:
                return next((p.status for p in s.publications if p.channel == "weibo"), None)

            state = await driver.until(lambda s: weibo(s) == "pending" and len(s.publications) == 3)
            pending = next(p for p in state.publications if p.channel == "weibo")
            assert pending.address is None and pending.published_at is None
            assert pending.last_error is not None and "HTTP 503" in pending.last_error
            # The website's statement met the deadline; the draft waits for its last channel.
            assert {p.channel for p in state.publications if p.published} == {"website", "wechat"}
            assert state.deadline("publish_statement").status == "met"  # type: ignore[union-attr]
            assert state.stage == "monitoring" and state.current_draft is not None
            assert state.current_draft.status == "approved"
            details = await current_details(driver)
            assert "statement v1 on weibo: pending since" in details and "HTTP 503" in details

            gateway.down = False
            state = await until_in_server_time(
                driver, env, lambda s: weibo(s) == "published", step=timedelta(seconds=30)
            )
            assert "Waiting for a channel" not in await current_details(driver)
            await driver.save_history("delivery_gateway_down_then_published")
            await driver.terminate_if_running()

    published = next(p for p in state.publications if p.channel == "weibo")
    assert published.address == "https://weibo.example/aic/5000000042"
    assert published.waiting_since is not None and published.attempts >= 2
    assert state.current_draft is not None and state.current_draft.status == "published"
    [taken] = gateway.delivered("/weibo")
    assert taken.body["text"] == text
    assert all(r.status == 503 for r in gateway.to("/weibo") if r is not taken)
    assert len(await driver.rows("publications")) == 3
    assert len([e for e in state.trail if e.kind == "published"]) == 3


async def test_a_trickling_receiver_gets_at_most_one_extra_copy(
    env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    async with WebhookReceiver(trickling=True) as robot:
        # One byte every 0.2 s: a per-read timeout of 2 s never fires; the 2 s deadline does.
        channels = write_channels(
            tmp_path / "channels.toml",
            f"""
[[webhooks]]
name = "office-group"
kind = "wecom"
url = "{robot.url("/office")}"
kinds = ["report"]
timeout_seconds = 2
""",
        )
        task_queue = f"test-{uuid.uuid4()}"
        own = replace(settings, channels_path=channels)
        async with channel_worker(env.client, pool, own, task_queue):
            driver = IncidentDriver(env, pool, task_queue)
            await driver.start(report())
            await driver.accepted("submit_report", UPWARD_REPORT)

            state = await driver.until(lambda s: is_pending(report_notice(s)))
            notice = report_notice(state)
            assert notice is not None and notice.last_error is not None
            assert "sent, but no answer within 2 s" in notice.last_error
            assert notice.retry_at is not None and notice.last_attempt_at is not None
            assert notice.retry_at - notice.last_attempt_at == timedelta(minutes=5)
            assert "next try after" in await current_details(driver)
            assert len(robot.to("/office")) == 1

            # The receiver may have it: no copy goes before the pause is over.
            await skip(env, timedelta(minutes=4))
            assert len(robot.to("/office")) == 1

            robot.trickling = False
            state = await until_in_server_time(driver, env, lambda s: is_sent(report_notice(s)))
            # And once delivered, never again.
            await skip(env, timedelta(hours=2))
            await driver.save_history("delivery_trickling_robot")
            await driver.terminate_if_running()

    assert len(robot.to("/office")) == 2 and len(robot.delivered("/office")) == 1
    notice = report_notice(state)
    assert notice is not None and notice.result == "delivered to 1 of 1"
    attempts = await pool.fetch(
        "SELECT attempt, status FROM delivery_attempts WHERE idempotency_key = $1 ORDER BY attempt",
        notice.idempotency_key,
    )
    assert [tuple(a) for a in attempts] == [(1, "unknown"), (2, "delivered")]


async def test_a_post_notice_waiting_for_the_mail_server_shows_in_the_post_and_its_incident(
    pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> None:
    mail = MailCollector()
    await mail.start()
    channels = write_channels(
        tmp_path / "channels.toml",
        f'[smtp]\nhost = "127.0.0.1"\nport = {mail.port}\nfrom_address = "yuqing@aic.example"\n',
    )
    # A clock of its own, to start on a known Friday afternoon (the shared one has moved on).
    env = await start_time_skipping()
    task_queue = f"test-{uuid.uuid4()}"
    try:
        own = replace(settings, channels_path=channels)
        async with create_worker(env.client, pool, own, task_queue=task_queue):
            driver = IncidentDriver(env, pool, task_queue)
            friday = datetime(2026, 12, 11, 16, 0, tzinfo=SHANGHAI)
            await skip(env, friday - await env.get_current_time())
            await driver.start(report())
            await driver.accepted("submit_report", UPWARD_REPORT)
            post = {
                "post_id": "p1",
                "platform": "南宁市政府网站留言板",
                "author": "网民p1",
                "content": "超市过期牛奶的事处理结果如何？",
                "received_by": "chen.jing",
                "learnt_at": friday.isoformat(),
            }
            await driver.accepted("netizen_post", post)
            await driver.until_post("p1", lambda p: bool(p.deadlines))

            # The initial response is due Monday 09:00; the mail server goes down before.
            await skip(env, datetime(2026, 12, 14, 8, 30, tzinfo=SHANGHAI) - friday)
            await mail.stop()
            await skip(env, timedelta(minutes=31))

            def escalation(p: PostState) -> Notification | None:
                return next((n for n in p.pending_notifications if n.kind == "escalation"), None)

            # The post lists it, and so does the incident's state, which lists the post.
            listed = await driver.until_post("p1", lambda p: escalation(p) is not None)
            waiting = escalation(listed)
            assert waiting is not None and waiting.status == "pending"
            assert waiting.last_error is not None and f"127.0.0.1:{mail.port}" in waiting.last_error
            assert escalation(await driver.post_state("p1")) is not None
            metadata = await driver.post("p1").query(
                "__temporal_workflow_metadata", result_type=WorkflowMetadata
            )
            assert "Waiting for a channel" in metadata.current_details
            assert "notice escalation" in metadata.current_details

            await mail.start()
            await until_in_server_time(
                driver,
                env,
                lambda s: (p := s.post("p1")) is not None and not p.pending_notifications,
            )
            post_state = await driver.post_state("p1")
            await driver.terminate_if_running()
    finally:
        await mail.stop()
        await env.shutdown()

    notified = [e for e in post_state.trail if e.kind == "notified" and "escalation" in e.detail]
    assert len(notified) == 1
    # Each mailbox got the post's escalation once.
    mailboxes = [
        str(msg["To"])
        for _, msg in mail.messages
        # (a key this long is folded onto its own line, hence the strip)
        if str(msg["X-Yuqing-Idempotency-Key"]).strip().startswith(post_state.workflow_id)
        and str(msg["X-Yuqing-Idempotency-Key"]).strip().endswith("/escalation")
    ]
    assert mailboxes and len(mailboxes) == len(set(mailboxes))


# -- one copy's deadline, and the heartbeat, activity by activity ------------------------------


def notice(recipients: list[Recipient]) -> SendNotification:
    incident_id = f"dl-{uuid.uuid4().hex[:8]}"
    return SendNotification(
        idempotency_key=f"incident-{incident_id}/notice/escalation",
        incident_id=incident_id,
        kind="escalation",
        subject="舆情处置超时",
        body="报告时限已过。",
        recipients=recipients,
    )


def leader(name: str) -> Recipient:
    return Recipient(id=name, name=name, role=Role.leadership_group, email=f"{name}@aic.example")


@pytest.mark.parametrize(
    ("at", "status", "held_back"),
    [("greeting", "failed", False), ("data", "unknown", True)],
    ids=["greeting-trickled", "reply-to-data-trickled"],
)
async def test_a_mail_server_that_trickles_is_cut_off_at_the_deadline(
    pool: asyncpg.Pool, tmp_path: Path, at: str, status: str, held_back: bool
) -> None:
    async with TricklingMailServer(at=at) as slow:
        channels = load_channels(
            write_channels(
                tmp_path / "channels.toml",
                f'[smtp]\nhost = "127.0.0.1"\nport = {slow.port}\n'
                'from_address = "yuqing@aic.example"\ntimeout_seconds = 2\n',
            )
        )
        send = NotificationActivities(pool, channels).send_notification
        request = notice([leader("tang.guo"), leader("mo.jun")])
        with pytest.raises(ApplicationError) as failed:
            await delivery_env().run(send, request)
    assert failed.value.type == "ChannelUnavailable"
    assert "no answer within 2 s" in failed.value.message
    # A message taken in full may have arrived: the next copy waits, and says why.
    assert (failed.value.next_retry_delay == timedelta(minutes=5)) is held_back
    rows = await pool.fetch(
        "SELECT target, status FROM delivery_attempts WHERE idempotency_key = $1 ORDER BY target",
        request.idempotency_key,
    )
    # The first mailbox met the slow server; the second was not made to wait for it again.
    assert [tuple(r) for r in rows] == [
        ("mo.jun@aic.example", "failed"),
        ("tang.guo@aic.example", status),
    ]


async def _notice_to_six(
    pool: asyncpg.Pool, tmp_path: Path
) -> tuple[str, list[tuple[object, ...]], int]:
    """A notice to six mailboxes, sent in one attempt: its result, the heartbeats the attempt
    sent, and the messages the mail server took."""
    async with MailCollector() as mail:
        channels = load_channels(
            write_channels(
                tmp_path / "channels.toml",
                f'[smtp]\nhost = "127.0.0.1"\nport = {mail.port}\n'
                'from_address = "yuqing@aic.example"\n',
            )
        )
        env = delivery_env()
        beats: list[tuple[object, ...]] = []
        env.on_heartbeat = lambda *details: beats.append(details)
        sent = await env.run(
            NotificationActivities(pool, channels).send_notification,
            notice([leader(f"leader{i}") for i in range(6)]),
        )
    return sent.result, beats, len(mail.messages)


async def test_a_notice_sent_at_once_costs_temporal_no_heartbeat(
    pool: asyncpg.Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Six copies within 2.9 s of the attempt's start (on its clock).
    readings = iter([0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 2.9])
    monkeypatch.setattr(pulse, "monotonic", lambda: next(readings))
    result, beats, messages = await _notice_to_six(pool, tmp_path)
    assert (result, messages) == ("delivered to 6 of 6", 6)
    assert beats == []


async def test_a_long_notice_heartbeats_after_each_copy_from_three_seconds_on(
    pool: asyncpg.Pool, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first copy ends 2.9 s into the attempt, the second at 3 s: from then on the clock is
    # not read again (every copy heartbeats; the SDK throttles what it sends to Temporal).
    readings = iter([0.0, 2.9, 3.0])
    monkeypatch.setattr(pulse, "monotonic", lambda: next(readings))
    result, beats, messages = await _notice_to_six(pool, tmp_path)
    assert (result, messages) == ("delivered to 6 of 6", 6)
    assert beats == [(2,), (3,), (4,), (5,), (6,)]


def test_the_first_heartbeat_and_the_longest_copy_leave_five_seconds_of_the_timeout() -> None:
    left = (
        DELIVERY_HEARTBEAT.total_seconds() * (1 - pulse.BEAT_AFTER)
        - MAX_DEADLINE_SECONDS
        - OVERRUN_SECONDS
    )
    assert left >= 5.0
