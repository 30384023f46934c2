"""The compliance report across incidents (SPEC §2.10, §6): every deadline of a period, met or
missed, by how much, per unit and per kind, as CSV, a terminal table and a standalone page."""

from __future__ import annotations

import csv
import io
import json
import re
import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from temporalio.testing import ActivityEnvironment

from activities.audit import AuditActivities
from yuqing.audit.compliance import (
    CSV_HEADER,
    DeadlineRow,
    deadlines_in,
    month_counts,
    summarise,
    to_csv,
    to_html,
    to_json,
    to_text,
    totals,
)
from yuqing.effects import RecordTrail
from yuqing.roles import Role
from yuqing.state import Deadline, DeadlineStatus
from yuqing.working_time import SHANGHAI

# Long past, so that no other test's deadlines fall in the period.
START = datetime(2001, 3, 1, tzinfo=SHANGHAI)
END = datetime(2001, 5, 1, tzinfo=SHANGHAI)
NOW = datetime(2001, 4, 15, tzinfo=SHANGHAI)
A, B = "xixiangtang-branch", "qingxiu-branch"
SCRIPT_TITLE = "statement <script>alert('x')</script> & more"


def at(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2001, month, day, hour, minute, tzinfo=SHANGHAI)


def deadline(
    key: str,
    unit: str,
    due_at: datetime,
    status: DeadlineStatus,
    met_at: datetime | None = None,
    title: str | None = None,
) -> Deadline:
    return Deadline(
        key=key,
        title=title or f"{key} deadline",
        clock="calendar",
        starts_at=due_at - timedelta(hours=4),
        due_at=due_at,
        reminders_at=[],
        remind=[Role.unit_head],
        escalate_to=[Role.leadership_group],
        responsible_unit=unit,
        responsible_person=f"{unit}.head",
        policy_version="nanning-2017/1",
        status=status,
        met_at=met_at,
        breached_at=due_at if status is DeadlineStatus.breached else None,
    )


@pytest.fixture(scope="module")
async def incidents(pool: asyncpg.Pool) -> dict[str, str]:
    """Four made-up incidents over March and April 2001 and two units, stored through the
    projection activity as their workflows would store them; their ids by short name."""
    tag = uuid.uuid4().hex[:6]
    ids = {name: f"cmp-{tag}-{name}" for name in ("one", "two", "three", "four", "five")}
    m, b = DeadlineStatus.met, DeadlineStatus.breached
    p, w = DeadlineStatus.pending, DeadlineStatus.waived
    plans: dict[str, list[tuple[str | None, Deadline]]] = {
        "one": [
            # At the very start of the period: in it. Met two hours early.
            (None, deadline("report_important", A, START, m, START - timedelta(hours=2))),
            # Met three and a half hours late.
            (
                None,
                deadline(
                    "publish_statement", A, at(3, 6, 6), b, at(3, 6, 9, 30), title=SCRIPT_TITLE
                ),
            ),
        ],
        # Breached and never met: overdue 12 d 14 h as of NOW.
        "two": [(None, deadline("report_important", A, at(4, 2, 10), b))],
        "three": [
            (None, deadline("report_important", B, at(3, 20, 9), m, at(3, 20, 8))),
            # Not yet due at NOW.
            (None, deadline("publish_statement", B, at(4, 28), p)),
            # Due at the end of the period: not in it.
            (None, deadline("report_especially_major", B, END, p)),
        ],
        "four": [
            # Still pending, three days past due at NOW: missed, though not marked breached.
            (None, deadline("publish_statement", B, at(4, 12), p)),
            ("p1", deadline("netizen_initial_response", B, at(4, 3, 10), w)),
        ],
        # Outside the period.
        "five": [(None, deadline("report_important", A, at(2, 27), m, at(2, 27)))],
    }
    run = AuditActivities(pool).record_trail
    for name, planned in plans.items():
        incident_id = ids[name]
        for post_id in {post for post, _ in planned}:
            workflow_id = f"incident-{incident_id}" + (f"-post-{post_id}" if post_id else "")
            await ActivityEnvironment().run(
                run,
                RecordTrail(
                    workflow_id=workflow_id,
                    incident_id=incident_id,
                    post_id=post_id,
                    first_seq=0,
                    entries=[],
                    deadlines=[d for post, d in planned if post == post_id],
                ),
            )
    return ids


async def mine(pool: asyncpg.Pool, ids: dict[str, str]) -> list[DeadlineRow]:
    rows = await deadlines_in(pool, START, END, now=NOW)
    return [row for row in rows if row.incident_id in ids.values()]


