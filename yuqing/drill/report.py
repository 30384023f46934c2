"""The drill report (§5.3): who acted when, against the drill's scaled deadlines.

Every time is given twice: on the clock (Beijing time, when it happened in the drill) and in
the incident's own time since discovery, the drill's elapsed time multiplied by its speed, so
that "the report came 25 min after discovery, against a 4 h deadline" reads the same at any
speed. Built from the incident's state alone; the same for a live drill and a simulation.
"""

from __future__ import annotations

import html
import json
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Literal

from yuqing.drill.scenario import show_span
from yuqing.state import Deadline, IncidentState, TrailEntry, TrailPage
from yuqing.working_time import SHANGHAI

Outcome = Literal["met", "met_late", "missed", "overdue", "pending", "waived"]
FORMATS = ("text", "json", "html")
OUTCOME_LABELS: dict[str, str] = {
    "met": "按时 met",
    "met_late": "逾期办结 met late",
    "missed": "逾期未办 missed",
    "overdue": "已超期 overdue",
    "pending": "未到期 pending",
    "waived": "免除 waived",
}
# Lines that are the workflow's own bookkeeping, not someone acting or a clock.
_QUIET = frozenset({"stage", "post_status", "evidence", "deadline_planned"})


@dataclass(frozen=True)
class Acted:
    at: datetime
    offset: timedelta  # in the incident's own time, from discovery
    where: str
    kind: str
    who: str
    role: str
    what: str
    refused: bool


@dataclass(frozen=True)
class Clock:
    where: str
    key: str
    title: str
    responsible: str
    due_at: datetime
    due_offset: timedelta
    met_at: datetime | None
    met_offset: timedelta | None
    outcome: Outcome
    # Incident time to spare (positive) or by which it was late (negative); None: open.
    margin: timedelta | None


@dataclass(frozen=True)
class DrillReport:
    incident_id: str
    scenario: str
    speed: float
    started_by: str
    discovered_at: datetime
    policy_version: str | None
    as_of: datetime
    acted: list[Acted]
    clocks: list[Clock]
    notices_kept: int
    withheld: list[str]
    statements_kept: int

    @property
    def met(self) -> int:
        return sum(1 for c in self.clocks if c.outcome == "met")

    @property
    def missed(self) -> int:
        return sum(1 for c in self.clocks if c.outcome in ("met_late", "missed", "overdue"))


@dataclass(frozen=True)
class Trails:
    """Whole trails, read page by page (the `state` answer holds only the latest lines)."""

    incident: list[TrailEntry]
    posts: dict[str, list[TrailEntry]]


# Reads one page of a workflow's trail: (workflow id, offset) → the `trail` query's answer.
PageReader = Callable[[str, int], Awaitable[TrailPage]]


async def whole_trails(state: IncidentState, read_page: PageReader) -> Trails:
    """The incident's trail and each post's, every line each workflow holds (lines a run left
    behind when it continued as new are in the audit table, not here)."""
    posts: dict[str, list[TrailEntry]] = {}
    for post in state.posts:
        try:
            posts[post.post_id] = await _whole(post.workflow_id, read_page)
        except Exception:  # not started yet, or gone: what the incident lists of it
            posts[post.post_id] = list(post.trail)
    return Trails(incident=await _whole(state.workflow_id, read_page), posts=posts)


async def _whole(workflow_id: str, read_page: PageReader) -> list[TrailEntry]:
    lines: list[TrailEntry] = []
    offset = 0
    while True:
        page = await read_page(workflow_id, offset)
        lines += page.lines
        offset = page.offset + len(page.lines)
        if not page.lines or offset >= page.total:
            return lines


