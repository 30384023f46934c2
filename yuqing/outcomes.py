"""What a decision hands back to its workflow: a refusal, or the side effects to carry out."""

from __future__ import annotations

from dataclasses import dataclass, field
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


@dataclass(frozen=True)
class Publish:
    draft_version: int


@dataclass(frozen=True)
class StartPost:
    """Start the child workflow of a netizen post (SPEC §4)."""

    post_id: str
    post: dict[str, Any]
    learnt_at: str


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


Effect = Notify | Publish | StartPost | SignalPosts | PlanDeadline


@dataclass
class Outcome:
    refusal: str | None = None
    effects: list[Effect] = field(default_factory=list)


class Refused(Exception):
    """Raised inside a decision to refuse the signal; the state is left as it was."""
