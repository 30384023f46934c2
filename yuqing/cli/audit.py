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

    from yuqing.audit.forked import ReplayProcess
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


# Where `load_anywhere` read a history (yuqing.audit.history.Loaded.source), as the catalog says it.
SOURCES = {
    "the archive": "cli.audit.the_archive",
    "Temporal and the archive": "cli.audit.temporal_and_archive",
}


def write(output: Path, text: str, what: str) -> None:
    try:
        output.write_text(text, encoding="utf-8")
    except OSError as error:
        raise tool.cannot_write(output, error.strerror or str(error)) from error
    tool.say(tool.said("cli.audit.wrote", what=tool.shown(what), output=str(output)))


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
    if check:
        database_url("--check")
    settings = Settings.from_env()
    replayer = None
    if replay:
        from yuqing.audit.forked import ReplayProcess, take_early
        from yuqing.client import plain_data_converter

        # (tools) Forked before the Temporal connection starts the SDK's threads: it imports
        # the replayer while the histories are read, then replays every run at once. The
        # `yuqing` entry point forks it first thing (`start_early`); here otherwise.
        replayer = take_early() or ReplayProcess.start(plain_data_converter)
    try:
        differences = tool.run(_audit(settings, incident_id, fmt, output, check, replay, replayer))
    finally:
        if replayer is not None:
            replayer.close()
    raise typer.Exit(tool.REFUSED if differences else tool.DONE)


async def _audit(
    settings: Settings,
    incident_id: str,
    fmt: TrailFormat,
    output: Path | None,
    check: bool,
    replay: bool,
    replayer: ReplayProcess | None = None,
) -> int:
    from yuqing.client import data_converter, payload_keys
    from yuqing.codec import PayloadKeyError

    try:
        converter = data_converter(payload_keys(settings))
    except PayloadKeyError as error:
        raise tool.bad_input(str(error)) from error
    # PostgreSQL holds the projection (--check) and the archive, read when Temporal has let a
    # history go (its retention has passed) or cannot be reached. A --check connects first, so
    # that one that cannot check says so before any wait for Temporal; otherwise the pool is
    # opened only if the archive is needed (a history Temporal has whole costs no connection).
    opened: list[asyncpg.Pool | None] = []

    async def pool() -> asyncpg.Pool | None:
        if not opened:
            found = None
            if settings.database_url:
                try:
                    found = await open_pool(settings.database_url)
                except tool.ToolFailure as failure:
                    if check:
                        raise
                    tool.say(
                        tool.said(
                            "cli.audit.reading_temporal_alone", why=tool.shown(failure.message)
                        )
                    )
            opened.append(found)
        return opened[0]

    if check:
        await pool()
    try:
        return await _trail(
            settings, converter, pool, incident_id, fmt, output, check, replay, replayer
        )
    finally:
        if opened and opened[0] is not None:
            await opened[0].close()


