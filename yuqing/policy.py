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
from yuqing.roles import Role
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

    @model_validator(mode="after")
    def _known_signal(self) -> ChainStep:
        if self.signal not in APPROVAL_SIGNALS:
            raise ValueError(
                f"unknown approval signal {self.signal!r}; use one of {', '.join(APPROVAL_SIGNALS)}"
            )
        return self


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
        return self

    def chain(self, grade: Grade) -> list[ChainStep]:
        return list(self.chains[grade])

    def deadlines_for(self, sensitivity: Sensitivity) -> dict[DeadlineKey, DeadlineRule]:
        return {
            key: rule
            for key, rule in self.deadlines.items()
            if rule.sensitivity in (None, sensitivity)
        }


def load_policy(path: Path) -> Policy:
    return load_toml_model(path, Policy, what="policy", error=PolicyError)
