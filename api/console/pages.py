"""Rendering: the Jinja2 environment, the reader's language, and what every page is given.

Templates autoescape everything; the pages load nothing but this package's own stylesheet
(the content-security policy says so), and name a CJK font stack.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlencode

from fastapi import Request
from fastapi.responses import HTMLResponse
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

from api.console.session import LANG_COOKIE, Session
from yuqing import i18n
from yuqing.i18n.render import RosterNames, local_times
from yuqing.i18n.render import render as render_message
from yuqing.listing import Light
from yuqing.roster import Person, Roster
from yuqing.working_time import OfficeHours, WorkingCalendar, load_calendar

HERE = Path(__file__).parent
HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Cache-Control": "no-store",
}

templates = Environment(
    loader=FileSystemLoader(HERE / "templates"),
    autoescape=select_autoescape(("html",)),
    undefined=StrictUndefined,
    trim_blocks=True,
    lstrip_blocks=True,
)


def reader_language(request: Request) -> i18n.Lang:
    """The switch's choice (a cookie) if made, else the browser's Accept-Language."""
    return i18n.chosen(request.cookies.get(LANG_COOKIE), request.headers.get("accept-language"))


@dataclass(frozen=True)
class Reader:
    """Who reads the page and in which language: the helpers every template uses."""

    lang: i18n.Lang
    roster: Roster
    calendar: WorkingCalendar
    now: datetime

    def t(self, key: str, **params: Any) -> str:
        return i18n.t(key, self.lang, **params)

    def label(self, prefix: str, value: str | None) -> str:
        return i18n.label(prefix, value, self.lang)

    def when(self, moment: datetime | None) -> str:
        return i18n.when(moment, self.lang)

    def person(self, person_id: str | None) -> str:
        if not person_id:
            return ""
        if person_id == "automatic":
            return self.t("person.automatic")
        found = self.roster.person(person_id)
        return found.name if found else person_id

    def unit(self, unit_id: str | None) -> str:
        return self.roster.unit_name(unit_id, self.lang) if unit_id else ""

    def deadline(self, key: str, title: str = "") -> str:
        named = f"deadline.{key}"
        return self.t(named) if i18n.has(named) else (title or key)

    def left(self, due_at: datetime, clock: str) -> str:
        """`剩 2 小时 05 分（日历时间）` or `已超时 …`, on the clock's own kind of time."""
        working = clock.startswith("working")
        if working:
            try:
                amount = self.calendar.working_hours_between(self.now, due_at)
            except ValueError:
                working, amount = False, due_at - self.now
        else:
            amount = due_at - self.now
        kind: Literal["working", "calendar"] = "working" if working else "calendar"
        if amount.total_seconds() < 0:
            return self.t("clock.overdue", span=i18n.span(-amount, self.lang, kind))
        return self.t("clock.left", span=i18n.span(amount, self.lang, kind))

    def light(self, light: Light | str) -> str:
        return self.t(f"light.{light}")

    def says(self, entry: Any) -> str:
        """A trail line in the reader's language: its message if it keeps one, else the text
        it was recorded with (lines from before messages existed)."""
        message = getattr(entry, "message", None)
        if message is None:
            return local_times(str(entry.detail), self.lang)
        return render_message(message, self.lang, RosterNames(self.roster))


def calendar_for(office_hours: str, override: Path | None) -> WorkingCalendar:
    return load_calendar(override, OfficeHours.parse(office_hours), provisional=True)


def render(
    request: Request,
    name: str,
    *,
    reader: Reader,
    session: Session | None,
    me: Person | None,
    status_code: int = 200,
    **context: Any,
) -> HTMLResponse:
    template = templates.get_template(name)
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    html = template.render(
        r=reader,
        t=reader.t,
        lang=reader.lang,
        me=me,
        csrf=session.csrf if session else "",
        here=path,
        other_lang="en" if reader.lang == "zh" else "zh",
        query=lambda **params: urlencode({k: v for k, v in params.items() if v}),
        **context,
    )
    return HTMLResponse(html, status_code=status_code, headers=HEADERS)


def now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Piece:
    op: str  # same, add, del
    text: str


def diff(old: str, new: str) -> list[Piece]:
    """What changed from `old` to `new`, character by character (Chinese has no spaces), or
    line by line for long texts."""
    if len(old) + len(new) > 20000:
        a: list[str] = old.splitlines(keepends=True)
        b: list[str] = new.splitlines(keepends=True)
    else:
        a, b = list(old), list(new)
    pieces: list[Piece] = []
    matcher = difflib.SequenceMatcher(None, a, b, autojunk=False)
    for op, i1, i2, j1, j2 in matcher.get_opcodes():
        if op == "equal":
            pieces.append(Piece("same", "".join(a[i1:i2])))
            continue
        if i2 > i1:
            pieces.append(Piece("del", "".join(a[i1:i2])))
        if j2 > j1:
            pieces.append(Piece("add", "".join(b[j1:j2])))
    return pieces
