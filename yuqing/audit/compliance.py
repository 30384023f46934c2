"""Deadline compliance across incidents (SPEC §2.10, §5.4, §6): which deadlines were met or
missed in a period, by how much, and by which unit and person.

Read from `deadline_outcomes`, each workflow's deadlines as they stand. A deadline belongs to the
period its due time falls in. Outcomes are judged as of a moment (`now` by default): a deadline
still pending after its due time can no longer be met in time, so it counts as missed, and how
late it is grows until it is met.
"""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Literal

import asyncpg
from rich import box
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

from yuqing.rules.clocks import STEP_PREFIX, step_kind
from yuqing.working_time import SHANGHAI

Outcome = Literal["met", "met_late", "missed", "overdue", "pending", "waived"]

# met_late: met after its due time; missed: breached and still not met; overdue: past its due
# time and not met, though the workflow has not yet marked it breached.
MISSED: frozenset[Outcome] = frozenset({"met_late", "missed", "overdue"})

OUTCOME_LABELS: dict[Outcome, str] = {
    "met": "按时办结 met",
    "met_late": "逾期办结 met late",
    "missed": "逾期未办 missed",
    "overdue": "已超期 overdue",
    "pending": "未到期 pending",
    "waived": "免除 waived",
}


@dataclass(frozen=True)
class DeadlineRow:
    """One deadline of one workflow, and how it went as of `as_of`."""

    workflow_id: str
    incident_id: str
    post_id: str | None
    key: str
    title: str
    clock: str
    responsible_unit: str
    responsible_person: str | None
    starts_at: datetime
    due_at: datetime
    status: str
    met_at: datetime | None
    breached_at: datetime | None
    policy_version: str
    calendar_version: str | None
    as_of: datetime

    @property
    def kind(self) -> str:
        """The deadline's kind across incidents: its key without a draft version or a
        re-plan number (`step.publicity_lead_approval`, `publish_statement`)."""
        return step_kind(self.key)

    @property
    def is_step(self) -> bool:
        """An approval step's own clock (yuqing.rules.clocks), not the unit's deadline."""
        return self.key.startswith(STEP_PREFIX)

    @property
    def outcome(self) -> Outcome:
        if self.status == "waived":
            return "waived"
        # By the times themselves, whatever the status says: met_at is when it was done.
        if self.met_at is not None:
            return "met" if self.met_at <= self.due_at else "met_late"
        if self.status == "met":
            return "met"
        if self.status == "breached":
            return "missed"
        return "overdue" if self.as_of > self.due_at else "pending"

    @property
    def early_by(self) -> timedelta | None:
        if self.outcome == "met" and self.met_at is not None:
            return self.due_at - self.met_at
        return None

    @property
    def late_by(self) -> timedelta | None:
        """How late it was met, or, when it is still not met, how late it is as of `as_of`."""
        outcome = self.outcome
        if outcome == "met_late" and self.met_at is not None:
            return self.met_at - self.due_at
        if outcome in ("missed", "overdue"):
            return max(self.as_of - self.due_at, timedelta(0))
        return None

    @property
    def still_overdue(self) -> bool:
        """Its lateness is measured to `as_of`, not to a time it was met."""
        return self.outcome in ("missed", "overdue")


async def deadlines_in(
    pool: asyncpg.Pool, start: datetime, end: datetime, *, now: datetime | None = None
) -> list[DeadlineRow]:
    """Every deadline whose due time falls in [start, end), in due order, judged as of `now`."""
    for name, moment in (("start", start), ("end", end), ("now", now)):
        if moment is not None and moment.tzinfo is None:
            # asyncpg would read a naive time as the server process's local time.
            raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
    as_of = now or datetime.now(UTC)
    async with pool.acquire() as conn:
        records = await conn.fetch(
            "SELECT workflow_id, incident_id, post_id, key, title, clock, responsible_unit,"
            " responsible_person, starts_at, due_at, status, met_at, breached_at,"
            " policy_version, calendar_version"
            " FROM deadline_outcomes WHERE due_at >= $1 AND due_at < $2"
            " ORDER BY due_at, incident_id, workflow_id, key",
            start,
            end,
        )
    return [DeadlineRow(**dict(record), as_of=as_of) for record in records]