async def _trail(
    settings: Settings,
    converter: Any,
    pool: Callable[[], Awaitable[asyncpg.Pool | None]],
    incident_id: str,
    fmt: TrailFormat,
    output: Path | None,
    check: bool,
    replay: bool,
    replayer: ReplayProcess | None = None,
) -> int:
    from temporalio.service import RPCError

    from yuqing import incident_workflow_id
    from yuqing.audit.history import (
        IncompleteHistory,
        Loaded,
        load_anywhere,
        post_workflow_ids,
        recorded_trail,
    )
    from yuqing.audit.timeline import render
    from yuqing.codec import PayloadKeyError

    address = settings.temporal_address
    warming = None
    if replay and replayer is None:
        import asyncio

        from yuqing.audit.history import import_replayer

        # (tools) The replayer's modules (the SDK's worker, the workflows) are imported while
        # the histories come from Temporal: most of that wait is Temporal's, on another core.
        warming = asyncio.get_running_loop().run_in_executor(None, import_replayer)
    try:
        client = await tool.connect_temporal_reader(settings, converter)
    except tool.ToolFailure as failure:
        if failure.code != tool.UNREACHABLE or await pool() is None:
            raise
        tool.say(tool.said("cli.audit.reading_archive", why=tool.shown(failure.message)))
        client = None

    async def load(workflow_id: str) -> Loaded:
        try:
            found: Loaded = await tool.waiting(
                f"Temporal at {address}",
                # Without --replay only the trail is read: only its payloads are decrypted
                # (its inputs alone, unless --check reads the anchors in their results).
                load_anywhere(
                    client, converter, pool, workflow_id, trail_only=not replay, results=check
                ),
            )
        except IncompleteHistory as error:
            raise tool.refused(tool.said("cli.incomplete_history", why=str(error))) from error
        except (RPCError, RuntimeError) as error:  # RuntimeError: the connection lost meanwhile
            raise tool.temporal_failure(error, address, incident_id) from error
        except LookupError as error:  # neither Temporal nor the archive has it
            where = tool.said("cli.where.temporal_nor_archive", address=address)
            raise tool.unknown_incident(incident_id, where) from error
        except PayloadKeyError as error:
            raise tool.bad_input(str(error)) from error
        if found.source != "Temporal":
            tool.say(
                tool.said(
                    "cli.audit.read_from",
                    workflow_id=workflow_id,
                    source=tool.shown(tool.said(SOURCES.get(found.source, found.source))),
                    runs=len(found.runs),
                )
            )
        return found

    first = await load(incident_workflow_id(incident_id))
    loaded = {first.workflow_id: first}
    for child in post_workflow_ids(first.runs[-1]):
        loaded[child] = await load(child)
    # The replayer has the histories at once: it replays while the timeline is written.
    replaying = None
    if replay and replayer is not None:
        replaying = replayer.begin({wf: found.runs for wf, found in loaded.items()})
    try:
        trails = {
            wf: [entry for run in found.runs for entry in recorded_trail(run)]
            for wf, found in loaded.items()
        }
        lines = [entry for trail in trails.values() for entry in trail]
        text = render(incident_id, lines, fmt.value, tool.language())
        if output is not None:
            write(output, text, tool.said("cli.audit.lines", n=len(lines)))
        else:
            import sys

            sys.stdout.write(text)
        if not lines:
            tool.say(tool.said("cli.audit.no_trail"))
        found = 0
        if check:
            checked = await pool()
            assert checked is not None  # connected before anything else
            found += await _check(checked, trails, loaded)
        if replaying is not None:
            from yuqing.audit.forked import ReplayFailed
            from yuqing.audit.history import ended_whole

            try:
                reached = await replaying
            except ReplayFailed as error:
                failed = tool.said("cli.audit.replay_failed", error=str(error))
                raise tool.ToolFailure(tool.BUG, failed) from error
            for workflow_id, history in loaded.items():
                whole = ended_whole(history.runs[-1])
                found += _replayed(workflow_id, trails[workflow_id], reached[workflow_id], whole)
    except BaseException:
        # Failed or stopped meanwhile: the replay is not waited for (nor left running).
        if replayer is not None:
            replayer.close()
        if replaying is not None:
            replaying.cancel()
        raise
    if replaying is None and replay:
        import dataclasses

        from temporalio.client import WorkflowHistory

        from yuqing.audit.history import ended_whole
        from yuqing.audit.history import replay as replay_history

        # Decoded as they were loaded: replayed without the codec, so that no payload a
        # replayed command carries is sealed again for nothing (core matches commands to the
        # history's events by kind and id, never by their payloads).
        plain = dataclasses.replace(converter, payload_codec=None)
        if warming is not None:
            await warming
        for workflow_id, history in loaded.items():
            # Every run at once: a run that continued as new can leave its last lines to the
            # next run to record.
            events = [event for run in history.runs for event in run.events]
            replayed = await replay_history(WorkflowHistory(workflow_id, events), plain)
            whole = ended_whole(history.runs[-1])
            found += _replayed(workflow_id, trails[workflow_id], replayed, whole)
    return found


