"""The decision trail (SPEC §6) and deadline compliance, read from Temporal and PostgreSQL
directly rather than through the API.

Each command checks what it can before it reads anything (the output path, DATABASE_URL), so
a mistake costs no wait; every service is named, with its address, when it cannot be reached.
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, TypeVar

import typer

from yuqing import tool
from yuqing.cli.options import IncidentArg, commands
from yuqing.cli.output import BEIJING, line

if TYPE_CHECKING:
    import asyncpg

    from yuqing.settings import Settings

T = TypeVar("T")

app = commands()

# A PostgreSQL that does not answer its connection in this long is given up.
POSTGRES_CONNECT_S = 10.0

OutputOption = Annotated[
    Path | None,
    typer.Option(
        "--output",
        metavar="FILE",
        help="Write it to this file instead of standard output.",
        show_default=False,
    ),
]


def writable(output: Path | None) -> None:
    """Exit 2 now, before any work, if `output` cannot be written."""
    if output is None:
        return
    folder = output.parent if str(output.parent) else Path(".")
    if output.is_dir():
        raise tool.cannot_write(output, "it is a directory")
    if not folder.is_dir():
        raise tool.cannot_write(output, f"there is no directory {folder}")
    if not os.access(folder, os.W_OK) or (output.exists() and not os.access(output, os.W_OK)):
        raise tool.cannot_write(output, "permission denied")


def write(output: Path, text: str, what: str) -> None:
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise tool.cannot_write(output, error.strerror or str(error)) from error
    tool.say(f"wrote {what} to {output}")


def database_url(what: str) -> str:
    from yuqing.settings import Settings

    url = Settings.from_env().database_url
    if not url:
        raise tool.database_url_missing(what)
    return url


async def open_pool(url: str) -> asyncpg.Pool:
    """A pool to PostgreSQL at `url`; one that cannot be reached is a `ToolFailure` (exit 3)."""
    import asyncio

    import asyncpg

    from yuqing import db

    tool.quiet_logs()  # yuqing.db logs through structlog
    try:
        return await tool.waiting(
            f"PostgreSQL at {tool.redact(url)}",
            asyncio.wait_for(db.create_pool(url), POSTGRES_CONNECT_S),
        )
    except TimeoutError as error:
        raise tool.postgres_unreachable(
            url, f"no answer within {POSTGRES_CONNECT_S:g} s"
        ) from error
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise tool.postgres_unreachable(url, str(error) or type(error).__name__) from error
    except ValueError as error:  # a malformed URL
        raise tool.bad_input(f"DATABASE_URL is not a PostgreSQL address: {error}") from error


async def with_pool(url: str, work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    """Run `work` on a pool to PostgreSQL at `url`, closed afterwards."""
    pool = await open_pool(url)
    try:
        return await work(pool)
    finally:
        await pool.close()


# -- the trail ---------------------------------------------------------------------------------


class TrailFormat(StrEnum):
    text = "text"
    json = "json"
    md = "md"
    html = "html"


@app.command()
def audit(
    incident_id: IncidentArg,
    fmt: Annotated[
        TrailFormat,
        typer.Option("--format", metavar="[text|json|md|html]", help="How to write the timeline."),
    ] = TrailFormat.text,
    output: OutputOption = None,
    check: Annotated[
        bool,
        typer.Option(
            "--check", help="Compare the timeline with the PostgreSQL projection, row for row."
        ),
    ] = False,
    replay: Annotated[
        bool,
        typer.Option(
            "--replay", help="Run the recorded history through today's code: same decisions?"
        ),
    ] = False,
) -> None:
    """The incident's decision trail, rebuilt from its Temporal history alone.

    Every input, decision, deadline, notice, publication and refused signal, of the incident
    and its netizen posts, in time order. Reads TEMPORAL_ADDRESS (and DATABASE_URL for
    --check). Exit code 1 when --check or --replay finds a difference.
    """
    from yuqing.settings import Settings

    tool.quiet_logs()
    writable(output)
    url = database_url("--check") if check else None
    settings = Settings.from_env()
    differences = tool.run(_audit(settings, incident_id, fmt, output, url, replay))
    raise typer.Exit(tool.REFUSED if differences else tool.DONE)


async def _load(client: Any, settings: Settings, incident_id: str, workflow_id: str) -> Any:
    from temporalio.service import RPCError

    from yuqing.audit.history import load_history

    try:
        return await tool.waiting(
            f"Temporal at {settings.temporal_address}", load_history(client, workflow_id)
        )
    except (RPCError, RuntimeError) as error:  # RuntimeError: the connection lost meanwhile
        raise tool.temporal_failure(error, settings.temporal_address, incident_id) from error


async def _audit(
    settings: Settings,
    incident_id: str,
    fmt: TrailFormat,
    output: Path | None,
    database: str | None,
    replay: bool,
) -> int:
    # PostgreSQL first: a --check that cannot check says so before any wait for Temporal.
    pool = await open_pool(database) if database is not None else None
    try:
        return await _trail(settings, incident_id, fmt, output, pool, replay)
    finally:
        if pool is not None:
            await pool.close()


async def _trail(
    settings: Settings,
    incident_id: str,
    fmt: TrailFormat,
    output: Path | None,
    pool: asyncpg.Pool | None,
    replay: bool,
) -> int:
    from yuqing import incident_workflow_id
    from yuqing.audit.history import recorded_trail
    from yuqing.audit.timeline import render

    client = await tool.connect_temporal(settings)
    first = await _load(client, settings, incident_id, incident_workflow_id(incident_id))
    loaded = {incident_workflow_id(incident_id): first}
    for event in first.events:
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            child = event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            loaded[child] = await _load(client, settings, incident_id, child)
    trails = {wf: recorded_trail(history) for wf, history in loaded.items()}
    lines = [entry for trail in trails.values() for entry in trail]
    text = render(incident_id, lines, fmt.value)
    if output is not None:
        write(output, text, f"{len(lines)} line(s)")
    else:
        import sys

        sys.stdout.write(text)
    if not lines:
        tool.say("no trail is recorded in this history (it began before the projection)")
    found = 0
    if pool is not None:
        found += await _check(pool, trails)
    if replay:
        found += await _replay(loaded, trails)
    return found


async def _check(pool: asyncpg.Pool, trails: dict[str, list[Any]]) -> int:
    from yuqing.audit.history import TrailLine, compare
    from yuqing.audit.projection import projected_trail

    tool.quiet_logs()

    found = 0
    for workflow_id, recorded in trails.items():
        rows = await projected_trail(pool, workflow_id)
        diffs = compare(recorded, [TrailLine(**row) for row in rows])
        found += len(diffs)
        verdict = "matches" if not diffs else f"differs in {len(diffs)} row(s)"
        tool.say(f"projection of {workflow_id}: {verdict} ({len(rows)} rows)")
        for diff in diffs:
            tool.say(f"  {diff.describe('the projection')}")
    return found


async def _replay(loaded: dict[str, Any], trails: dict[str, list[Any]]) -> int:
    from yuqing.audit.history import compare
    from yuqing.audit.history import replay as replay_history

    found = 0
    for workflow_id, history in loaded.items():
        replayed = await replay_history(history)
        diffs = compare(trails[workflow_id], replayed.trail) if trails[workflow_id] else []
        found += len(diffs) + (1 if replayed.error else 0)
        if replayed.error:
            tool.say(f"replay of {workflow_id}: today's code cannot follow it: {replayed.error}")
        elif diffs:
            tool.say(f"replay of {workflow_id}: {len(diffs)} decision(s) differ")
            for diff in diffs:
                tool.say(f"  {diff.describe(chr(39).join(('today', 's code')))}")
        else:
            grade = getattr(replayed.state, "grade", None)
            tool.say(
                f"replay of {workflow_id}: the same decisions"
                + (f" (grade {grade})" if grade else "")
            )
    return found


@app.command("audit-verify")
def audit_verify() -> None:
    """Check the PostgreSQL audit table's hash chain: any edited or removed row is named.

    Reads DATABASE_URL. Exit code 1 when the chain is broken.
    """
    tool.quiet_logs()
    url = database_url("audit-verify")

    async def run() -> bool:
        from yuqing.audit.projection import verify

        tool.quiet_logs()
        report = await with_pool(url, verify)
        for problem in report.problems:
            tool.say(f"row {problem.row_id} ({problem.workflow_id} #{problem.seq}): {problem.what}")
        line(
            f"{report.rows_checked} row(s) checked: "
            + ("the chain is intact" if report.ok else "THE CHAIN IS BROKEN")
        )
        return report.ok

    raise typer.Exit(tool.DONE if tool.run(run()) else tool.REFUSED)


# -- compliance --------------------------------------------------------------------------------


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"
    json = "json"
    html = "html"


def _day(value: str, option: str) -> datetime:
    try:
        return datetime.strptime(value, "%Y-%m-%d").replace(tzinfo=BEIJING)
    except ValueError as error:
        raise tool.bad_input(f"{option} {value!r} is not a day: write it as YYYY-MM-DD") from error


@app.command()
def compliance(
    start: Annotated[
        str | None,
        typer.Option(
            "--from",
            metavar="YYYY-MM-DD",
            help="The first day (Beijing time); default: 30 days before --to.",
            show_default=False,
        ),
    ] = None,
    end: Annotated[
        str | None,
        typer.Option(
            "--to",
            metavar="YYYY-MM-DD",
            help="The day after the last; default: tomorrow, i.e. up to today included.",
            show_default=False,
        ),
    ] = None,
    fmt: Annotated[
        ReportFormat,
        typer.Option("--format", metavar="[table|csv|json|html]", help="How to write it."),
    ] = ReportFormat.table,
    output: OutputOption = None,
) -> None:
    """Every deadline due in the period: met or missed, by how much, and who was responsible.

    Then the same per responsible unit and per deadline kind (SPEC §2.10): how many, met,
    missed (met late, or still open), pending, and the worst lateness. Reads DATABASE_URL.
    """
    from datetime import timedelta

    tool.quiet_logs()
    if end is None:
        today = datetime.now(BEIJING).replace(hour=0, minute=0, second=0, microsecond=0)
        last = today + timedelta(days=1)
    else:
        last = _day(end, "--to")
    first = last - timedelta(days=30) if start is None else _day(start, "--from")
    if last <= first:
        raise tool.bad_input(f"--to must come after --from ({end} is not after {start})")
    writable(output)
    url = database_url("compliance")

    from yuqing.audit import compliance as report

    found = tool.run(with_pool(url, lambda pool: report.deadlines_in(pool, first, last)))
    if fmt is ReportFormat.table and output is None:
        from yuqing.cli.output import console

        out = console()  # the terminal's width and colours (80 columns, none, elsewhere)
        for part in report.to_tables(found, start=first, end=last):
            out.print(part)
            out.print()
        return
    if fmt is ReportFormat.table:
        text = report.to_text(found, start=first, end=last)
    elif fmt is ReportFormat.csv:
        text = report.to_csv(found)
    elif fmt is ReportFormat.json:
        text = report.to_json(found, start=first, end=last)
    else:
        text = report.to_html(found, report.summarise(found), start=first, end=last)
    if output is None:
        import sys

        sys.stdout.write(text)  # as written: no markup, no wrapping
    else:
        write(output, text, f"{len(found)} deadline(s)")
