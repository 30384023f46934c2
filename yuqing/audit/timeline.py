"""A decision trail as a person reads it: one timeline, the incident's lines and its posts'.

Times are shown in Beijing time (Asia/Shanghai), where the bureau works, and the headings say
so; every format carries the same rows, its words in the reader's language (Chinese unless
English is asked for), a line's detail from its catalog message when its history keeps one.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import asdict
from zoneinfo import ZoneInfo

from yuqing.audit.history import TrailLine
from yuqing.i18n import label, t

# Not yuqing.working_time's: that module imports the holiday calendars, which a timeline needs not.
SHANGHAI = ZoneInfo("Asia/Shanghai")

FORMATS = ("text", "json", "md", "html")


def ordered(lines: Iterable[TrailLine]) -> list[TrailLine]:
    """By time, then the incident before its posts, then each trail's own order."""
    return sorted(lines, key=lambda line: (line.at, line.post_id or "", line.seq))


def _when(line: TrailLine) -> str:
    return line.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _where(line: TrailLine, lang: str) -> str:
    if line.post_id:
        return t("audit.where.post", lang, post=line.post_id)
    return t("audit.where.incident", lang)


def _who(line: TrailLine, lang: str) -> str:
    if line.actor and line.role:
        return f"{line.actor} ({label('role', line.role, lang)})"
    return line.actor or ""


def _kind(line: TrailLine, lang: str) -> str:
    return label("trail", line.kind, lang)


def _what(line: TrailLine, lang: str) -> str:
    from yuqing.i18n.render import local_times
    from yuqing.i18n.render import render as said

    detail = (
        said(line.message, lang) if line.message is not None else local_times(line.detail, lang)
    )
    if line.refused:
        kind = line.refusal_kind or ""
        return t("audit.refused", lang, signal=line.signal or "", kind=kind, detail=detail)
    return detail


def render(incident_id: str, lines: list[TrailLine], fmt: str, lang: str = "zh") -> str:
    """The timeline in `fmt`, its words in `lang` (JSON: the records as they are)."""
    rows = ordered(lines)
    if fmt == "json":
        payload = [
            {k: v for k, v in asdict(line).items() if k != "message"} | {"at": line.at.isoformat()}
            for line in rows
        ]
        return json.dumps(
            {"incident_id": incident_id, "trail": payload}, ensure_ascii=False, indent=2
        )
    title = t("audit.title", lang, incident=incident_id)
    headings = [t(f"audit.col.{c}", lang) for c in ("time", "where", "kind", "who", "detail")]

    def cells(line: TrailLine) -> list[str]:
        return [
            _when(line),
            _where(line, lang),
            _kind(line, lang),
            _who(line, lang),
            _what(line, lang),
        ]

    if fmt == "md":
        out = [f"# {title}", "", "| " + " | ".join(headings) + " |", "|---|---|---|---|---|"]
        for line in rows:
            out.append(
                "| "
                + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells(line))
                + " |"
            )
        return "\n".join(out) + "\n"
    if fmt == "html":
        body = "\n".join(
            "<tr{cls}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                *(html.escape(c) for c in cells(line)),
                cls=' class="refused"' if line.refused else "",
            )
            for line in rows
        )
        head = "".join(f"<th>{html.escape(h)}</th>" for h in headings)
        page_lang = "en" if lang == "en" else "zh-CN"
        return (
            f'<!doctype html>\n<html lang="{page_lang}"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>body{{font-family:sans-serif;margin:2rem}}"
            "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;"
            "text-align:left;vertical-align:top}tr.refused td{color:#a00}</style></head><body>"
            f"<h1>{html.escape(title)}</h1><table><thead><tr>{head}</tr></thead><tbody>\n"
            f"{body}\n</tbody></table></body></html>\n"
        )
    if fmt == "text":
        return (
            "\n".join(
                f"{_when(line)}  {_where(line, lang):<10} {_kind(line, lang):<20} "
                f"{_who(line, lang):<28} {_what(line, lang)}"
                for line in rows
            )
            + "\n"
        )
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
