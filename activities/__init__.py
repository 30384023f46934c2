"""Activities: every piece of I/O the incident workflow needs, each idempotent."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import asyncpg

from activities.audit import AuditActivities
from activities.clocks import plan_clock
from activities.configuration import ConfigurationActivities, ConfigurationSnapshots
from activities.deadlines import plan_deadlines
from activities.drill_sink import DrillSinkActivities, DrillStore, PostgresDrillStore
from activities.evidence import EvidenceActivities
from activities.notifications import NotificationActivities
from activities.post_deadlines import PostDeadlineActivities
from activities.post_reading import PostReadingActivities
from activities.publications import PublicationActivities
from yuqing.channels import load_channels
from yuqing.settings import Settings


def all_activities(
    settings: Settings, pool: asyncpg.Pool, drill_store: DrillStore | None = None
) -> list[Callable[..., Any]]:
    """The activity functions a worker registers, bound to this process's settings and pool
    (and, for a simulation, the drill sink in memory)."""
    channels = load_channels(settings.channels_path)
    snapshots = ConfigurationSnapshots(pool)
    configuration = ConfigurationActivities(settings, snapshots)
    return [
        configuration.load_configuration,
        configuration.load_snapshot,
        configuration.load_keys,
        EvidenceActivities(pool).fix_evidence,
        plan_deadlines,
        NotificationActivities(
            pool,
            channels,
            notice_language=settings.notice_language,
            console_url=settings.console_url,
        ).send_notification,
        PublicationActivities(
            pool, settings.statement_base_url, channels, snapshots
        ).publish_statement,
        PostDeadlineActivities(settings).plan_post_deadline,
        AuditActivities(pool).record_trail,
        AuditActivities(pool).start_archiver,
        AuditActivities(pool).archive_history,
        PostReadingActivities().read_post,
        *plan_activities(drill_store or PostgresDrillStore(pool), snapshots),
    ]


def plan_activities(
    store: DrillStore, snapshots: ConfigurationSnapshots
) -> list[Callable[..., Any]]:
    """The clocks that start mid-incident, and the drill sink (yuqing.rules, yuqing.drill)."""
    sink = DrillSinkActivities(store, snapshots)
    return [plan_clock, sink.drill_notice, sink.drill_statement, sink.drill_evidence]