@dataclass
class Summary:
    """The deadlines of one unit and one kind (deadline key); "" stands for all of them."""

    unit: str
    kind: str
    total: int = 0
    met: int = 0
    # met late, missed and overdue; `met_late` and `still_overdue` say which of them.
    missed: int = 0
    met_late: int = 0
    still_overdue: int = 0
    pending: int = 0
    waived: int = 0
    worst_lateness: timedelta | None = None
    worst_incident_id: str | None = None
    incidents: set[str] = field(default_factory=set)

    def add(self, row: DeadlineRow) -> None:
        self.total += 1
        self.incidents.add(row.incident_id)
        outcome = row.outcome
        if outcome == "met":
            self.met += 1
        elif outcome == "pending":
            self.pending += 1
        elif outcome == "waived":
            self.waived += 1
        else:
            self.missed += 1
            self.met_late += int(outcome == "met_late")
            self.still_overdue += int(row.still_overdue)
        late = row.late_by
        if late is not None and (self.worst_lateness is None or late > self.worst_lateness):
            self.worst_lateness = late
            self.worst_incident_id = row.incident_id

    def merge(self, other: Summary) -> None:
        self.total += other.total
        self.met += other.met
        self.missed += other.missed
        self.met_late += other.met_late
        self.still_overdue += other.still_overdue
        self.pending += other.pending
        self.waived += other.waived
        self.incidents |= other.incidents
        if other.worst_lateness is not None and (
            self.worst_lateness is None or other.worst_lateness > self.worst_lateness
        ):
            self.worst_lateness = other.worst_lateness
            self.worst_incident_id = other.worst_incident_id


def summarise(rows: Iterable[DeadlineRow]) -> dict[tuple[str, str], Summary]:
    """Per (responsible unit, deadline key), in that order."""
    found: dict[tuple[str, str], Summary] = {}
    for row in rows:
        key = (row.responsible_unit, row.kind)
        found.setdefault(key, Summary(unit=row.responsible_unit, kind=row.kind)).add(row)
    return dict(sorted(found.items()))


def totals(summary: dict[tuple[str, str], Summary], by: Literal["unit", "kind"]) -> list[Summary]:
    """The summary rolled up per unit (all kinds) or per kind (all units)."""
    rolled: dict[str, Summary] = {}
    for line in summary.values():
        name = line.unit if by == "unit" else line.kind
        total = rolled.setdefault(
            name, Summary(unit=name if by == "unit" else "", kind=name if by == "kind" else "")
        )
        total.merge(line)
    return [rolled[name] for name in sorted(rolled)]


