"""The decision trail (SPEC §6) and deadline compliance, read from Temporal and PostgreSQL
directly rather than through the API."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, TypeVar

import asyncpg
import typer

from yuqing.cli.options import IncidentArg
from yuqing.cli.output import EXIT_INPUT, EXIT_UNREACHABLE, Failure, err, fail, out
from yuqing.settings import Settings
from yuqing.working_time import SHANGHAI

T = TypeVar("T")

app = typer.Typer()


class TrailFormat(StrEnum):
    text = "text"
    json = "json"
    md = "md"
    html = "html"


@app.command()
def audit(
    incident_id: IncidentArg,
    fmt: Annotated[
        TrailFormat, typer.Option("--format", help="How to write the timeline.")
    ] = TrailFormat.text,
    output: Annotated[
        Path | None, typer.Option(help="Write it to this file instead of standard output.")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(help="Compare the timeline with the PostgreSQL projection, row for row."),
    ] = False,
    replay: Annotated[
        bool,
        typer.Option(help="Run the recorded history through today's code: same decisions?"),
    ] = False,
) -> None:
    """The incident's decision trail, rebuilt from its Temporal history alone.

    Every input, decision, deadline, notice, publication and refused signal, of the incident
    and its netizen posts, in time order. Reads TEMPORAL_ADDRESS (and DATABASE_URL for
    --check). Exit code 1 when --check or --replay finds a difference.
    """
    import asyncio

    differences = asyncio.run(_audit(incident_id, fmt, output, check, replay))
    raise typer.Exit(1 if differences else 0)


async def _audit(
    incident_id: str, fmt: TrailFormat, output: Path | None, check: bool, replay: bool
) -> int:
    from temporalio.service import RPCError

    from yuqing import db, incident_workflow_id
    from yuqing.audit.history import (
        TrailLine,
        compare,
        load_history,
        recorded_trail,
    )
    from yuqing.audit.history import replay as replay_history
    from yuqing.audit.projection import projected_trail
    from yuqing.audit.timeline import render
    from yuqing.client import connect

    settings = Settings.from_env()
    try:
        client = await connect(settings)
        first = await load_history(client, incident_workflow_id(incident_id))
    except RPCError as error:
        fail(False, Failure(EXIT_UNREACHABLE, f"Temporal at {settings.temporal_address}: {error}"))
    loaded = {incident_workflow_id(incident_id): first}
    for event in first.events:
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            child = event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            loaded[child] = await load_history(client, child)
    trails = {wf: recorded_trail(history) for wf, history in loaded.items()}
    lines = [line for trail in trails.values() for line in trail]
    text = render(incident_id, lines, fmt.value)
    if output is not None:
        output.write_text(text, encoding="utf-8")  # noqa: ASYNC240 - one small file, once
        err.print(f"wrote {len(lines)} line(s) to {output}")
    else:
        out.print(text, end="", soft_wrap=True, markup=False)
    if not lines:
        err.print("no trail is recorded in this history (it began before the projection)")
    found = 0
    if check:
        if not settings.database_url:
            fail(False, Failure(EXIT_INPUT, "--check needs DATABASE_URL (./dev serve logs it)"))
        pool = await db.create_pool(settings.database_url)
        try:
            for workflow_id, recorded in trails.items():
                rows = await projected_trail(pool, workflow_id)
                diffs = compare(recorded, [TrailLine(**row) for row in rows])
                found += len(diffs)
                verdict = "matches" if not diffs else f"differs in {len(diffs)} row(s)"
                err.print(f"projection of {workflow_id}: {verdict} ({len(rows)} rows)")
                for diff in diffs:
                    err.print(f"  {diff.describe('the projection')}", soft_wrap=True)
        finally:
            await pool.close()
    if replay:
        for workflow_id, history in loaded.items():
            replayed = await replay_history(history)
            diffs = compare(trails[workflow_id], replayed.trail) if trails[workflow_id] else []
            found += len(diffs) + (1 if replayed.error else 0)
            if replayed.error:
                err.print(
                    f"replay of {workflow_id}: today's code cannot follow it: {replayed.error}",
                    soft_wrap=True,
                )
            elif diffs:
                err.print(f"replay of {workflow_id}: {len(diffs)} decision(s) differ")
                for diff in diffs:
                    err.print(f"  {diff.describe('today' + chr(39) + 's code')}", soft_wrap=True)
            else:
                grade = getattr(replayed.state, "grade", None)
                err.print(
                    f"replay of {workflow_id}: the same decisions"
                    + (f" (grade {grade})" if grade else "")
                )
    return found


@app.command("audit-verify")
def audit_verify() -> None:
    """Check the PostgreSQL audit table's hash chain: any edited or removed row is named.

    Reads DATABASE_URL. Exit code 1 when the chain is broken.
    """
    import asyncio

    from yuqing.audit.projection import verify

    async def run() -> bool:
        report = await _with_pool(verify)
        for problem in report.problems:
            err.print(
                f"row {problem.row_id} ({problem.workflow_id} #{problem.seq}): {problem.what}",
                soft_wrap=True,
            )
        out.print(
            f"{report.rows_checked} row(s) checked: "
            + ("the chain is intact" if report.ok else "THE CHAIN IS BROKEN")
        )
        return report.ok

    raise typer.Exit(0 if asyncio.run(run()) else 1)


async def _with_pool(work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    """Run `work` on a pool to DATABASE_URL, closed afterwards; exit 2 when it is not set."""
    from yuqing import db

    url = Settings.from_env().database_url
    if not url:
        fail(False, Failure(EXIT_INPUT, "DATABASE_URL is not set (./dev serve logs it)"))
    pool = await db.create_pool(url)
    try:
        return await work(pool)
    finally:
        await pool.close()


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"
    html = "html"


@app.command()
def compliance(
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (Asia/Shanghai).")],
    end: Annotated[str, typer.Option("--to", help="Day after the last, YYYY-MM-DD.")],
    fmt: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.table,
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """Every deadline due in the period: met or missed, by how much, and who was responsible.

    Per unit and per deadline kind (SPEC §2.10). Reads DATABASE_URL.
    """
    import asyncio

    from yuqing.audit import compliance as report

    try:
        first = datetime.fromisoformat(start).replace(tzinfo=SHANGHAI)
        last = datetime.fromisoformat(end).replace(tzinfo=SHANGHAI)
    except ValueError as error:
        fail(False, Failure(EXIT_INPUT, f"--from/--to: {error}"))
    if last <= first:
        fail(False, Failure(EXIT_INPUT, "--to must come after --from"))

    found = list(asyncio.run(_with_pool(lambda pool: report.deadlines_in(pool, first, last))))
    if fmt is ReportFormat.table:
        out.print(report.to_table(found))
        return
    if fmt is ReportFormat.csv:
        text = report.to_csv(found)
    else:
        text = report.to_html(found, report.summarise(found), start=first, end=last)
    if output is None:
        sys.stdout.write(text)  # as written: no markup, no wrapping
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {len(found)} deadline(s) to {output}")
