"""The activities as the workflows call them: each one's name, input and result, no body.

A workflow schedules an activity by its name and reads the result as its type; the code that
does the work (activities/, with PostgreSQL, HTTP and SMTP clients behind it) runs in the
worker, which registers the real ones. Importing those here would load asyncpg, httpx,
aiosmtplib and the rest in every process that only runs the workflows' code: `yuqing audit
--replay` paid most of a second for them. tests/test_activity_types.py holds each definition
here to the real one (name, parameters, result), so the two cannot drift apart.
"""

from __future__ import annotations

from temporalio import activity

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


def _elsewhere(name: str) -> NotImplementedError:
    return NotImplementedError(f"{name} runs in the worker (activities/), not here")


class AuditActivities:
    @activity.defn
    async def record_trail(self, request: RecordTrail) -> TrailRecorded:
        raise _elsewhere("record_trail")

    @activity.defn
    async def start_archiver(self, request: ArchiveHistory) -> str:
        raise _elsewhere("start_archiver")

    @activity.defn
    async def archive_history(self, request: ArchiveHistory) -> HistoryArchived:
        raise _elsewhere("archive_history")


class ConfigurationActivities:
    @activity.defn
    async def load_configuration(self, request: LoadConfiguration) -> Configuration:
        raise _elsewhere("load_configuration")

    @activity.defn
    async def load_snapshot(self, request: LoadSnapshot) -> Configuration:
        raise _elsewhere("load_snapshot")

    @activity.defn
    async def load_keys(self, request: LoadKeys) -> Keyring:
        raise _elsewhere("load_keys")


class DrillSinkActivities:
    @activity.defn
    async def drill_notice(self, request: SendNotification) -> Notification:
        raise _elsewhere("drill_notice")

    @activity.defn
    async def drill_statement(self, request: PublishStatement) -> Publication:
        raise _elsewhere("drill_statement")

    @activity.defn
    async def drill_evidence(self, request: FixEvidence) -> FixedEvidenceList:
        raise _elsewhere("drill_evidence")


class EvidenceActivities:
    @activity.defn
    async def fix_evidence(self, request: FixEvidence) -> FixedEvidenceList:
        raise _elsewhere("fix_evidence")


class NotificationActivities:
    @activity.defn
    async def send_notification(self, request: SendNotification) -> Notification:
        raise _elsewhere("send_notification")


class PostDeadlineActivities:
    @activity.defn
    async def plan_post_deadline(self, request: PlanPostDeadline) -> PlannedPostDeadline:
        raise _elsewhere("plan_post_deadline")


class PostReadingActivities:
    @activity.defn
    async def read_post(self, request: ReadPost) -> PostState:
        raise _elsewhere("read_post")


class PublicationActivities:
    @activity.defn
    async def publish_statement(self, request: PublishStatement) -> Publication:
        raise _elsewhere("publish_statement")


@activity.defn
async def plan_clock(request: PlanClockRequest) -> Deadline:
    raise _elsewhere("plan_clock")


@activity.defn
async def plan_deadlines(request: PlanDeadlines) -> DeadlinePlan:
    raise _elsewhere("plan_deadlines")
