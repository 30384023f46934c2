"""Notices as data: what a decision tells people, rendered in each reader's language at the edge.

A decision says what a notice is (`kind`) and what it is about (`params`: ids, numbers, times),
and names the units and people it mentions from the incident's roster (`names`), so that the
notification activity can render it in Chinese or English without reading anything: the
workflow's history keeps no language. The subject is `notice.subject.<kind>`, the body
`notice.body.<kind>` followed by the link to the incident's console page; parameters render as
`yuqing.i18n.render` says (people and units by name, times in Beijing time, labelled).

This module is imported by the pure core: it does no I/O until it renders.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field

from yuqing.i18n import LANGUAGES, t
from yuqing.i18n.render import Message, render
from yuqing.roster import Roster


class NameBook(BaseModel):
    """The names a notice's parameters need: people by id, units by id and language."""

    people: dict[str, str] = Field(default_factory=dict)
    units: dict[str, dict[str, str]] = Field(default_factory=dict)

    def person_name(self, person_id: str) -> str:
        if person_id == "automatic":
            return t("person.automatic")
        return self.people.get(person_id, person_id)

    def unit_name(self, unit_id: str, lang: str) -> str:
        names = self.units.get(unit_id, {})
        return names.get(lang) or names.get("zh") or unit_id

    @classmethod
    def of(cls, params: dict[str, Any], roster: Roster) -> NameBook:
        """The names of every person and unit named in `params` (by the parameter's name)."""
        book = cls()
        for name, value in params.items():
            values = value if isinstance(value, list) else [value]
            for one in values:
                if not isinstance(one, str):
                    continue
                if name in ("person", "people") or name.endswith("_person"):
                    person = roster.person(one)
                    if person is not None:
                        book.people[one] = person.name
                elif name == "unit" or name.endswith("_unit"):
                    book.units[one] = {lang: roster.unit_name(one, lang) for lang in LANGUAGES}
        return book


class NoticeText(BaseModel):
    """A notice's subject and body as a kind and its parameters, with the names they need."""

    kind: str
    params: dict[str, Any] = Field(default_factory=dict)
    names: NameBook = Field(default_factory=NameBook)

    @classmethod
    def about(cls, kind: str, roster: Roster, **params: Any) -> NoticeText:
        return cls(kind=kind, params=params, names=NameBook.of(params, roster))

    def subject(self, lang: str) -> str:
        return render(
            Message(key=f"notice.subject.{self.kind}", params=self.params), lang, self.names
        )

    def body(self, lang: str, link: str | None = None) -> str:
        text = render(Message(key=f"notice.body.{self.kind}", params=self.params), lang, self.names)
        if link:
            text += "\n\n" + t("notice.link", lang, link=link)
        return text

    def plain(self) -> dict[str, Any]:
        """As plain JSON, for the decisions' effects (which the workflow may carry over)."""
        return self.model_dump(mode="json")


class NoticeCopy(BaseModel):
    """A notice rendered in one language."""

    subject: str
    body: str


def incident_link(console_url: str, incident_id: str) -> str:
    """The incident's page in the console, e.g. `https://yuqing.example/console/incidents/t-1`."""
    return f"{console_url.rstrip('/')}/incidents/{incident_id}"