async def test_each_deadline_with_its_outcome_and_margin(
    pool: asyncpg.Pool, incidents: dict[str, str]
) -> None:
    rows = await mine(pool, incidents)
    by_name = {v: k for k, v in incidents.items()}
    got = [
        (by_name[r.incident_id], r.key, r.outcome, r.early_by, r.late_by, r.still_overdue)
        for r in rows
    ]
    hours = timedelta(hours=1)
    assert got == [
        ("one", "report_important", "met", 2 * hours, None, False),
        ("one", "publish_statement", "met_late", None, 3.5 * hours, False),
        ("three", "report_important", "met", hours, None, False),
        ("two", "report_important", "missed", None, timedelta(days=12, hours=14), True),
        ("four", "netizen_initial_response", "waived", None, None, False),
        ("four", "publish_statement", "overdue", None, timedelta(days=3), True),
        ("three", "publish_statement", "pending", None, None, False),
    ]
    post = next(r for r in rows if r.post_id)
    assert (post.post_id, post.workflow_id) == ("p1", f"incident-{incidents['four']}-post-p1")
    assert rows[0].responsible_person == f"{A}.head"
    with pytest.raises(ValueError, match="timezone-aware"):
        await deadlines_in(pool, datetime(2001, 3, 1), END)


async def test_summary_per_unit_and_kind(pool: asyncpg.Pool, incidents: dict[str, str]) -> None:
    summary = summarise(await mine(pool, incidents))
    counts = {
        key: (s.total, s.met, s.missed, s.met_late, s.still_overdue, s.pending, s.waived)
        for key, s in summary.items()
    }
    assert counts == {
        (B, "netizen_initial_response"): (1, 0, 0, 0, 0, 0, 1),
        (B, "publish_statement"): (2, 0, 1, 0, 1, 1, 0),
        (B, "report_important"): (1, 1, 0, 0, 0, 0, 0),
        (A, "publish_statement"): (1, 0, 1, 1, 0, 0, 0),
        (A, "report_important"): (2, 1, 1, 0, 1, 0, 0),
    }
    assert list(summary) == sorted(summary)
    worst = summary[(A, "report_important")]
    assert (worst.worst_lateness, worst.worst_incident_id) == (
        timedelta(days=12, hours=14),
        incidents["two"],
    )
    assert summary[(A, "publish_statement")].worst_lateness == timedelta(hours=3, minutes=30)
    assert summary[(B, "report_important")].worst_lateness is None

    per_unit = {
        s.unit: (s.total, s.met, s.missed, s.pending, s.waived) for s in totals(summary, "unit")
    }
    assert per_unit == {A: (3, 1, 2, 0, 0), B: (4, 1, 1, 1, 1)}
    per_kind = {s.kind: (s.total, s.met, s.missed) for s in totals(summary, "kind")}
    assert per_kind == {
        "netizen_initial_response": (1, 0, 0),
        "publish_statement": (3, 0, 2),
        "report_important": (3, 2, 1),
    }
    worst_per_unit = {s.unit: s.worst_lateness for s in totals(summary, "unit")}
    assert worst_per_unit == {A: timedelta(days=12, hours=14), B: timedelta(days=3)}


async def test_csv_and_terminal_table(pool: asyncpg.Pool, incidents: dict[str, str]) -> None:
    rows = await mine(pool, incidents)
    text = to_csv(rows)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert text.splitlines()[0] == (
        "incident_id,post_id,workflow_id,deadline_key,title,clock,responsible_unit,"
        "responsible_person,starts_at,due_at,met_at,breached_at,status,outcome,"
        "early_by_seconds,late_by_seconds,late_as_of,policy_version,calendar_version"
    )
    assert tuple(parsed[0]) == CSV_HEADER
    assert len(parsed) == 7
    late = parsed[1]
    assert late["incident_id"] == incidents["one"]
    assert late["title"] == SCRIPT_TITLE  # CSV is data: quoted as needed, not escaped
    assert (late["status"], late["outcome"]) == ("breached", "met_late")
    assert (late["due_at"], late["met_at"]) == (
        "2001-03-06T06:00:00+08:00",
        "2001-03-06T09:30:00+08:00",
    )
    assert (late["early_by_seconds"], late["late_by_seconds"], late["late_as_of"]) == (
        "",
        "12600",
        "",
    )
    assert parsed[0]["early_by_seconds"] == "7200"
    missed = parsed[3]
    assert (missed["outcome"], missed["late_by_seconds"], missed["late_as_of"]) == (
        "missed",
        str(12 * 86400 + 14 * 3600),
        "2001-04-15T00:00:00+08:00",
    )
    assert parsed[4]["post_id"] == "p1"