def describe(span: timedelta | None) -> str:
    """`2 d 3 h 05 min`, `45 min`, `20 s`: to the minute, to the second under a minute."""
    if span is None:
        return ""
    seconds = int(span.total_seconds())
    if seconds < 60:
        return f"{seconds} s"
    days, rest = divmod(seconds // 60, 24 * 60)
    hours, minutes = divmod(rest, 60)
    if days:
        return f"{days} d {hours} h {minutes:02d} min"
    if hours:
        return f"{hours} h {minutes:02d} min"
    return f"{minutes} min"


def margin(row: DeadlineRow, *, as_of: bool = True) -> str:
    """`early by …`, `late by …`, or `overdue by … (as of …)`."""
    if row.early_by is not None:
        return f"early by {describe(row.early_by)}"
    if row.late_by is None:
        return ""
    if row.still_overdue:
        when = f" (as of {_local(row.as_of)})" if as_of else ""
        return f"overdue by {describe(row.late_by)}{when}"
    return f"late by {describe(row.late_by)}"


def _local(moment: datetime | None) -> str:
    return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M") if moment else ""


def _iso(moment: datetime | None) -> str:
    return moment.astimezone(SHANGHAI).isoformat(timespec="seconds") if moment else ""


def _seconds(span: timedelta | None) -> str:
    return "" if span is None else str(int(span.total_seconds()))


CSV_HEADER = (
    "incident_id",
    "post_id",
    "workflow_id",
    "deadline_key",
    "title",
    "clock",
    "responsible_unit",
    "responsible_person",
    "starts_at",
    "due_at",
    "met_at",
    "breached_at",
    "status",
    "outcome",
    "early_by_seconds",
    "late_by_seconds",
    "late_as_of",
    "policy_version",
    "calendar_version",
)


def _record(row: DeadlineRow) -> tuple[object, ...]:
    """One deadline's values in CSV_HEADER order: text as it is, times in ISO 8601 with the
    Asia/Shanghai offset, spans in whole seconds, None where there is nothing."""
    early, late = row.early_by, row.late_by
    return (
        row.incident_id,
        row.post_id,
        row.workflow_id,
        row.key,
        row.title,
        row.clock,
        row.responsible_unit,
        row.responsible_person,
        _iso(row.starts_at) or None,
        _iso(row.due_at) or None,
        _iso(row.met_at) or None,
        _iso(row.breached_at) or None,
        row.status,
        row.outcome,
        None if early is None else int(early.total_seconds()),
        None if late is None else int(late.total_seconds()),
        _iso(row.as_of) if row.still_overdue else None,
        row.policy_version,
        row.calendar_version,
    )


def to_csv(rows: Iterable[DeadlineRow]) -> str:
    """One line per deadline; times in ISO 8601 with the Asia/Shanghai offset. `late_as_of` is
    set when the deadline is still not met, its lateness then being measured to that time."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_HEADER)
    for row in rows:
        writer.writerow("" if value is None else value for value in _record(row))
    return out.getvalue()


def _summary_record(line: Summary) -> dict[str, object]:
    worst = line.worst_lateness
    return {
        "unit": line.unit or None,
        "kind": line.kind or None,
        "total": line.total,
        "met": line.met,
        "missed": line.missed,
        "met_late": line.met_late,
        "still_overdue": line.still_overdue,
        "pending": line.pending,
        "waived": line.waived,
        "worst_lateness_seconds": None if worst is None else int(worst.total_seconds()),
        "worst_incident_id": line.worst_incident_id,
        "incidents": len(line.incidents),
    }


def to_json(
    rows: Sequence[DeadlineRow], *, start: datetime | None = None, end: datetime | None = None
) -> str:
    """The whole report as one JSON object: the period, the moment it is judged at, every
    deadline (the CSV's fields, typed) and the summaries per unit, per kind and per both."""
    summary = summarise(rows)
    report = {
        "period": {"from": _iso(start) or None, "to": _iso(end) or None},
        "as_of": _iso(rows[0].as_of if rows else datetime.now(UTC)),
        "deadlines": [dict(zip(CSV_HEADER, _record(row), strict=True)) for row in rows],
        "per_unit": [_summary_record(s) for s in totals(summary, "unit")],
        "per_kind": [_summary_record(s) for s in totals(summary, "kind")],
        "per_unit_and_kind": [_summary_record(s) for s in summary.values()],
    }
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"


_STYLE: dict[Outcome, str] = {
    "met": "green",
    "met_late": "yellow",
    "missed": "red",
    "overdue": "red",
    "pending": "",
    "waived": "dim",
}

_OUTCOME_WORDS: dict[Outcome, str] = {
    "met": "met",
    "met_late": "met late",
    "missed": "missed",
    "overdue": "overdue",
    "pending": "pending",
    "waived": "waived",
}


def _span_years(rows: Sequence[DeadlineRow], start: datetime | None, end: datetime | None) -> bool:
    moments = [m for r in rows for m in (r.due_at, r.met_at) if m is not None]
    moments += [m for m in (start, end - timedelta(microseconds=1) if end else None) if m]
    return len({m.astimezone(SHANGHAI).year for m in moments}) > 1


def _table(title: str, *columns: tuple[str, bool]) -> Table:
    """Columns (name, whole): a whole one is never wrapped (names, times, counts); the others
    fold only when 80 columns cannot hold the row."""
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        show_edge=False,
        padding=(0, 1, 0, 0),
    )
    for name, whole in columns:
        table.add_column(name, no_wrap=whole, overflow="ellipsis" if whole else "fold")
    return table


def _span(row: DeadlineRow) -> str:
    """How early or late, in few words: `2 h 00 min early`, `3 h 30 min late`."""
    if row.early_by is not None:
        return f"{describe(row.early_by)} early"
    if row.late_by is not None:
        return f"{describe(row.late_by)} late"
    return ""


def _summary_rows(table: Table, lines: Iterable[Summary], label: Callable[[Summary], str]) -> None:
    for s in lines:
        worst = describe(s.worst_lateness)
        table.add_row(
            label(s),
            str(s.total),
            str(s.met),
            f"{s.missed} ({s.met_late}/{s.still_overdue})",
            f"{s.pending} ({s.waived})",
            f"{worst}\n{s.worst_incident_id}" if worst else "",
            style="red" if s.still_overdue else None,
        )


def to_tables(
    rows: Sequence[DeadlineRow], *, start: datetime | None = None, end: datetime | None = None
) -> list[RenderableType]:
    """The report for a terminal, readable in 80 columns: every deadline (two lines each), then
    the totals per responsible unit and per deadline kind. How late the open deadlines are is
    as of the heading's time."""
    as_of = rows[0].as_of if rows else datetime.now(UTC)
    full = _span_years(rows, start, end)

    def short(moment: datetime | None) -> str:
        if moment is None:
            return "—"
        return moment.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M" if full else "%m-%d %H:%M")

    period = f"{_local(start)} – {_local(end)}" if start and end else "all deadlines given"
    heading = Text(
        f"期限合规 Deadline compliance: due {period} (Beijing time, end excluded); "
        f"as of {_local(as_of)}; {len(rows)} deadline(s)"
    )
    if not rows:
        return [heading, Text("No deadline fell due in this period.")]
    every = _table(
        "every deadline",
        ("incident · deadline", True),
        ("responsible", False),
        ("due · met", True),
        ("outcome", True),
    )
    for row in rows:
        where = row.incident_id + (f" post {row.post_id}" if row.post_id else "")
        every.add_row(
            f"{where}\n{row.key}",
            "\n".join(filter(None, (row.responsible_unit, row.responsible_person))),
            f"{short(row.due_at)}\n{short(row.met_at)}",
            f"{_OUTCOME_WORDS[row.outcome]}\n{_span(row)}".rstrip(),
            style=_STYLE[row.outcome] or None,
            end_section=True,
        )
    summary = summarise(rows)
    counts = (
        ("total", True),
        ("met", True),
        ("missed\nlate/open", True),
        ("pending\nwaived", True),
        ("worst lateness", False),
    )
    per_unit = _table("per responsible unit", ("unit", True), *counts)
    _summary_rows(per_unit, totals(summary, "unit"), lambda s: s.unit)
    per_kind = _table("per deadline kind", ("deadline kind", True), *counts)
    _summary_rows(per_kind, totals(summary, "kind"), lambda s: s.kind)
    return [heading, every, per_unit, per_kind]


def to_text(
    rows: Sequence[DeadlineRow],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    width: int = 80,
) -> str:
    """`to_tables` as plain text, `width` columns wide."""
    console = Console(
        file=io.StringIO(),
        width=width,
        color_system=None,
        markup=False,
        highlight=False,
        emoji=False,
    )
    for part in to_tables(rows, start=start, end=end):
        console.print(part)
        console.print()
    out = console.file
    assert isinstance(out, io.StringIO)
    return out.getvalue()


# -- the HTML report --------------------------------------------------------------------------


def _e(value: object) -> str:
    return html.escape(str(value), quote=True)


def _months(rows: Sequence[DeadlineRow], start: datetime | None, end: datetime | None) -> list[str]:
    """Every month from the first to the last (of the period, or else of the rows), none skipped."""
    dues = [row.due_at.astimezone(SHANGHAI) for row in rows]
    first = start.astimezone(SHANGHAI) if start else min(dues, default=None)
    # The period ends just before `end`.
    last = (
        (end - timedelta(microseconds=1)).astimezone(SHANGHAI) if end else max(dues, default=None)
    )
    if first is None or last is None or last < first:
        return []
    months = []
    year, month = first.year, first.month
    while (year, month) <= (last.year, last.month):
        months.append(f"{year:04d}-{month:02d}")
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    return months


def month_counts(
    rows: Sequence[DeadlineRow], start: datetime | None = None, end: datetime | None = None
) -> list[tuple[str, int, int]]:
    """(month, met, missed) for each month, by the month (Asia/Shanghai) each deadline fell due."""
    counts = {month: [0, 0] for month in _months(rows, start, end)}
    for row in rows:
        month = row.due_at.astimezone(SHANGHAI).strftime("%Y-%m")
        if month not in counts:
            continue
        if row.outcome == "met":
            counts[month][0] += 1
        elif row.outcome in MISSED:
            counts[month][1] += 1
    return [(month, met, missed) for month, (met, missed) in counts.items()]


_MET_COLOUR = "#2e7d32"
_MISSED_COLOUR = "#c62828"


def month_chart(counts: Sequence[tuple[str, int, int]]) -> str:
    """Met and missed per month as bars, in inline SVG: no script, no external asset."""
    group, bar, left, top, plot_height = 96, 30, 40, 30, 180
    # Wide enough for the legend under a month or two.
    width = max(left + group * max(len(counts), 1) + 20, 360)
    height = top + plot_height + 50
    peak = max((max(met, missed) for _, met, missed in counts), default=0) or 1
    base = top + plot_height
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart" width="{width}"'
        f' height="{height}" viewBox="0 0 {width} {height}" role="img"'
        ' aria-labelledby="chart-title">',
        '<title id="chart-title">每月按时与逾期的期限数 Deadlines met and missed per month</title>',
        f'<line x1="{left}" y1="{base}" x2="{width - 10}" y2="{base}" stroke="#555"/>',
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#555"/>',
        f'<text x="{left - 6}" y="{top + 4}" text-anchor="end" font-size="11">{peak}</text>',
        f'<text x="{left - 6}" y="{base + 4}" text-anchor="end" font-size="11">0</text>',
    ]
    for index, (month, met, missed) in enumerate(counts):
        x = left + index * group + (group - 2 * bar) // 2
        for offset, (count, colour, label) in enumerate(
            ((met, _MET_COLOUR, "met 按时"), (missed, _MISSED_COLOUR, "missed 逾期"))
        ):
            h = round(plot_height * count / peak)
            bx = x + offset * bar
            parts.append(
                f'<rect x="{bx}" y="{base - h}" width="{bar - 4}" height="{h}" fill="{colour}">'
                f"<title>{_e(month)}: {count} {label}</title></rect>"
            )
            parts.append(
                f'<text x="{bx + (bar - 4) / 2}" y="{base - h - 4}" text-anchor="middle"'
                f' font-size="11">{count}</text>'
            )
        parts.append(
            f'<text x="{x + bar}" y="{base + 18}" text-anchor="middle"'
            f' font-size="12">{_e(month)}</text>'
        )
    legend_y = height - 12
    parts.append(
        f'<rect x="{left}" y="{legend_y - 10}" width="12" height="12" fill="{_MET_COLOUR}"/>'
        f'<text x="{left + 16}" y="{legend_y}" font-size="12">按时 met</text>'
        f'<rect x="{left + 90}" y="{legend_y - 10}" width="12" height="12"'
        f' fill="{_MISSED_COLOUR}"/>'
        f'<text x="{left + 106}" y="{legend_y}" font-size="12">逾期 missed (late or not met)</text>'
    )
    parts.append("</svg>")
    return "".join(parts)