def drill_report(
    state: IncidentState, as_of: datetime, trails: Trails | None = None
) -> DrillReport:
    """The report of a drill (or of any incident, at speed 1), as of `as_of`; `trails` as
    `whole_trails` reads them (without: the trails the state holds)."""
    speed = state.drill.speed if state.drill else 1.0
    start = state.discovered_at
    if trails is None:
        trails = Trails(
            incident=list(state.trail), posts={p.post_id: list(p.trail) for p in state.posts}
        )

    def offset(at: datetime) -> timedelta:
        return (at - start) * speed

    acted: list[Acted] = []
    sources: list[tuple[str, list[TrailEntry]]] = [("incident", trails.incident)]
    sources += [(f"post {post_id}", lines) for post_id, lines in trails.posts.items()]
    notices_kept = statements_kept = 0
    withheld: list[str] = []
    for where, lines in sources:
        for entry in lines:
            if entry.kind == "notified" and KEPT_NOTICE in entry.detail:
                notices_kept += 1
                for name in _withheld(entry.detail):
                    if name not in withheld:
                        withheld.append(name)
            if entry.kind == "published" and f"{SINK_ADDRESS}:" in entry.detail:
                statements_kept += 1
            if entry.kind in _QUIET or not (entry.actor or entry.kind.startswith("deadline")):
                continue
            acted.append(
                Acted(
                    at=entry.at,
                    offset=offset(entry.at),
                    where=where,
                    kind=entry.kind,
                    who=entry.actor or "",
                    role=entry.role or "",
                    what=_plain(entry.detail),
                    refused=entry.refused,
                )
            )
    acted.sort(key=lambda a: (a.at, a.where != "incident"))
    clocks = [_clock("incident", d, offset, as_of, speed) for d in state.deadlines]
    for post in state.posts:
        clocks += [_clock(f"post {post.post_id}", d, offset, as_of, speed) for d in post.deadlines]
    clocks.sort(key=lambda c: c.due_at)
    return DrillReport(
        incident_id=state.incident_id,
        scenario=state.drill.scenario if state.drill else state.title,
        speed=speed,
        started_by=state.drill.started_by if state.drill else state.reporter_id,
        discovered_at=start,
        policy_version=state.policy_version,
        as_of=as_of,
        acted=acted,
        clocks=clocks,
        notices_kept=notices_kept,
        withheld=withheld,
        statements_kept=statements_kept,
    )


# How the drill sink's results read in the trail (activities/drill_sink.py).
KEPT_NOTICE = "kept in the drill sink"
SINK_ADDRESS = "drill-sink"
_WITHHELD = "never sent to bodies outside the bureau:"


def _withheld(detail: str) -> list[str]:
    if _WITHHELD not in detail:
        return []
    names = detail.split(_WITHHELD, 1)[1].rstrip(")").split(",")
    return [name.strip() for name in names if name.strip()]


def _clock(
    where: str,
    deadline: Deadline,
    offset: Callable[[datetime], timedelta],
    as_of: datetime,
    speed: float,
) -> Clock:
    due, met = deadline.due_at, deadline.met_at
    outcome: Outcome
    if deadline.status == "waived":
        outcome = "waived"
    elif met is not None:
        outcome = "met" if met <= due else "met_late"
    elif deadline.status == "breached":
        outcome = "missed"
    else:
        outcome = "overdue" if as_of > due else "pending"
    margin = (due - met) * speed if met is not None else None
    if margin is None and outcome in ("missed", "overdue"):
        margin = (due - as_of) * speed
    return Clock(
        where=where,
        key=deadline.key,
        title=deadline.title,
        responsible=" / ".join(
            x for x in (deadline.responsible_unit, deadline.responsible_person) if x
        ),
        due_at=due,
        due_offset=offset(due),
        met_at=met,
        met_offset=offset(met) if met else None,
        outcome=outcome,
        margin=margin,
    )


def _plain(detail: str) -> str:
    return detail.removeprefix("[演练] ")


def _when(at: datetime | None) -> str:
    return at.astimezone(SHANGHAI).strftime("%m-%d %H:%M:%S") if at else ""


def _margin(clock: Clock) -> str:
    if clock.margin is None:
        return ""
    if clock.margin >= timedelta(0):
        return f"({show_span(clock.margin)} to spare)"
    return f"(late by {show_span(-clock.margin)})"


def _plus(span: timedelta | None) -> str:
    return "" if span is None else f"+{show_span(span)}"