async def test_terminal_report_fits_80_columns(
    pool: asyncpg.Pool, incidents: dict[str, str]
) -> None:
    rows = await mine(pool, incidents)
    shown = to_text(rows, start=START, end=END)
    assert max(len(line) for line in shown.splitlines()) <= 80
    assert "…" not in shown  # nothing cut short
    assert "as of 2001-04-15 00:00" in shown
    for margin in ("12 d 14 h 00 min late", "2 h 00 min early", "3 h 30 min late"):
        assert margin in shown
    # Every deadline, named whole: the incident, the kind, the unit and the person.
    for row in rows:
        assert row.incident_id in shown
    for name in ("netizen_initial_response", "publish_statement", "xixiangtang-branch"):
        assert name in shown
    # The summaries the help promises: per responsible unit and per deadline kind.
    per_unit = shown[shown.index("per responsible unit") : shown.index("per deadline kind")]
    assert re.search(rf"{A}\s+3\s+1\s+2 \(1/1\)\s+0 \(0\)\s+12 d 14 h 00 min", per_unit)
    assert re.search(rf"{B}\s+4\s+1\s+1 \(0/1\)\s+1 \(1\)\s+3 d 0 h 00 min", per_unit), per_unit
    per_kind = shown[shown.index("per deadline kind") :]
    assert re.search(r"publish_statement\s+3\s+0\s+2 ", per_kind), per_kind


async def test_json_report(pool: asyncpg.Pool, incidents: dict[str, str]) -> None:
    rows = await mine(pool, incidents)
    report = json.loads(to_json(rows, start=START, end=END))
    assert report["period"] == {
        "from": "2001-03-01T00:00:00+08:00",
        "to": "2001-05-01T00:00:00+08:00",
    }
    assert report["as_of"] == "2001-04-15T00:00:00+08:00"
    assert [set(d) for d in report["deadlines"]] == [set(CSV_HEADER)] * 7
    late = report["deadlines"][1]
    assert (late["outcome"], late["late_by_seconds"], late["early_by_seconds"]) == (
        "met_late",
        12600,
        None,
    )
    per_unit = {s["unit"]: (s["total"], s["met"], s["missed"]) for s in report["per_unit"]}
    assert per_unit == {A: (3, 1, 2), B: (4, 1, 1)}
    per_kind = {s["kind"]: s["missed"] for s in report["per_kind"]}
    assert per_kind == {
        "netizen_initial_response": 0,
        "publish_statement": 2,
        "report_important": 1,
    }
    assert len(report["per_unit_and_kind"]) == len(summarise(rows))


async def test_html_page(pool: asyncpg.Pool, incidents: dict[str, str]) -> None:
    rows = await mine(pool, incidents)
    assert month_counts(rows, START, END) == [("2001-03", 2, 1), ("2001-04", 0, 2)]
    page = to_html(rows, summarise(rows), start=START, end=END)

    assert page.startswith("<!DOCTYPE html>")
    assert '<html lang="zh-CN">' in page and '<meta charset="utf-8">' in page
    # The title is shown, escaped; nothing on the page runs or loads anything.
    assert "statement &lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; more" in page
    assert "<script" not in page.lower()
    assert not re.search(r"\b(src|href)\s*=", page)
    assert "url(" not in page and "@import" not in page
    # The chart: one met and one missed bar per month, labelled.
    svg = page[page.index("<svg") : page.index("</svg>")]
    assert svg.count("<rect") == 2 * 2 + 2  # two months, two bars each, two legend keys
    assert ">2001-03<" in svg and ">2001-04<" in svg
    assert "2001-03: 2 met" in svg and "2001-04: 2 missed" in svg
    for heading in ("按责任单位", "按期限类型", "全部期限"):
        assert heading in page
    assert f"<td>{A}</td><td>3</td><td>1</td>" in page
    assert "12 d 14 h 00 min" in page

    empty = to_html([], {}, start=START, end=END)
    assert "<svg" in empty and "<td>" not in empty


def test_outcome_of_a_deadline_met_on_the_dot() -> None:
    due = datetime(2001, 3, 1, tzinfo=UTC)
    row = DeadlineRow(
        workflow_id="incident-x",
        incident_id="x",
        post_id=None,
        key="report_important",
        title="t",
        clock="calendar",
        responsible_unit=A,
        responsible_person=None,
        starts_at=due - timedelta(hours=4),
        due_at=due,
        status="met",
        met_at=due,
        breached_at=None,
        policy_version="v",
        calendar_version=None,
        as_of=due + timedelta(days=1),
    )
    assert (row.outcome, row.early_by, row.late_by) == ("met", timedelta(0), None)
