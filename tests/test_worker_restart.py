"""A worker killed in the middle of an approval chain, and started again, finishes the incident
with every notice and publication recorded exactly once."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import asyncpg
from temporalio.testing import ActivityEnvironment

from activities.notifications import NotificationActivities
from activities.publications import PublicationActivities
from tests import keys as test_keys
from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from yuqing.client import connect
from yuqing.effects import PublishStatement, SendNotification
from yuqing.models import Decision, Grade, PublicationChannel
from yuqing.policy import load_policy
from yuqing.roles import Role
from yuqing.roster import Recipient
from yuqing.settings import PROJECT_ROOT, Settings
from yuqing.stack import TemporalDevServer
from yuqing.state import ApprovalRecord


@contextmanager
def worker_process(
    server: TemporalDevServer, database_url: str, task_queue: str
) -> Iterator[subprocess.Popen[bytes]]:
    """`python worker.py`, as an operator runs it, with its log kept for a failing test."""
    log = Path(tempfile.mkstemp(prefix="yuqing-worker-", suffix=".log")[1])
    env = {
        **os.environ,
        "TEMPORAL_ADDRESS": server.address,
        "TEMPORAL_NAMESPACE": server.namespace,
        "YUQING_TASK_QUEUE": task_queue,
        "DATABASE_URL": database_url,
        **test_keys.settings_env(),
    }
    with log.open("wb") as out:
        process = subprocess.Popen(
            [sys.executable, "worker.py"], cwd=PROJECT_ROOT, env=env, stdout=out, stderr=out
        )
    try:
        yield process
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=30)


async def test_worker_killed_mid_chain_finishes_exactly_once(
    dev_server: TemporalDevServer, settings: Settings, pool: asyncpg.Pool
) -> None:
    client = await connect(
        Settings(temporal_address=dev_server.address, temporal_namespace=dev_server.namespace)
    )
    task_queue = f"restart-{uuid.uuid4()}"
    incident = IncidentDriver(client, pool, task_queue)

    with worker_process(dev_server, settings.database_url or "", task_queue) as first:
        await incident.start(report(metrics={"weibo_reposts": 50}))
        await incident.accepted("submit_report", UPWARD_REPORT)
        await incident.accepted("submit_assessment", {"assessor_id": "li.ming"})
        await incident.accepted("submit_draft", {"author_id": "chen.jing", "text": "情况通报"})
        await incident.accepted("unit_head_approval", approval("huang.wei", 1))
        # Killed once the notices so far are out (the major notice, and the section head's
        # "第 1 稿待您审定"): every notice below is then sent in one attempt.
        await incident.until(
            lambda s: any(n.kind == "major_notice" for n in s.notifications)
            and len([n for n in s.notifications if n.kind == "approval_requested"]) == 2
        )
        first.kill()
        first.wait(timeout=10)

    # The rest of the chain arrives while no worker runs; the signals wait in the history.
    assert incident.handle is not None
    for name, payload in (
        ("section_head_review", approval("wu.hua", 1)),
        ("leadership_group_approval", approval("tang.guo", 1)),
    ):
        await incident.handle.signal(name, test_keys.signed(incident.handle.id, name, payload))

    with worker_process(dev_server, settings.database_url or "", task_queue):
        state = await incident.until_published()
        await incident.accepted("close_incident", {"closed_by": "tang.guo", "reason": "平息"})
        await incident.accepted(
            "submit_review",
            {
                "author_id": "li.ming",
                "what_happened": "a",
                "what_worked": "b",
                "what_to_change": "c",
            },
        )
        summary = await asyncio.wait_for(incident.result(), 60)
        # Queries on a finished workflow are answered by a worker replaying it.
        state = await incident.state()

    assert summary.publications == 3
    keys = [n.idempotency_key for n in state.notifications]
    assert len(keys) == len(set(keys))
    outbox = await incident.rows("notification_outbox")
    assert sorted(r["idempotency_key"] for r in outbox) == sorted(keys)
    assert all(r["attempts"] == 1 and r["status"] == "sent" for r in outbox)
    publications = await incident.rows("publications")
    assert sorted(r["channel"] for r in publications) == ["website", "wechat", "weibo"]
    assert len(state.publications) == 3


async def test_retried_activities_neither_send_nor_publish_twice(
    pool: asyncpg.Pool, settings: Settings
) -> None:
    incident_id = f"retry-{uuid.uuid4().hex[:8]}"
    notice = SendNotification(
        idempotency_key=f"incident-{incident_id}/notice/major",
        incident_id=incident_id,
        kind="major_notice",
        subject="通报",
        body="...",
        recipients=[
            Recipient(
                id="contact:public_security", name="市公安局网安支队", role=Role.public_security
            )
        ],
    )
    send = NotificationActivities(pool).send_notification
    first, again = [await ActivityEnvironment().run(send, notice) for _ in range(2)]
    assert first == again
    rows = await pool.fetch("SELECT * FROM notification_outbox WHERE incident_id = $1", incident_id)
    assert len(rows) == 1 and rows[0]["attempts"] == 1

    policy = load_policy(settings.policy_path)
    approvals = [
        ApprovalRecord(
            signal=step.signal,
            role=step.role,
            approver_id="x",
            decision=Decision.approve,
            draft_version=1,
            comment="",
            at=first.sent_at,
        )
        for step in policy.chain(Grade.general)
    ]
    publish = PublicationActivities(pool, settings.statement_base_url).publish_statement
    request = PublishStatement(
        idempotency_key=f"incident-{incident_id}/draft-1/weibo",
        incident_id=incident_id,
        channel=PublicationChannel.weibo,
        draft_version=1,
        text="通报",
        grade=Grade.general,
        approvals=approvals,
        policy=policy,
    )
    published, republished = [await ActivityEnvironment().run(publish, request) for _ in range(2)]
    assert published == republished
    rows = await pool.fetch("SELECT * FROM publications WHERE incident_id = $1", incident_id)
    assert len(rows) == 1
