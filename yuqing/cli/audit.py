"""The decision trail (SPEC §6) and deadline compliance, read from Temporal and PostgreSQL
directly rather than through the API."""

from __future__ import annotations

import sys
from collections.abc import Awaitable, Callable
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import asyncpg
import typer

from yuqing.cli.options import IncidentArg
from yuqing.cli.output import EXIT_INPUT, EXIT_UNREACHABLE, Failure, err, fail, out
from yuqing.settings import Settings
from yuqing.working_time import SHANGHAI

if TYPE_CHECKING:  # the audit modules pull in the SDK's worker: imported when a command runs
    from yuqing.audit.history import Replayed, TrailLine

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
        Loaded,
        TrailLine,
        compare,
        load_anywhere,
        post_workflow_ids,
        recorded_trail,
        trail_head,
    )
    from yuqing.audit.history import replay as replay_history
    from yuqing.audit.projection import projected_trail
    from yuqing.audit.timeline import render
    from yuqing.client import connect, data_converter, payload_keys
    from yuqing.codec import PayloadKeyError

    settings = Settings.from_env()
    try:
        converter = data_converter(payload_keys(settings))
    except PayloadKeyError as error:
        fail(False, Failure(EXIT_INPUT, str(error)))
    # PostgreSQL holds the projection (--check) and the archive, read when Temporal has let
    # the history go (its retention has passed) or cannot be reached.
    pool = await db.create_pool(settings.database_url) if settings.database_url else None
    try:
        try:
            client = await connect(settings)
        except RuntimeError as error:  # the SDK's "Failed client connect"
            if pool is None:
                fail(
                    False,
                    Failure(EXIT_UNREACHABLE, f"Temporal at {settings.temporal_address}: {error}"),
                )
            err.print(f"Temporal at {settings.temporal_address} cannot be reached: {error}")
            client = None

        async def load(workflow_id: str) -> Loaded:
            try:
                found = await load_anywhere(client, converter, pool, workflow_id)
            except RPCError as error:
                where = settings.temporal_address
                fail(False, Failure(EXIT_UNREACHABLE, f"Temporal at {where}: {error}"))
            except (LookupError, PayloadKeyError) as error:
                fail(False, Failure(EXIT_INPUT, str(error)))
            if found.source != "Temporal":
                err.print(f"{workflow_id}: read from {found.source} ({len(found.runs)} run(s))")
            return found

        first = await load(incident_workflow_id(incident_id))
        loaded = {first.workflow_id: first}
        for child in post_workflow_ids(first.runs[-1]):
            loaded[child] = await load(child)
        trails = {
            wf: [line for run in found.runs for line in recorded_trail(run)]
            for wf, found in loaded.items()
        }
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
            if pool is None:
                fail(False, Failure(EXIT_INPUT, "--check needs DATABASE_URL (./dev serve logs it)"))
            for workflow_id, recorded in trails.items():
                rows = await projected_trail(pool, workflow_id, chain=True)
                trail_fields = [{k: row[k] for k in TrailLine.__dataclass_fields__} for row in rows]
                diffs = compare(recorded, [TrailLine(**row) for row in trail_fields])
                found += len(diffs)
                verdict = "matches" if not diffs else f"differs in {len(diffs)} row(s)"
                err.print(f"projection of {workflow_id}: {verdict} ({len(rows)} rows)")
                for diff in diffs:
                    err.print(f"  {diff.describe('the projection')}", soft_wrap=True)
                # The history keeps the hash the last row had when it was written: the table's
                # must be the same, or the chain was recomputed from some row before it.
                anchored = trail_head(loaded[workflow_id].runs[-1])
                if anchored is not None and rows and rows[-1]["row_hash"] != anchored:
                    found += 1
                    err.print(
                        f"  the history anchors {workflow_id}'s last row at {anchored}; the"
                        f" table says {rows[-1]['row_hash']}: the chain was rewritten",
                        soft_wrap=True,
                    )
        if replay:
            for workflow_id, history in loaded.items():
                for run in history.runs:
                    replayed = await replay_history(run, converter)
                    found += _replayed(workflow_id, recorded_trail(run), replayed)
        return found
    finally:
        if pool is not None:
            await pool.close()


def _replayed(workflow_id: str, recorded: list[TrailLine], replayed: Replayed) -> int:
    """Say what replaying one run found; how many differences."""
    from yuqing.audit.history import REPLAY_CLOCK_SLACK, compare


    diffs = compare(recorded, replayed.trail, clock_slack=REPLAY_CLOCK_SLACK) if recorded else []
    if replayed.error:
        err.print(
            f"replay of {workflow_id}: today's code cannot follow it: {replayed.error}",
            soft_wrap=True,
        )
        return len(diffs) + 1
    if diffs:
        err.print(f"replay of {workflow_id}: {len(diffs)} decision(s) differ")
        for diff in diffs:
            err.print(f"  {diff.describe('today' + chr(39) + 's code')}", soft_wrap=True)
        return len(diffs)
    grade = getattr(replayed.state, "grade", None)
    graded = f" (grade {grade})" if grade else ""
    err.print(f"replay of {workflow_id}: the same decisions{graded}")
    return 0


@app.command("audit-verify")
def audit_verify(
    as_json: Annotated[bool, typer.Option("--json", help="Print the report as JSON.")] = False,
) -> None:
    """Check the whole record in PostgreSQL: any edited, removed or recomputed row is named.

    The audit table's hash chain, each trail numbered without holes, the notary's signed
    checkpoints of the chain's head (a recomputed chain, a cut tail, a removed incident), and
    each archived history against its digest. Reads DATABASE_URL, and the notary's public key
    from YUQING_NOTARY_PUBLIC_KEY (default: the data dir's keys/notary-ed25519.pub). Exit
    code 1 when anything is wrong.
    """
    import asyncio

    from yuqing.audit.notary import trusted_public_key
    from yuqing.audit.verify import verify_record

    try:
        key = trusted_public_key()
    except ValueError as error:
        fail(False, Failure(EXIT_INPUT, str(error)))

    async def run() -> bool:
        report = await _with_pool(lambda pool: verify_record(pool, key))
        if as_json:
            out.print(report.model_dump_json(indent=2), markup=False, soft_wrap=True)
            return report.ok
        for problem in report.problems:
            where = f"row {problem.row_id}" if problem.row_id is not None else "the record"
            if problem.workflow_id:
                where += f" ({problem.workflow_id} #{problem.seq})"
            err.print(f"{where}: {problem.what}", soft_wrap=True, markup=False)
        when = (
            report.newest_checkpoint.astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")
            if report.newest_checkpoint
            else None
        )
        out.print(
            f"{report.rows_checked} row(s), {report.checkpoints_checked} signed checkpoint(s)"
            f" and {report.archives_checked} archived history(ies) checked: "
            + ("the chain is intact" if report.ok else "THE CHAIN IS BROKEN"),
            markup=False,
            soft_wrap=True,
        )
        if when:
            out.print(
                f"newest checkpoint {when} (Beijing time), checked against"
                f" {report.checkpoint_key}; {report.rows_after_checkpoint} row(s) since",
                markup=False,
                soft_wrap=True,
            )
        else:
            out.print(
                "no signed checkpoint yet: a recomputed chain would not show (run"
                " `yuqing audit-checkpoint`)",
                markup=False,
                soft_wrap=True,
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
