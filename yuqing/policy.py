"""The plan as data (SPEC §7): grades, chains, deadlines, reminders and escalation targets.

A policy file is validated in full when the worker starts; a malformed or inconsistent one
stops start-up with an error that names the offending entry.
"""

from __future__ import annotations

from datetime import timedelta
from enum import StrEnum
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from yuqing.models import Grade, PublicationChannel, Sensitivity
from yuqing.roles import OUTSIDE_BODIES, Role
from yuqing.toml_files import load_toml_model

APPROVAL_SIGNALS = (
    "unit_head_approval",
    "section_head_review",
    "publicity_lead_approval",
    "leadership_group_approval",
)


class PolicyError(ValueError):
    """The policy file cannot be used; the message names the file and what is wrong."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DeadlineKey(StrEnum):
    report_important = "report_important"
    report_especially_major = "report_especially_major"
    publish_statement = "publish_statement"


class DeadlineRule(_Strict):
    title: str
    hours: float = Field(gt=0, description="calendar hours from discovery")
    clock: Literal["calendar_hours"] = "calendar_hours"
    sensitivity: Sensitivity | None = Field(
        default=None, description="applies only to incidents of this sensitivity"
    )
    met_by: Literal["report", "publication"]
    remind: list[Role] = Field(min_length=1)
    escalate_to: list[Role] = Field(min_length=1)

    @property
    def duration(self) -> timedelta:
        return timedelta(hours=self.hours)


class Reminders(_Strict):
    at_fractions: list[float] = Field(default_factory=lambda: [0.5])
    hours_before: list[float] = Field(default_factory=lambda: [1.0])

    @model_validator(mode="after")
    def _in_range(self) -> Reminders:
        for fraction in self.at_fractions:
            if not 0 < fraction < 1:
                raise ValueError(f"reminder fraction {fraction} must lie strictly between 0 and 1")
        for hours in self.hours_before:
            if hours <= 0:
                raise ValueError(f"reminder {hours} h before must be positive")
        return self


class ChainStep(_Strict):
    role: Role
    signal: str
    title: str
    # How long a draft may wait at this step (§5.2 "贻误时机"): its approver is reminded after
    # `remind_after_hours` and the step is escalated to `escalate_to` after
    # `escalate_after_hours`, both counted from the draft's arrival at the step.
    remind_after_hours: float | None = Field(default=None, gt=0)
    escalate_after_hours: float | None = Field(default=None, gt=0)
    escalate_to: list[Role] = Field(default_factory=list)

    @model_validator(mode="after")
    def _known_signal(self) -> ChainStep:
        if self.signal not in APPROVAL_SIGNALS:
            raise ValueError(
                f"unknown approval signal {self.signal!r}; use one of {', '.join(APPROVAL_SIGNALS)}"
            )
        return self

    @model_validator(mode="after")
    def _clock_consistent(self) -> ChainStep:
        remind, escalate = self.remind_after_hours, self.escalate_after_hours
        if remind is not None and escalate is None:
            raise ValueError("remind_after_hours needs escalate_after_hours too")
        if escalate is not None and not self.escalate_to:
            raise ValueError("escalate_after_hours needs escalate_to (who is told)")
        if self.escalate_to and escalate is None:
            raise ValueError("escalate_to needs escalate_after_hours (when they are told)")
        if remind is not None and escalate is not None and remind >= escalate:
            raise ValueError(
                f"remind_after_hours ({remind:g}) must come before escalate_after_hours "
                f"({escalate:g})"
            )
        return self

    @property
    def clocked(self) -> bool:
        return self.escalate_after_hours is not None


class GroupRule(_Strict):
    """How the leading group decides for one grade (§3, §5.1).

    `any`: any one member decides (one approval or one rejection is the group's answer);
    `head`: the head (组长) alone decides; `quorum`: `quorum` of the incident's chosen members
    must approve, and the wait ends as soon as that can no longer happen; `all`: every chosen
    member must approve, so one rejection ends the wait at once.
    """

    decides: Literal["any", "head", "quorum", "all"] = "any"
    quorum: int | None = Field(default=None, ge=1)

    @model_validator(mode="after")
    def _quorum_where_needed(self) -> GroupRule:
        if self.decides == "quorum" and self.quorum is None:
            raise ValueError('decides = "quorum" needs quorum = N (how many must approve)')
        if self.decides != "quorum" and self.quorum is not None:
            raise ValueError(
                f'quorum is only meaningful with decides = "quorum", not {self.decides!r}'
            )
        return self

    def describe(self) -> str:
        if self.decides == "quorum":
            return f"{self.quorum} of its members"
        return {"any": "any one member", "head": "its head alone", "all": "every member"}[
            self.decides
        ]


class Grading(_Strict):
    weibo_repost_threshold: int = Field(gt=0)
    cross_district_threshold: int = Field(
        default=2, ge=2, description="districts that make an incident reach across districts"
    )


class PostRules(_Strict):
    """Netizen posts (SPEC §3, §4): working-time clocks, non-working time not counted."""

    initial_response_working_hours: float = Field(default=3, gt=0)
    formal_reply_working_days: int = Field(default=5, gt=0)
    max_working_days: int = Field(default=10, gt=0)
    remind: list[Role] = Field(default_factory=lambda: [Role.unit, Role.unit_head])
    escalate_to: list[Role] = Field(default_factory=lambda: [Role.unit_head])
    # The department leader who approves a formal reply (部门领导).
    reply_approver: Role = Role.unit_head
    # Set only in a drill's policy (Policy.scaled): its posts count elapsed time, this many
    # times faster, instead of working time.
    drill_speed: float | None = Field(default=None, gt=0)

    @model_validator(mode="after")
    def _extension_fits(self) -> PostRules:
        if self.max_working_days < self.formal_reply_working_days:
            raise ValueError("max_working_days must be at least formal_reply_working_days")
        return self


class Policy(_Strict):
    version: str = Field(min_length=1)
    name: str
    source: str
    grading: Grading
    deadlines: dict[DeadlineKey, DeadlineRule]
    reminders: Reminders = Field(default_factory=Reminders)
    chains: dict[Grade, list[ChainStep]]
    report_recipients: list[Role] = Field(min_length=1)
    major_notice_recipients: list[Role] = Field(min_length=1)
    publication_channels: list[PublicationChannel] = Field(min_length=1)
    posts: PostRules = Field(default_factory=PostRules)
    # §4.3 (reading): "no response needed" waives the statement deadline only with the
    # approval of this role, per grade.
    no_response_approvers: dict[Grade, Role] = Field(
        default_factory=lambda: {
            Grade.general: Role.publicity_lead,
            Grade.major: Role.leadership_group,
        }
    )
    # §3, §5.1: how the leading group decides, per grade. Without the table (policies
    # written before it), any one member decides, as before.
    leading_group: dict[Grade, GroupRule] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _consistent(self) -> Policy:
        for grade in Grade:
            steps = self.chains.get(grade)
            if not steps:
                raise ValueError(f"chains.{grade} is missing: every grade needs an approval chain")
            signals = [step.signal for step in steps]
            if len(set(signals)) != len(signals):
                raise ValueError(f"chains.{grade} names one signal twice")
        for sensitivity in Sensitivity:
            if not any(rule.sensitivity == sensitivity for rule in self.deadlines.values()):
                raise ValueError(f"no report deadline applies to sensitivity {sensitivity}")
        for grade in Grade:
            if grade not in self.no_response_approvers:
                raise ValueError(f"no_response_approvers.{grade} is missing")
            approver = self.no_response_approvers[grade]
            if approver in OUTSIDE_BODIES:
                raise ValueError(f"no_response_approvers.{grade}: {approver} is outside the bureau")
        return self

    def chain(self, grade: Grade) -> list[ChainStep]:
        return list(self.chains[grade])

    def group_rule(self, grade: Grade) -> GroupRule:
        return self.leading_group.get(grade, GroupRule())

    def scaled(self, speed: float) -> Policy:
        """The same policy with every calendar-hour clock running `speed` times faster.

        For drills (§5.3): a speed of 12 makes a 4 h deadline fall due in 20 minutes. The
        version says so, so that a drill's record never passes for a real incident's.
        """
        if speed == 1:
            return self
        if not speed > 0:
            raise PolicyError(f"a drill's speed must be positive, got {speed}")

        def faster(hours: float | None) -> float | None:
            return None if hours is None else hours / speed

        deadlines = {
            key: rule.model_copy(update={"hours": rule.hours / speed})
            for key, rule in self.deadlines.items()
        }
        reminders = self.reminders.model_copy(
            update={"hours_before": [h / speed for h in self.reminders.hours_before]}
        )
        chains = {
            grade: [
                step.model_copy(
                    update={
                        "remind_after_hours": faster(step.remind_after_hours),
                        "escalate_after_hours": faster(step.escalate_after_hours),
                    }
                )
                for step in steps
            ]
            for grade, steps in self.chains.items()
        }
        return self.model_copy(
            update={
                "version": f"{self.version}+drill×{speed:g}",
                "deadlines": deadlines,
                "reminders": reminders,
                "chains": chains,
                "posts": self.posts.model_copy(update={"drill_speed": speed}),
            }
        )

    def deadlines_for(self, sensitivity: Sensitivity) -> dict[DeadlineKey, DeadlineRule]:
        return {
            key: rule
            for key, rule in self.deadlines.items()
            if rule.sensitivity in (None, sensitivity)
        }


def load_policy(path: Path) -> Policy:
    return load_toml_model(path, Policy, what="policy", error=PolicyError)
