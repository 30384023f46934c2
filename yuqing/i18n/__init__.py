"""The message catalog: every text an official reads, in Chinese first and English second.

Messages are keyed (`nav.todo`, `stage.approving`) and kept in gettext PO files beside this
module, one per language, read with Babel. `t(key, lang, **params)` gives the text with its
`{name}` placeholders filled; a key missing in a language falls back to Chinese, then to the
key itself, and `tests/test_i18n.py` fails on any key that lacks a language.

Times a person reads are Beijing time and say so (`when`); durations say whether they count
working or calendar time (`span`).
"""

from __future__ import annotations

import io
import re
from collections.abc import Mapping
from datetime import datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

# Not yuqing.working_time's: this module is imported by the pure core (notices as data) and by
# quick tools, which need neither the holiday tables nor Babel until they render.
SHANGHAI = ZoneInfo("Asia/Shanghai")

Lang = Literal["zh", "en"]
LANGUAGES: tuple[Lang, ...] = ("zh", "en")
DEFAULT: Lang = "zh"
# The console's language switch (a cookie), which the API's errors follow as well.
COOKIE = "yuqing_lang"
CATALOG_DIR = Path(__file__).parent

# Accept-Language: `zh-CN,zh;q=0.9,en;q=0.8`.
_RANGE = re.compile(r"^\s*([A-Za-z]{1,8})(?:-[A-Za-z0-9]{1,8})*\s*(?:;\s*q\s*=\s*([0-9.]+))?\s*$")


# A .mo file names the .po it was compiled from by its SHA-256, kept under this id.
DIGEST_KEY = "@source-sha256"


@cache
def catalog(lang: Lang) -> Mapping[str, str]:
    """Every key of one language and its text (an untranslated entry counts as missing).

    Read from the compiled `{lang}.mo` (the standard library reads it in a few milliseconds,
    which keeps `yuqing --help` quick) when it was compiled from today's `{lang}.po`, else
    from the .po itself with Babel. `python -m yuqing.i18n.compile` compiles both.
    """
    source = (CATALOG_DIR / f"{lang}.po").read_bytes()
    compiled = _compiled(lang, source)
    if compiled is not None:
        return compiled
    from babel.messages.pofile import read_po

    messages = read_po(io.BytesIO(source), locale=lang)
    return {str(m.id): str(m.string) for m in messages if m.id and m.string}


def _compiled(lang: Lang, source: bytes) -> dict[str, str] | None:
    import gettext
    import hashlib

    try:
        with (CATALOG_DIR / f"{lang}.mo").open("rb") as mo:
            translations = gettext.GNUTranslations(mo)
    except (OSError, ValueError):
        return None
    texts: dict[str, str] = dict(translations._catalog)  # type: ignore[attr-defined]
    if texts.pop(DIGEST_KEY, None) != hashlib.sha256(source).hexdigest():
        return None  # compiled from another .po: read the .po
    return {str(k): str(v) for k, v in texts.items() if k and v}


def t(key: str, lang: str = DEFAULT, /, **params: Any) -> str:
    """The text of `key` in `lang`, with `{name}` placeholders filled from `params`."""
    text = catalog(language(lang)).get(key) or catalog(DEFAULT).get(key)
    if text is None:
        return key
    return text.format(**params) if params else text


class Said(str):
    """A text kept as its key and parameters, that reads as English where a plain string is
    wanted (logs, exceptions, tests) and is shown in the reader's language with `in_(lang)`.

    A parameter may itself be a `Said` (`incident t-1` inside "… does not exist").
    """

    key: str
    params: dict[str, Any]

    def __new__(cls, key: str, /, **params: Any) -> Said:
        said = super().__new__(cls, t(key, "en", **params))
        said.key = key
        said.params = params
        return said

    def in_(self, lang: str) -> str:
        shown = {k: v.in_(lang) if isinstance(v, Said) else v for k, v in self.params.items()}
        return t(self.key, lang, **shown)


def text_in(text: str, lang: str) -> str:
    """`text` in `lang` if it is a `Said`, else as it is (a text from before the catalog)."""
    return text.in_(lang) if isinstance(text, Said) else text


def has(key: str) -> bool:
    return key in catalog(DEFAULT)


def label(prefix: str, value: str | None, lang: str = DEFAULT) -> str:
    """The name of an enumerated value (`stage.approving`), or the value itself if unnamed."""
    if value is None:
        return ""
    key = f"{prefix}.{value}"
    return t(key, lang) if has(key) else value


def language(value: str | None) -> Lang:
    """One of LANGUAGES for a language tag (`en-GB` is English); anything else is Chinese."""
    if value:
        primary = value.split("-")[0].split("_")[0].lower()
        for lang in LANGUAGES:
            if primary == lang:
                return lang
    return DEFAULT


def negotiate(accept_language: str | None) -> Lang:
    """The reader's language from an Accept-Language header: the best supported range."""
    best: tuple[float, int, Lang] | None = None
    for index, part in enumerate((accept_language or "").split(",")[:20]):
        match = _RANGE.match(part)
        if match is None:
            continue
        primary = match[1].lower()
        try:
            quality = float(match[2]) if match[2] is not None else 1.0
        except ValueError:
            continue
        if primary not in LANGUAGES or quality <= 0:
            continue
        candidate = (quality, -index, language(primary))
        if best is None or candidate > best:
            best = candidate
    return best[2] if best else DEFAULT


def chosen(cookie: str | None, accept_language: str | None) -> Lang:
    """The reader's language: the console's switch (a cookie) if made, else Accept-Language."""
    if cookie in LANGUAGES:
        return language(cookie)
    return negotiate(accept_language)


def when(moment: datetime | None, lang: str = DEFAULT, *, seconds: bool = False) -> str:
    """`2026-12-01 14:30（北京时间）` / `2026-12-01 14:30 (Beijing time)`."""
    if moment is None:
        return ""
    pattern = "%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M"
    shown = moment.astimezone(SHANGHAI).strftime(pattern)
    return t("time.beijing", lang, time=shown)


def span(
    amount: timedelta,
    lang: str = DEFAULT,
    clock: Literal["calendar", "working"] = "calendar",
) -> str:
    """`2 天 3 小时 05 分（日历时间）` / `2 d 3 h 05 min (calendar time)`, to the minute."""
    minutes = max(int(amount.total_seconds()) // 60, 0)
    days, rest = divmod(minutes, 24 * 60)
    hours, mins = divmod(rest, 60)
    if days:
        text = t("span.days", lang, d=days, h=hours, m=f"{mins:02d}")
    elif hours:
        text = t("span.hours", lang, h=hours, m=f"{mins:02d}")
    else:
        text = t("span.minutes", lang, m=mins)
    return t(f"span.{clock}", lang, span=text)
