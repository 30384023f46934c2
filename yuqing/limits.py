"""Every input's bounds: how long each text may be, how many items a list may hold, which
instants make sense. The models (`yuqing.models`) are built from these types, so the HTTP API,
the starter, e-mail and a plain Temporal client (`temporal` CLI) refuse alike, naming the field
and its limit. The README's "Limits" table lists them.

The bounds came after incidents had begun, and a workflow replays the decisions it took as it
took them: validated with `context=UNBOUNDED`, the models check only what they checked before.
"""

from __future__ import annotations

import math
from collections.abc import Sized
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    BeforeValidator,
    Field,
    GetJsonSchemaHandler,
    ValidationInfo,
)
from pydantic_core import PydanticCustomError

# -- the limits ----------------------------------------------------------------------------------

ID_CHARS = 64  # incident, post and person ids, unit keys
NAME_CHARS = 200  # a title, a platform, a medium, a district, a submission id
URL_CHARS = 2048
NOTE_CHARS = 500  # an approval's comment, a legal basis, an evidence item's description
TEXT_CHARS = 2000  # a summary, the facts of a report, a reason, a post's content, a review
STATEMENT_CHARS = 5000  # a draft statement, a legal opinion, a reply to a post
LIST_ITEMS = 50  # districts, media, units involved, posts left open
EVIDENCE_ITEMS = 20  # evidence items in one report
# What one incident takes in all: its state (and the input of its next run, when it continues
# as new) stays well under 1 MB whatever is sent (tests/test_limits.py measures the worst case).
DRAFTS_MAX = 20
OPINIONS_MAX = 20
POSTS_MAX = 50
EVIDENCE_MAX = 50
REPORTS_MAX = 100
# One evidence item's content, fixed in PostgreSQL before the incident starts (the HTTP API and
# the e-mail intake store it first; only its reference and SHA-256 travel through Temporal).
EVIDENCE_BYTES = 25_000_000
# Evidence carried inside a workflow input or signal (a plain Temporal client has no database
# to store it in first): all items of one report together.
INLINE_EVIDENCE_BYTES = 256 * 1024
COUNT_MAX = 10**12  # a repost count
DRAFT_VERSION_MAX = 1000
WORKING_DAYS_MAX = 100

# Instants: a discovery, a capture or a post learnt of, against the clock of whoever checks it
# (the real clock at the door, `workflow.now()` inside the workflow).
FUTURE_SLACK = timedelta(minutes=10)
PAST_LIMIT = timedelta(days=366)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)
LATEST = datetime(2100, 1, 1, tzinfo=UTC)

UNBOUNDED = {"unbounded": True}


def _unbounded(info: ValidationInfo) -> bool:
    return bool(info.context and info.context.get("unbounded"))


@dataclass(frozen=True)
class MaxChars:
    """The documented maximum of a text field (read by the test that every text has one)."""

    chars: int

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        found = handler(schema)
        found["maxLength"] = self.chars
        return found


@dataclass(frozen=True)
class MaxItems:
    items: int

    def __get_pydantic_json_schema__(self, schema: Any, handler: GetJsonSchemaHandler) -> Any:
        found = handler(schema)
        found["maxItems"] = self.items
        return found


# -- text ----------------------------------------------------------------------------------------


def text_problem(value: str) -> str | None:
    """Why `value` cannot be kept as text (in PostgreSQL, in UTF-8), or None."""
    if "\x00" in value:
        return "text contains a NUL character (U+0000)"
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return "text contains a lone surrogate (e.g. \\ud800): it is not Unicode text"
    return None


def _text_check(max_chars: int) -> Any:
    def check(value: str, info: ValidationInfo) -> str:
        if _unbounded(info):
            return value
        problem = text_problem(value)
        if problem is not None:
            raise PydanticCustomError("text_invalid", problem)
        if len(value) > max_chars:
            raise PydanticCustomError(
                "string_too_long",
                "at most {max_chars} characters (this one has {length})",
                {"max_chars": max_chars, "length": len(value)},
            )
        return value

    return AfterValidator(check)


def _items_check(max_items: int) -> Any:
    def check(value: Sized, info: ValidationInfo) -> Sized:
        if not _unbounded(info) and len(value) > max_items:
            raise PydanticCustomError(
                "too_long",
                "at most {max_items} items (this one has {length})",
                {"max_items": max_items, "length": len(value)},
            )
        return value

    return AfterValidator(check)


_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$"

