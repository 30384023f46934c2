"""Texts kept as data: a message key and its parameters, rendered in the reader's language.

A decision records what happened as `Message(key, params)`; whoever shows it (the console, a
notice, the audit page) renders it with `render(message, lang, names)`. A parameter is shown
by what its name says it is: `person` by the roster's name, `unit` by the unit's name,
`deadline` by the deadline's name, `stage`, `grade`, `role`, `channel` by theirs, `due`, `at`
and names ending in `_at` in Beijing time, labelled; anything else as given. Lines recorded
before messages existed keep their text and render as that text.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any, Protocol

from pydantic import BaseModel, Field

from yuqing import i18n

# Parameter name → catalog family of its value.
FAMILIES = {
    "stage": "stage",
    "grade": "grade",
    "from_grade": "grade",
    "to_grade": "grade",
    "role": "role",
    "step": "role",
    "channel": "channel",
    "intake": "intake",
    "sensitivity": "sensitivity",
    "kind": "notice",
    "evidence_kind": "evidence",
    "decision": "decision",
    "status": "post",
    "criteria": "criterion",
}


class Names(Protocol):
    """Where names come from: the roster (people, units)."""

    def person_name(self, person_id: str) -> str: ...

    def unit_name(self, unit_id: str, lang: str) -> str: ...


class Message(BaseModel):
    """A text as data: its catalog key and the values it is filled with (plain JSON)."""

    key: str
    params: dict[str, Any] = Field(default_factory=dict)


def _value(
    name: str, value: Any, lang: str, names: Names | None, given: Mapping[str, Any] | None = None
) -> str:
    if value is None:
        return "—"  # e.g. no person answers for it: said, not left blank
    if isinstance(value, Mapping) and "key" in value:
        return render(value, lang, names)  # a part of the line said on its own (a reason)
    if isinstance(value, list):
        return i18n.t("list.separator", lang).join(
            _value(name, v, lang, names, given) for v in value
        )
    if name in ("person", "people") or name.endswith("_person"):
        return names.person_name(str(value)) if names else str(value)
    if name == "unit" or name.endswith("_unit"):
        return names.unit_name(str(value), lang) if names else str(value)
    if name == "deadline":
        # A deadline the catalog does not name (a step's clock, a newer policy's) by its title.
        named = f"deadline.{value}"
        if i18n.has(named):
            return i18n.t(named, lang)
        title = (given or {}).get("deadline_title")
        return str(title) if title else str(value)
    if name in FAMILIES:
        return i18n.label(FAMILIES[name], str(value), lang)
    if name in ("due", "at") or name.endswith("_at"):
        moment = datetime.fromisoformat(value) if isinstance(value, str) else value
        return i18n.when(moment, lang) if isinstance(moment, datetime) else str(value)
    if name.endswith("_seconds"):
        amount = timedelta(seconds=float(value))
        if name.startswith("working"):
            return i18n.span(amount, lang, "working")
        return i18n.span(amount, lang, "calendar")
    return str(value)


def render(message: Message | Mapping[str, Any], lang: str, names: Names | None = None) -> str:
    """The message in `lang`, its parameters shown by what they are."""
    if not isinstance(message, Message):
        message = Message.model_validate(message)
    given = message.params
    params = {k: _value(k, v, lang, names, given) for k, v in given.items()}
    try:
        return i18n.t(message.key, lang, **params)
    except (KeyError, IndexError, ValueError):
        # A key whose text names a parameter the record lacks: show what there is.
        return f"{i18n.t(message.key, lang)} {params}"


# A time as the trail's plain texts write it (decider.moment, isoformat): with its offset.
_STAMP = re.compile(r"\b\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:[+-]\d{2}:\d{2}|Z)")


def local_times(text: str, lang: str) -> str:
    """A line kept as plain text (recorded before messages, or free text) with every time in
    it shown in Beijing time, labelled: `due 2026-12-01T06:30+00:00` reads `due 2026-12-01
    14:30（北京时间）`. What the trail stores is unchanged."""

    def shown(match: re.Match[str]) -> str:
        try:
            moment = datetime.fromisoformat(match[0].replace("Z", "+00:00"))
        except ValueError:
            return match[0]
        return i18n.when(moment, lang, seconds=moment.second != 0)

    return _STAMP.sub(shown, text)


class RosterNames:
    """Names from a roster: a person by their name, a unit by its name in the language."""

    def __init__(self, roster: Any) -> None:
        self._roster = roster

    def person_name(self, person_id: str) -> str:
        if person_id == "automatic":
            return i18n.t("person.automatic")
        person = self._roster.person(person_id)
        return str(person.name) if person is not None else person_id

    def unit_name(self, unit_id: str, lang: str) -> str:
        return str(self._roster.unit_name(unit_id, lang))