async def _check(pool: asyncpg.Pool, trails: dict[str, list[Any]], loaded: dict[str, Any]) -> int:
    from yuqing.audit.history import (
        TrailLine,
        compare_projection,
        ended_whole,
        trail_head,
        unconfirmed_seqs,
    )
    from yuqing.audit.projection import TRAIL_FIELDS, projected_trail

    tool.quiet_logs()
    found = 0
    for workflow_id, recorded in trails.items():
        runs = loaded[workflow_id].runs
        whole = ended_whole(runs[-1])
        rows = await projected_trail(pool, workflow_id, chain=True)
        fields = [{k: row[k] for k in TRAIL_FIELDS} for row in rows]
        pending = set() if whole else unconfirmed_seqs(runs[-1])
        compared = compare_projection(
            recorded, [TrailLine(**row) for row in fields], whole=whole, unconfirmed=pending
        )
        diffs = compared.differences
        found += len(diffs)
        if diffs:
            verdict = tool.said("cli.audit.projection_differs", n=len(diffs), rows=len(rows))
        else:
            verdict = tool.said("cli.audit.projection_matches", rows=len(rows))
        tool.say(
            tool.said("cli.audit.projection", workflow_id=workflow_id, verdict=tool.shown(verdict))
        )
        for diff in diffs:
            tool.say(f"  {diff.describe('the projection')}")
        for note in compared.notes():
            tool.say(f"  {note}")
        # The history keeps the hash its last copied row had when it was written: the table
        # must hold that row as it was (its last row, once the workflow ended whole), or the
        # chain was recomputed from some row before it.
        anchored = next((h for h in map(trail_head, reversed(runs)) if h is not None), None)
        if anchored is None or not rows:
            continue
        held = rows[-1]["row_hash"] == anchored or (
            not whole and any(row["row_hash"] == anchored for row in rows)
        )
        if not held:
            found += 1
            said = tool.said(
                "cli.audit.chain_rewritten",
                workflow_id=workflow_id,
                anchored=anchored,
                found=rows[-1]["row_hash"],
            )
            tool.say(f"  {tool.shown(said)}")
    return found


def _replayed(workflow_id: str, recorded: list[Any], replayed: Any, whole: bool) -> int:
    """Say what replaying a workflow's runs found; how many differences. Unless it ended
    `whole`, only the lines its history records are compared (the rest are counted)."""
    from yuqing.audit.history import Comparison, compare_replay

    compared = compare_replay(recorded, replayed.trail, whole=whole) if recorded else Comparison([])
    diffs = compared.differences
    if replayed.error:
        tool.say(
            tool.said("cli.audit.replay_cannot", workflow_id=workflow_id, error=replayed.error)
        )
        return len(diffs) + 1
    if diffs:
        tool.say(tool.said("cli.audit.replay_differs", workflow_id=workflow_id, n=len(diffs)))
        for diff in diffs:
            tool.say(f"  {diff.describe(chr(39).join(('today', 's code')))}")
        return len(diffs)
    grade = replayed.grade
    graded = tool.shown(tool.said("cli.audit.graded", grade=grade)) if grade else ""
    tool.say(tool.said("cli.audit.replay_same", workflow_id=workflow_id, graded=graded))
    for note in compared.notes():
        tool.say(f"  {note}")
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
    tool.quiet_logs()
    url = database_url("audit-verify")
    from yuqing.audit.notary import trusted_public_key

    try:
        key = trusted_public_key()
    except ValueError as error:
        raise tool.bad_input(str(error)) from error

    async def run() -> bool:
        from yuqing.audit.verify import verify_record

        tool.quiet_logs()
        report = await with_pool(url, lambda pool: verify_record(pool, key))
        if as_json:
            line(report.model_dump_json(indent=2))
            return report.ok
        for problem in report.problems:
            where = f"row {problem.row_id}" if problem.row_id is not None else "the record"
            if problem.workflow_id:
                where += f" ({problem.workflow_id} #{problem.seq})"
            tool.say(f"{where}: {problem.what}")
        line(
            f"{report.rows_checked} row(s), {report.checkpoints_checked} signed checkpoint(s)"
            f" and {report.archives_checked} archived history(ies) checked: "
            + ("the chain is intact" if report.ok else "THE CHAIN IS BROKEN")
        )
        if report.newest_checkpoint:
            when = report.newest_checkpoint.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")
            line(
                f"newest checkpoint {when} (Beijing time), checked against"
                f" {report.checkpoint_key}; {report.rows_after_checkpoint} row(s) since"
            )
        else:
            line(
                "no signed checkpoint yet: a recomputed chain would not show (run"
                " `yuqing audit-checkpoint`)"
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
        write(output, text, tool.said("cli.audit.deadlines", n=len(found)))
