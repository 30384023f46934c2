"""A drill's scenario file (§5.3): the incident as it came, and what people did when.

    name = "西乡塘超市过期牛奶 (2025-11-03)"
    speed = 12                      # clocks 12× faster: a 4 h deadline falls due in 20 min

    [incident]                      # an IncidentReport, without incident_id
    title = "网传西乡塘某超市销售过期牛奶"
    channel = "weibo"
    unit = "xixiangtang-branch"
    discovered_at = 2025-11-03T09:05:00+08:00     # when it happened (the weekday and hour
                                                   # a simulation starts from)
    [[steps]]
    after = "25min"                 # in the incident's own time, from its discovery
    signal = "submit_report"
    payload = { reporter_id = "li.ming", medium = "新浪微博" }   # as on the wire
    [[steps]]
    after = "3h"
    post = "p1"                     # a signal to netizen post p1 instead of the incident
    signal = "initial_response"

The whole example is drills/expired-milk-2025.toml.

Everything is checked when the file is read, each step's payload against its signal's model,
and a problem names the step and the field.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from yuqing.decider import describe
from yuqing.models import POST_SIGNAL_PAYLOADS, SIGNAL_PAYLOADS, DrillMark, IncidentReport
from yuqing.toml_files import load_toml_model

MAX_STEPS = 200
_SPAN = re.compile(r"^\s*(?:(\d+)\s*d)?\s*(?:(\d+)\s*h)?\s*(?:(\d+)\s*min)?\s*(?:(\d+)\s*s)?\s*$")


class ScenarioError(ValueError):
    """The scenario file cannot be used; the message names the file and what is wrong."""


def parse_span(text: str) -> timedelta:
    """`1d2h30min`, `35min`, `90s`, `0min` → a timedelta."""
    match = _SPAN.fullmatch(text) if isinstance(text, str) else None
    if match is None or not any(match.groups()):
        raise ValueError(f"{text!r} is not a time span like 35min, 3h, 1h30min, 2d or 90s")
    days, hours, minutes, seconds = (int(g) if g else 0 for g in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def show_span(span: timedelta) -> str:
    """The inverse of `parse_span`, to the second: `1h30min`, `20min`, `4s`."""
    seconds = round(span.total_seconds())
    sign = "-" if seconds < 0 else ""
    seconds = abs(seconds)
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, seconds = divmod(rest, 60)
    parts = [f"{days}d" if days else "", f"{hours}h" if hours else ""]
    parts += [f"{minutes}min" if minutes else "", f"{seconds}s" if seconds else ""]
    return sign + ("".join(parts) or "0s")


def _relative(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("+")


class Step(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    after: timedelta
    signal: str
    post: str | None = Field(default=None, description="a netizen post's id: signal it instead")
    payload: dict[str, Any] = Field(default_factory=dict)
    note: str = Field(default="", max_length=500)

    @field_validator("after", mode="before")
    @classmethod
    def _span(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.startswith(("P", "-P")):
            return parse_span(value)
        return value  # a timedelta, or its JSON form (ISO 8601 "PT25M", or seconds)

    @model_validator(mode="after")
    def _known_payload(self) -> Step:
        table = POST_SIGNAL_PAYLOADS if self.post else SIGNAL_PAYLOADS
        model = table.get(self.signal)
        if model is None:
            where = "a post" if self.post else "an incident"
            known = ", ".join(table)
            raise ValueError(f"{self.signal!r} is not a signal of {where}; one of {known}")
        try:
            model.model_validate(self.wire_payload(datetime.now(UTC), 1))
        except ValidationError as err:
            raise ValueError(f"payload of {self.signal}: {describe(err)}") from err
        return self

    def wire_payload(
        self, discovered_at: datetime, speed: float, now: datetime | None = None
    ) -> dict[str, Any]:
        """The payload as sent: plain JSON, each `"+2h50min"` time made a moment after the
        incident's discovery (that span `speed` times faster, in a drill), though never after
        `now`, for people ahead of the scenario."""

        def resolve(value: Any, key: str = "") -> Any:
            if _relative(value):
                moment = discovered_at + parse_span(value[1:]) / speed
                # A time something happened cannot lie ahead; a time planned (scheduled_at) can.
                if now is not None and not key.startswith("scheduled"):
                    moment = min(moment, now)
                return moment.isoformat()
            if isinstance(value, datetime):
                return value.isoformat()
            if isinstance(value, dict):
                return {k: resolve(v, k) for k, v in value.items()}
            if isinstance(value, list):
                return [resolve(v) for v in value]
            return value

        return {key: resolve(value, key) for key, value in self.payload.items()}


class Scenario(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=4000)
    speed: float = Field(default=1, gt=0, le=100_000)
    incident: dict[str, Any]
    steps: list[Step] = Field(default_factory=list, max_length=MAX_STEPS)

    @model_validator(mode="after")
    def _consistent(self) -> Scenario:
        if "incident_id" in self.incident:
            raise ValueError("incident.incident_id: a drill's id is made when it starts; drop it")
        if "drill" in self.incident:
            raise ValueError("incident.drill: set by the drill itself; drop it")
        try:
            IncidentReport.model_validate({**self.incident, "incident_id": "scenario"})
        except ValidationError as err:
            raise ValueError(f"incident: {describe(err)}") from err
        for index, (earlier, later) in enumerate(zip(self.steps, self.steps[1:], strict=False)):
            if later.after < earlier.after:
                raise ValueError(
                    f"steps.{index + 1}.after ({show_span(later.after)}) comes before "
                    f"steps.{index}.after ({show_span(earlier.after)}): list the steps in order"
                )
        return self

    @property
    def happened_at(self) -> datetime | None:
        """When the incident was discovered, as the file tells it (None: not told)."""
        value = self.incident.get("discovered_at")
        if value is None:
            return None
        return IncidentReport.model_validate(
            {**self.incident, "incident_id": "scenario"}
        ).discovered_at

    def report(
        self,
        incident_id: str,
        started_by: str,
        *,
        speed: float | None = None,
        discovered_at: datetime | None = None,
    ) -> IncidentReport:
        """The drill's input: the scenario's incident, marked as a drill, discovered now."""
        fields = {k: v for k, v in self.incident.items() if k != "discovered_at"}
        return IncidentReport.model_validate(
            {
                **fields,
                "incident_id": incident_id,
                "discovered_at": discovered_at,
                "submission_id": None,
                "intake_key": None,
                "drill": DrillMark(
                    scenario=self.name, speed=speed or self.speed, started_by=started_by
                ),
            }
        )


def load_scenario(path: Path) -> Scenario:
    return load_toml_model(path, Scenario, what="drill scenario", error=ScenarioError)


def drill_id(path_or_name: str, at: datetime) -> str:
    """`drill-expired-milk-20261201-093000`: the scenario's file name and the start time."""
    stem = Path(path_or_name).stem.lower()
    slug = re.sub(r"[^a-z0-9]+", "-", stem).strip("-")[:30] or "scenario"
    return f"drill-{slug}-{at:%Y%m%d-%H%M%S}"
