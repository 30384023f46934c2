"""The activities as the workflows call them: each one's registered name, input and result.

A workflow schedules an activity by its name and reads the result as its type; the code that
does the work (activities/, with PostgreSQL, HTTP and SMTP clients behind it) runs in the
worker, which registers it. Importing that code here would load asyncpg, httpx, aiosmtplib and
the rest in every process that only runs the workflows' code: `yuqing audit --replay` paid most
of a second for them. tests/test_activity_types.py holds each entry here to the registered
activity (name, input, result), so the two cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from temporalio import workflow

from yuqing.effects import (
    ArchiveHistory,
    Configuration,
    DeadlinePlan,
    FixedEvidenceList,
    FixEvidence,
    HistoryArchived,
    LoadConfiguration,
    LoadKeys,
    LoadSnapshot,
    PlanClockRequest,
    PlanDeadlines,
    PlannedPostDeadline,
    PlanPostDeadline,
    PublishStatement,
    ReadPost,
    RecordTrail,
    SendNotification,
    TrailRecorded,
)
from yuqing.signing import Keyring
from yuqing.state import Deadline, Notification, PostState, Publication

In = TypeVar("In")
Out = TypeVar("Out")


@dataclass(frozen=True)
class Activity(Generic[In, Out]):
    """One activity as a workflow schedules it (the same command as through its definition)."""

    name: str
    takes: type[In]
    gives: type[Out]

    async def run(self, request: In, **options: Any) -> Out:
        found: Out = await workflow.execute_activity(
            self.name, request, result_type=self.gives, **options
        )
        return found

    async def run_local(self, request: In, **options: Any) -> Out:
        found: Out = await workflow.execute_local_activity(
            self.name, request, result_type=self.gives, **options
        )
        return found


class AuditActivities:
    record_trail = Activity("record_trail", RecordTrail, TrailRecorded)
    start_archiver = Activity("start_archiver", ArchiveHistory, str)
    archive_history = Activity("archive_history", ArchiveHistory, HistoryArchived)


class ConfigurationActivities:
    load_configuration = Activity("load_configuration", LoadConfiguration, Configuration)
    load_snapshot = Activity("load_snapshot", LoadSnapshot, Configuration)
    load_keys = Activity("load_keys", LoadKeys, Keyring)


class DrillSinkActivities:
    drill_notice = Activity("drill_notice", SendNotification, Notification)
    drill_statement = Activity("drill_statement", PublishStatement, Publication)
    drill_evidence = Activity("drill_evidence", FixEvidence, FixedEvidenceList)


class EvidenceActivities:
    fix_evidence = Activity("fix_evidence", FixEvidence, FixedEvidenceList)


class NotificationActivities:
    send_notification = Activity("send_notification", SendNotification, Notification)


class PostDeadlineActivities:
    plan_post_deadline = Activity("plan_post_deadline", PlanPostDeadline, PlannedPostDeadline)


class PostReadingActivities:
    read_post = Activity("read_post", ReadPost, PostState)


class PublicationActivities:
    publish_statement = Activity("publish_statement", PublishStatement, Publication)


plan_clock = Activity("plan_clock", PlanClockRequest, Deadline)
plan_deadlines = Activity("plan_deadlines", PlanDeadlines, DeadlinePlan)
