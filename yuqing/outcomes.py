"""What a decision hands back to its workflow: a refusal, or the side effects to carry out."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

from yuqing.roles import Role


@dataclass(frozen=True)
class Notify:
    """A notice to everyone holding `roles` for the unit concerned; `key` names the step."""

    key: str
    kind: str
    subject: str
    body: str
    roles: list[Role]
    summary: str
    # console (i18n): the notice as data (yuqing.i18n.notices.NoticeText, plain JSON), rendered
    # in each reader's language by the notification activity; subject and body above are the
    # English of older runs, kept for them.
    text: dict[str, Any] | None = None
    # Named people besides the roles (roster ids): the leading group's chosen members, say.
    people: tuple[str, ...] = ()


@dataclass(frozen=True)
class Publish:
    draft_version: int


@dataclass(frozen=True)
class StartPost:
    """Start the child workflow of a netizen post (SPEC §4)."""

    post_id: str


@dataclass(frozen=True)
class SignalPosts:
    """Pass a signal on to the child workflows of these posts."""

    post_ids: list[str]
    signal: str
    payload: dict[str, Any]


@dataclass(frozen=True)
class PlanDeadline:
    """Compute (or compute again) a working-time deadline's due time in an activity."""

    key: str
    working_days: int | None = None
    reason: str = ""


@dataclass(frozen=True)
class FixMoreEvidence:
    """Fix the evidence of a later report, numbering it from `first_index`."""

    first_index: int
    items: list[dict[str, Any]]


@dataclass(frozen=True)
class PlanClock:
    """Plan, in an activity, a calendar-hour deadline starting at `starts_at`: an approval
    step's own clock, or a statement deadline that came back (yuqing.rules.clocks)."""

    key: str
    title: str
    starts_at: datetime
    hours: float
    # Hours after the start at which to remind; None: the policy's reminder points.
    remind_after: tuple[float, ...] | None
    remind: tuple[Role, ...]
    escalate_to: tuple[Role, ...]
    responsible_unit: str
    responsible_person: str | None
    summary: str


Effect = Notify | Publish | StartPost | SignalPosts | PlanDeadline | FixMoreEvidence | PlanClock


class RefusalKind(StrEnum):
    """Why a signal was refused, for callers that answer in kind (HTTP 422, 403, 409)."""

    malformed = "malformed"  # the payload does not parse; the field is named
    forbidden = "forbidden"  # the sender lacks the role, or holds it for another unit
    conflict = "conflict"  # wrong stage, stale draft version, already done
    unknown = "unknown"  # a signal this workflow does not take


class Refused(Exception):
    """Raised inside a decision to refuse the signal; the state is left as it was."""

    def __init__(self, reason: str, kind: RefusalKind = RefusalKind.conflict) -> None:
        super().__init__(reason)
        self.kind = kind


@dataclass
class Outcome:
    refusal: Refused | None = None
    effects: list[Effect] = field(default_factory=list)
