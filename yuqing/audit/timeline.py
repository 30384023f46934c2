"""A decision trail as a person reads it: one timeline, the incident's lines and its posts'.

Times are shown in Asia/Shanghai, where the bureau works; every format carries the same rows.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from dataclasses import asdict
from zoneinfo import ZoneInfo

from yuqing.audit.history import TrailLine

# Not yuqing.working_time's: that module imports the holiday calendars, which a timeline needs not.
SHANGHAI = ZoneInfo("Asia/Shanghai")

FORMATS = ("text", "json", "md", "html")


def ordered(lines: Iterable[TrailLine]) -> list[TrailLine]:
    """By time, then the incident before its posts, then each trail's own order."""
    return sorted(lines, key=lambda line: (line.at, line.post_id or "", line.seq))


def _when(line: TrailLine) -> str:
    return line.at.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M:%S")


def _where(line: TrailLine) -> str:
    return f"post {line.post_id}" if line.post_id else "incident"


def _who(line: TrailLine) -> str:
    if line.actor and line.role:
        return f"{line.actor} ({line.role})"
    return line.actor or ""


def _what(line: TrailLine) -> str:
    if line.refused:
        return f"REFUSED {line.signal} [{line.refusal_kind}]: {line.detail}"
    return line.detail


def render(incident_id: str, lines: list[TrailLine], fmt: str) -> str:
    rows = ordered(lines)
    if fmt == "json":
        payload = [dict(asdict(line), at=line.at.isoformat()) for line in rows]
        return json.dumps(
            {"incident_id": incident_id, "trail": payload}, ensure_ascii=False, indent=2
        )
    if fmt == "md":
        out = [
            f"# Decision trail of incident {incident_id}",
            "",
            "| time (Asia/Shanghai) | where | what happened | who | detail |",
            "|---|---|---|---|---|",
        ]
        for line in rows:
            cells = [_when(line), _where(line), line.kind, _who(line), _what(line)]
            out.append(
                "| " + " | ".join(c.replace("|", "\\|").replace("\n", " ") for c in cells) + " |"
            )
        return "\n".join(out) + "\n"
    if fmt == "html":
        body = "\n".join(
            "<tr{cls}><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>".format(
                *(
                    html.escape(c)
                    for c in (_when(line), _where(line), line.kind, _who(line), _what(line))
                ),
                cls=' class="refused"' if line.refused else "",
            )
            for line in rows
        )
        title = html.escape(f"Decision trail of incident {incident_id}")
        return (
            '<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
            f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2rem}}"
            "table{border-collapse:collapse}td,th{border-bottom:1px solid #ddd;padding:.3rem .6rem;"
            "text-align:left;vertical-align:top}tr.refused td{color:#a00}</style></head><body>"
            f"<h1>{title}</h1><table><thead><tr><th>time (Asia/Shanghai)</th><th>where</th>"
            "<th>what happened</th><th>who</th><th>detail</th></tr></thead><tbody>\n"
            f"{body}\n</tbody></table></body></html>\n"
        )
    if fmt == "text":
        return (
            "\n".join(
                f"{_when(line)}  {_where(line):<10} {line.kind:<20} {_who(line):<28} {_what(line)}"
                for line in rows
            )
            + "\n"
        )
    raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