def render(report: DrillReport, fmt: str = "text") -> str:
    if fmt == "json":
        data = asdict(report)
        return json.dumps(data, ensure_ascii=False, indent=2, default=_json)
    if fmt == "html":
        return _html(report)
    if fmt != "text":
        raise ValueError(f"unknown format {fmt!r}; one of {', '.join(FORMATS)}")
    head = [
        f"演练报告 Drill report: {report.scenario} ({report.incident_id})",
        f"clocks ×{report.speed:g}; started by {report.started_by}; discovered "
        f"{report.discovered_at.astimezone(SHANGHAI):%Y-%m-%d %H:%M:%S} (Beijing); policy "
        f"{report.policy_version}",
        f"deadlines: {report.met} met, {report.missed} missed or late, of {len(report.clocks)}; "
        f"{report.notices_kept} notice(s) and {report.statements_kept} statement(s) kept in the "
        "drill sink, none sent"
        + (f"; never notified: {', '.join(report.withheld)}" if report.withheld else ""),
        "",
        "who acted when (clock time; incident time since discovery):",
    ]
    for a in report.acted:
        who = f"{a.who} ({a.role})" if a.role else a.who
        mark = "REFUSED " if a.refused else ""
        head.append(
            f"  {_when(a.at)}  {_plus(a.offset):>10}  {a.where:<9} {who:<28} {mark}{a.kind}: "
            f"{a.what}"
        )
    head += ["", "deadlines (due and met: clock time, incident time):"]
    for c in report.clocks:
        head.append(
            f"  {c.title} [{c.where}; {c.responsible}]: due {_when(c.due_at)} "
            f"({_plus(c.due_offset)}), met {_when(c.met_at) or '-'} ({_plus(c.met_offset) or '-'})"
            f": {OUTCOME_LABELS[c.outcome]} {_margin(c)}".rstrip()
        )
    return "\n".join(head) + "\n"


def _json(value: object) -> object:
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    raise TypeError(type(value).__name__)


def _html(report: DrillReport) -> str:
    e = html.escape
    acted = "".join(
        f"<tr{' class=refused' if a.refused else ''}><td>{e(_when(a.at))}</td>"
        f"<td>{e(_plus(a.offset))}</td><td>{e(a.where)}</td><td>{e(a.who)}</td>"
        f"<td>{e(a.role)}</td><td>{e(a.kind)}</td><td>{e(a.what)}</td></tr>"
        for a in report.acted
    )
    clocks = "".join(
        f"<tr class={e(c.outcome)}><td>{e(c.title)}</td><td>{e(c.responsible)}</td>"
        f"<td>{e(_when(c.due_at))} ({e(_plus(c.due_offset))})</td>"
        f"<td>{e(_when(c.met_at))} ({e(_plus(c.met_offset))})</td>"
        f"<td>{e(OUTCOME_LABELS[c.outcome])}</td><td>{e(_margin(c))}</td></tr>"
        for c in report.clocks
    )
    title = e(f"演练报告 Drill report: {report.scenario}")
    return (
        '<!doctype html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        f"<title>{title}</title><style>body{{font-family:sans-serif;margin:2rem}}"
        ".banner{background:#b71c1c;color:#fff;padding:.4rem 1rem;font-weight:bold}"
        "table{border-collapse:collapse;margin-bottom:1.5rem}td,th{border-bottom:1px solid #ddd;"
        "padding:.3rem .6rem;text-align:left}tr.refused td,tr.missed td,tr.overdue td,"
        "tr.met_late td{color:#a00}</style></head><body>"
        '<p class="banner">演练 DRILL — nothing here was sent or published</p>'
        f"<h1>{title}</h1><p>{e(report.incident_id)}; clocks ×{report.speed:g}; started by "
        f"{e(report.started_by)}; {report.met} met, {report.missed} missed or late</p>"
        "<h2>谁何时做了什么 Who acted when</h2><table><thead><tr><th>clock</th>"
        "<th>incident time</th><th>where</th><th>who</th><th>role</th><th>what</th>"
        f"<th>detail</th></tr></thead><tbody>{acted}</tbody></table>"
        "<h2>期限 Deadlines</h2><table><thead><tr><th>deadline</th><th>responsible</th>"
        "<th>due</th><th>met</th><th>outcome</th><th>margin</th></tr></thead>"
        f"<tbody>{clocks}</tbody></table></body></html>\n"
    )