# The text types every model is built from; each carries its documented maximum.
WorkflowKey = Annotated[
    str, Field(pattern=_ID_PATTERN), _text_check(ID_CHARS), MaxChars(ID_CHARS)
]  # an incident's or a post's id
PersonId = Annotated[
    str, Field(min_length=1), _text_check(ID_CHARS), MaxChars(ID_CHARS)
]  # a roster person's id, a unit's key
Name = Annotated[str, Field(min_length=1), _text_check(NAME_CHARS), MaxChars(NAME_CHARS)]
Url = Annotated[str, _text_check(URL_CHARS), MaxChars(URL_CHARS)]
IntakeKey = Annotated[str, _text_check(URL_CHARS + NAME_CHARS), MaxChars(URL_CHARS + NAME_CHARS)]
Note = Annotated[str, _text_check(NOTE_CHARS), MaxChars(NOTE_CHARS)]
Words = Annotated[str, _text_check(TEXT_CHARS), MaxChars(TEXT_CHARS)]
Said = Annotated[str, Field(min_length=1), _text_check(TEXT_CHARS), MaxChars(TEXT_CHARS)]
Statement = Annotated[
    str, Field(min_length=1), _text_check(STATEMENT_CHARS), MaxChars(STATEMENT_CHARS)
]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$"), _text_check(64), MaxChars(64)]
EvidenceText = Annotated[str, _text_check(EVIDENCE_BYTES), MaxChars(EVIDENCE_BYTES)]
BASE64_CHARS = (EVIDENCE_BYTES + 2) // 3 * 4
EvidenceBase64 = Annotated[str, _text_check(BASE64_CHARS), MaxChars(BASE64_CHARS)]
Names = Annotated[list[Name], _items_check(LIST_ITEMS), MaxItems(LIST_ITEMS)]
SomeNames = Annotated[
    list[Name], Field(min_length=1), _items_check(LIST_ITEMS), MaxItems(LIST_ITEMS)
]


# -- strict values -------------------------------------------------------------------------------


def _strict_bool(value: Any, info: ValidationInfo) -> Any:
    if value is None or isinstance(value, bool) or _unbounded(info):
        return value
    raise PydanticCustomError(
        "bool_type", "must be true or false (a JSON boolean), not {value}", {"value": repr(value)}
    )


def _whole_number(most: int) -> Any:
    def check(value: Any, info: ValidationInfo) -> Any:
        if value is None or _unbounded(info):
            return value
        if isinstance(value, float) and not math.isfinite(value):
            raise PydanticCustomError(
                "int_type", "must be a whole number, not {value}", {"value": str(value)}
            )
        if not isinstance(value, int) or isinstance(value, bool):
            raise PydanticCustomError(
                "int_type",
                "must be a whole number (a JSON integer), not {value}",
                {"value": repr(value)},
            )
        if value > most:
            raise PydanticCustomError(
                "less_than_equal", "at most {most}", {"most": most}
            )
        return value

    return BeforeValidator(check)


StrictBool = Annotated[bool, BeforeValidator(_strict_bool)]
Count = Annotated[int, _whole_number(COUNT_MAX), Field(ge=0)]
DraftVersion = Annotated[int, _whole_number(DRAFT_VERSION_MAX), Field(ge=1)]
WorkingDays = Annotated[int, _whole_number(WORKING_DAYS_MAX), Field(ge=1)]
Size = Annotated[int, _whole_number(EVIDENCE_BYTES), Field(ge=0)]


def items_check(max_items: int) -> Any:
    """A list's (or a mapping's) documented maximum number of items, for `Annotated`."""
    return _items_check(max_items)


# -- instants ------------------------------------------------------------------------------------


def _sane_instant(value: datetime | None, info: ValidationInfo) -> datetime | None:
    if value is None:
        return value
    if value.tzinfo is None:
        raise ValueError("must carry a time zone (e.g. 2026-11-28T09:30:00+08:00)")
    if not _unbounded(info) and not EARLIEST <= value < LATEST:
        raise PydanticCustomError(
            "datetime_range",
            "{value} is not a time this service can keep (years 2000 to 2099)",
            {"value": value.isoformat()},
        )
    return value


AwareDatetime = Annotated[datetime, AfterValidator(_sane_instant)]


def instant_problem(value: datetime, now: datetime) -> str | None:
    """Why `value` makes no sense as a time something was found, captured or learnt of."""
    if value > now + FUTURE_SLACK:
        now_text = now.isoformat(timespec="seconds")
        return f"{value.isoformat()} is in the future (it is now {now_text})"
    if value < now - PAST_LIMIT:
        return (
            f"{value.isoformat()} is more than {PAST_LIMIT.days} days ago: "
            "report what was found recently"
        )
    return None
