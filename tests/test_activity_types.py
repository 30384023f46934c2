"""The workflows call each activity through workflows/activity_types.py: same name, same
parameters, same result as the one the worker registers, or the workflow would schedule an
activity nobody runs, or read its result as the wrong type."""

from __future__ import annotations

import inspect
from typing import Any, get_type_hints

from temporalio import activity

import activities
from activities.audit import AuditActivities
from activities.configuration import ConfigurationActivities
from activities.drill_sink import DrillSinkActivities
from activities.evidence import EvidenceActivities
from activities.notifications import NotificationActivities
from activities.post_deadlines import PostDeadlineActivities
from activities.post_reading import PostReadingActivities
from activities.publications import PublicationActivities
from workflows import activity_types


def _definitions() -> dict[str, tuple[Any, Any]]:
    real: dict[str, Any] = {}
    for holder in (
        AuditActivities,
        ConfigurationActivities,
        DrillSinkActivities,
        EvidenceActivities,
        NotificationActivities,
        PostDeadlineActivities,
        PostReadingActivities,
        PublicationActivities,
    ):
        typed = getattr(activity_types, holder.__name__)
        for name, fn in vars(holder).items():
            if activity._Definition.from_callable(fn) is not None:
                real[name] = (fn, getattr(typed, name, None))
    real["plan_clock"] = (activities.plan_clock, activity_types.plan_clock)
    real["plan_deadlines"] = (activities.plan_deadlines, activity_types.plan_deadlines)
    return real


def _shape(fn: Any) -> tuple[str, list[Any], Any]:
    """A registered activity's name, the types of its parameters, its result type."""
    defined = activity._Definition.must_from_callable(fn)
    hints = get_type_hints(fn)
    params = [
        hints.get(p.name) for p in inspect.signature(fn).parameters.values() if p.name != "self"
    ]
    return defined.name, params, hints.get("return")


def test_the_workflows_call_every_activity_as_the_worker_registers_it() -> None:
    found = _definitions()
    assert len(found) >= 16  # every activity the workflows schedule
    for name, (real, typed) in found.items():
        assert typed is not None, f"workflows/activity_types.py lacks {name}"
        assert (typed.name, [typed.takes], typed.gives) == _shape(real), name