_SUMMARY_HEAD = (
    "<tr><th>{first}</th><th>合计 total</th><th>按时 met</th><th>逾期 missed</th>"
    "<th>其中逾期办结 of which met late</th><th>其中仍未办 of which still open</th>"
    "<th>未到期 pending</th><th>免除 waived</th><th>最长逾期 worst lateness</th>"
    "<th>最长逾期的事件 incident of the worst</th></tr>"
)


def _summary_table(lines: Iterable[Summary], first: str, label: Callable[[Summary], str]) -> str:
    out = [f"<table><thead>{_SUMMARY_HEAD.format(first=_e(first))}</thead><tbody>"]
    for line in lines:
        out.append(
            f"<tr><td>{_e(label(line))}</td><td>{line.total}</td><td>{line.met}</td>"
            f'<td class="{"bad" if line.missed else ""}">{line.missed}</td>'
            f"<td>{line.met_late}</td><td>{line.still_overdue}</td><td>{line.pending}</td>"
            f"<td>{line.waived}</td><td>{_e(describe(line.worst_lateness))}</td>"
            f"<td>{_e(line.worst_incident_id or '')}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


def _detail_table(rows: Iterable[DeadlineRow]) -> str:
    out = [
        "<table><thead><tr><th>事件 incident</th><th>期限 deadline</th>"
        "<th>责任单位 unit</th><th>责任人 person</th><th>到期 due</th><th>办结 met</th>"
        "<th>结果 outcome</th><th>差额 by how much</th></tr></thead><tbody>"
    ]
    for row in rows:
        where = row.incident_id + (f" / post {row.post_id}" if row.post_id else "")
        out.append(
            f'<tr class="{_e(row.outcome)}"><td>{_e(where)}</td>'
            f"<td>{_e(row.title)}<br><small>{_e(row.key)}</small></td>"
            f"<td>{_e(row.responsible_unit)}</td><td>{_e(row.responsible_person or '')}</td>"
            f"<td>{_e(_local(row.due_at))}</td><td>{_e(_local(row.met_at))}</td>"
            f"<td>{_e(OUTCOME_LABELS[row.outcome])}</td>"
            f"<td>{_e(margin(row, as_of=False))}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


@dataclass
class StepLateness:
    """How long drafts waited at one approval step, and with whom (§5.4 "贻误时机")."""

    step: str
    person: str
    waits: int = 0
    escalated: int = 0
    longest_wait: timedelta | None = None
    worst_incident_id: str | None = None

    def add(self, row: DeadlineRow) -> None:
        self.waits += 1
        self.escalated += int(row.outcome in MISSED)
        end = row.met_at or (row.as_of if row.outcome in ("missed", "overdue", "pending") else None)
        if end is None:
            return
        wait = end - row.starts_at
        if self.longest_wait is None or wait > self.longest_wait:
            self.longest_wait = wait
            self.worst_incident_id = row.incident_id


def step_lateness(rows: Iterable[DeadlineRow]) -> list[StepLateness]:
    """Per approval step and approver: drafts that waited there, how many waited past the
    step's escalation time, and the longest wait. The unit's deadlines are not in it."""
    found: dict[tuple[str, str], StepLateness] = {}
    for row in rows:
        if not row.is_step or row.outcome == "waived":
            continue
        person = row.responsible_person or row.responsible_unit
        key = (row.kind, person)
        found.setdefault(key, StepLateness(step=row.kind, person=person)).add(row)
    return [found[key] for key in sorted(found)]


def _step_table(lines: Sequence[StepLateness]) -> str:
    if not lines:
        return "<p>No draft waited at an approval step in this period.</p>"
    out = [
        "<table><thead><tr><th>审批环节 step</th><th>审批人 approver</th><th>等待 waits</th>"
        "<th>超时上报 escalated</th><th>最长等待 longest wait</th>"
        "<th>最长等待的事件 incident of the longest</th></tr></thead><tbody>"
    ]
    for line in lines:
        out.append(
            f"<tr><td>{_e(line.step.removeprefix(STEP_PREFIX))}</td><td>{_e(line.person)}</td>"
            f"<td>{line.waits}</td>"
            f'<td class="{"bad" if line.escalated else ""}">{line.escalated}</td>'
            f"<td>{_e(describe(line.longest_wait))}</td>"
            f"<td>{_e(line.worst_incident_id or '')}</td></tr>"
        )
    out.append("</tbody></table>")
    return "".join(out)


_CSS = """
body { font-family: "Noto Sans CJK SC", "PingFang SC", "Microsoft YaHei", sans-serif;
       margin: 2em auto; max-width: 72em; color: #222; line-height: 1.5; padding: 0 1em; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f2f2f2; }
td.bad, tr.missed td, tr.overdue td { color: #c62828; }
tr.met_late td { color: #8d6e00; }
tr.waived td { color: #888; }
small { color: #666; }
"""


def to_html(
    rows: Sequence[DeadlineRow],
    summary: dict[tuple[str, str], Summary],
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    title: str = "期限合规报告 Deadline compliance",
) -> str:
    """A standalone page (UTF-8, zh-CN): the summary per unit and per deadline kind, met and
    missed per month as an inline SVG chart, and every deadline. No script, no external asset."""
    as_of = rows[0].as_of if rows else datetime.now(UTC)
    if start and end:
        period = f"{_local(start)} – {_local(end)} (Asia/Shanghai, end excluded)"
    else:
        period = "all deadlines given"
    counts = month_counts(rows, start, end)
    chart = month_chart(counts) if counts else "<p>No deadline fell due in this period.</p>"
    return "".join(
        [
            '<!DOCTYPE html>\n<html lang="zh-CN">\n<head>\n<meta charset="utf-8">\n',
            '<meta name="viewport" content="width=device-width, initial-scale=1">\n',
            f"<title>{_e(title)}</title>\n<style>{_CSS}</style>\n</head>\n<body>\n",
            f"<h1>{_e(title)}</h1>\n",
            f"<p>期间 Period: {_e(period)}<br>截至 As of: {_e(_local(as_of))}<br>",
            f"期限 Deadlines: {len(rows)}</p>\n",
            "<h2>每月按时与逾期 Met and missed per month</h2>\n",
            chart,
            "\n<h2>按责任单位 Per responsible unit</h2>\n",
            _summary_table(totals(summary, "unit"), "单位 unit", lambda s: s.unit),
            "\n<h2>按期限类型 Per deadline kind</h2>\n",
            _summary_table(totals(summary, "kind"), "期限 kind", lambda s: s.kind),
            "\n<h2>按单位与期限类型 Per unit and kind</h2>\n",
            _summary_table(
                summary.values(), "单位 · 期限 unit · kind", lambda s: f"{s.unit} · {s.kind}"
            ),
            "\n<h2>审批环节的延误 Approval steps' own lateness</h2>\n",
            _step_table(step_lateness(rows)),
            "\n<h2>全部期限 Every deadline</h2>\n",
            _detail_table(rows),
            "\n</body>\n</html>\n",
        ]
    )
