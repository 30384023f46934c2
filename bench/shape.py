"""The shape of a workflow's life, read from a real history, for a bare workflow to copy.

A history is a sequence of workflow tasks, each answering what happened since the last one
(an update arrived, an activity completed, a timer fired) with commands (schedule activities,
start or cancel timers, upsert search attributes or the memo, complete an update). The shape
keeps exactly that, and nothing of what the payloads say:

- every activity, local activity and timer as a node, with its *trigger*: the update, or the
  node whose completion, the workflow task that made it answered;
- each timer cancellation, search-attribute upsert and memo upsert with its trigger;
- for each update (in arrival order), the trigger of the task that completed it;
- the number of patch markers.

`bench.bare` interprets a shape: the same counts of updates, activities, local activities,
timers, upserts and markers, in the same causal order, with no decision code and tiny activity
payloads. So when Yuqing's workflow changes, the bare workflow of the bench changes with it.

A trigger is `start`, `u<i>` (the i-th update accepted), `n<event id>` (the completion of the
activity scheduled at that event) or `t<event id>` (the timer started there, fired).
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History
from temporalio.converter import decode_typed_search_attributes


@dataclass
class Node:
    id: str
    kind: str  # "activity", "local" or "timer"
    name: str
    trigger: str
    seconds: float = 0.0  # a timer's duration


@dataclass
class Shape:
    updates: int = 0
    signals: int = 0
    patches: int = 0
    nodes: list[Node] = field(default_factory=list)
    # (timer node id, trigger)
    cancels: list[tuple[str, str]] = field(default_factory=list)
    # (trigger, [(name, indexed value type name, value)])
    upserts: list[tuple[str, list[tuple[str, str, Any]]]] = field(default_factory=list)
    memos: list[str] = field(default_factory=list)
    # update index -> trigger of the workflow task that completed it
    answers: list[str] = field(default_factory=list)
    # What the history held, for the report: events and bytes of the source history.
    events: int = 0
    bytes: int = 0
    event_types: dict[str, int] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False, indent=1)

    @classmethod
    def from_json(cls, text: str) -> Shape:
        data = json.loads(text)
        data["nodes"] = [Node(**n) for n in data["nodes"]]
        data["cancels"] = [tuple(c) for c in data["cancels"]]
        data["upserts"] = [
            (trigger, [tuple(a) for a in attributes]) for trigger, attributes in data["upserts"]
        ]
        return cls(**data)

    @classmethod
    def load(cls, path: Path) -> Shape:
        return cls.from_json(path.read_text(encoding="utf-8"))

    def activity_names(self) -> Counter[str]:
        return Counter(n.name for n in self.nodes if n.kind == "activity")

    def describe(self) -> str:
        kinds = Counter(n.kind for n in self.nodes)
        names = ", ".join(f"{name} x{count}" for name, count in self.activity_names().items())
        return (
            f"{self.updates} updates, {self.signals} signals, {kinds['activity']} activities"
            f" ({names}), {kinds['local']} local activities, {kinds['timer']} timers"
            f" ({len(self.cancels)} cancelled), {len(self.upserts)} search-attribute upserts,"
            f" {len(self.memos)} memo upserts, {self.patches} patch markers;"
            f" source history {self.events} events, {self.bytes} bytes"
        )


_WFT_COMPLETED = EventType.EVENT_TYPE_WORKFLOW_TASK_COMPLETED
_COMPLETIONS = {
    EventType.EVENT_TYPE_ACTIVITY_TASK_COMPLETED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_FAILED,
    EventType.EVENT_TYPE_ACTIVITY_TASK_TIMED_OUT,
    EventType.EVENT_TYPE_ACTIVITY_TASK_CANCELED,
}


def shape_of(history: History) -> Shape:
    """Read the shape of one run's history (see the module's docstring)."""
    shape = Shape(events=len(history.events), bytes=history.ByteSize())
    shape.event_types = dict(
        Counter(EventType.Name(e.event_type).removeprefix("EVENT_TYPE_") for e in history.events)
    )
    # The trigger of the workflow task whose commands follow; set at each WORKFLOW_TASK_COMPLETED
    # from what happened since the previous one.
    pending = "start"
    trigger = "start"
    update_ids: dict[str, int] = {}
    for event in history.events:
        kind = event.event_type
        if kind in _COMPLETIONS:
            attrs = _attributes(event)
            pending = f"n{attrs.scheduled_event_id}"
        elif kind == EventType.EVENT_TYPE_TIMER_FIRED:
            pending = f"t{event.timer_fired_event_attributes.started_event_id}"
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_SIGNALED:
            shape.signals += 1
        elif kind == _WFT_COMPLETED:
            trigger = pending
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_ACCEPTED:
            # Accepted in the task just completed: that task (and its commands) answered it.
            attrs = event.workflow_execution_update_accepted_event_attributes
            index = shape.updates
            update_ids[attrs.protocol_instance_id] = index
            shape.updates += 1
            shape.answers.append("")
            trigger = f"u{index}"
            pending = trigger
        elif kind == EventType.EVENT_TYPE_WORKFLOW_EXECUTION_UPDATE_COMPLETED:
            attrs = event.workflow_execution_update_completed_event_attributes
            index = update_ids[attrs.meta.update_id]
            shape.answers[index] = trigger
        elif kind == EventType.EVENT_TYPE_ACTIVITY_TASK_SCHEDULED:
            name = event.activity_task_scheduled_event_attributes.activity_type.name
            shape.nodes.append(Node(f"n{event.event_id}", "activity", name, trigger))
        elif kind == EventType.EVENT_TYPE_TIMER_STARTED:
            attrs = event.timer_started_event_attributes
            seconds = attrs.start_to_fire_timeout.ToTimedelta().total_seconds()
            shape.nodes.append(Node(f"t{event.event_id}", "timer", "timer", trigger, seconds))
        elif kind == EventType.EVENT_TYPE_TIMER_CANCELED:
            attrs = event.timer_canceled_event_attributes
            shape.cancels.append((f"t{attrs.started_event_id}", trigger))
        elif kind == EventType.EVENT_TYPE_MARKER_RECORDED:
            marker = event.marker_recorded_event_attributes.marker_name
            if marker == "core_local_activity":
                shape.nodes.append(Node(f"l{event.event_id}", "local", marker, trigger))
            else:
                shape.patches += 1
        elif kind == EventType.EVENT_TYPE_UPSERT_WORKFLOW_SEARCH_ATTRIBUTES:
            attrs = event.upsert_workflow_search_attributes_event_attributes
            typed = decode_typed_search_attributes(attrs.search_attributes)
            values = [
                (pair.key.name, pair.key.indexed_value_type.name, pair.value)
                for pair in typed.search_attributes
            ]
            shape.upserts.append((trigger, values))
        elif kind == EventType.EVENT_TYPE_WORKFLOW_PROPERTIES_MODIFIED:
            shape.memos.append(trigger)
    if any(not answer for answer in shape.answers):
        raise ValueError("an update of the source history was never completed")
    return shape


def _attributes(event: Any) -> Any:
    for name in (
        "activity_task_completed_event_attributes",
        "activity_task_failed_event_attributes",
        "activity_task_timed_out_event_attributes",
        "activity_task_canceled_event_attributes",
    ):
        if event.HasField(name):
            return getattr(event, name)
    raise ValueError(f"event {event.event_id} is no activity completion")


# The shape a bare worker's runs follow: set once, before its worker starts.
_current = Shape()


def set_current(shape: Shape) -> None:
    global _current
    _current = shape


def current() -> Shape:
    return _current
