"""Keeping the record (issue 11): the notary's checkpoint, migrations as the owner, the
payload keys. Operators' commands; they read PostgreSQL and key files directly."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated
from urllib.parse import unquote, urlsplit

import typer

from yuqing.cli.output import EXIT_INPUT, EXIT_UNREACHABLE, Failure, err, fail, out

app = typer.Typer()


def _role_of(url: str) -> str | None:
    user = urlsplit(url).username
    return unquote(user) if user else None


@app.command("audit-checkpoint")
def audit_checkpoint() -> None:
    """Sign the audit chain's head, as the notary, after checking what was added since.

    Reads YUQING_NOTARY_DATABASE_URL (the notary's role) and YUQING_NOTARY_KEY_FILE (its
    Ed25519 key; default: the data dir's keys/notary-ed25519.pem, made on first use). Run it
    periodically (./dev serve does, every YUQING_NOTARY_INTERVAL seconds): rows appended after
    the newest checkpoint are protected by the chain alone. Exit code 1, signing nothing, when
    the chain was changed since the last checkpoint.
    """
    import asyncio
    import os

    from yuqing import db
    from yuqing.audit import notary

    url = os.environ.get(notary.DATABASE_URL_ENV)
    if not url:
        fail(False, Failure(EXIT_INPUT, f"{notary.DATABASE_URL_ENV} is not set"))
    key_path = Path(os.environ.get(notary.KEY_FILE_ENV) or notary.default_key_file())
    try:
        key = notary.ensure_signing_key(key_path)
    except (OSError, ValueError) as error:
        fail(False, Failure(EXIT_INPUT, str(error)))

    async def run() -> int:
        pool = await db.create_pool(url)
        try:
            checkpoint = await notary.take_checkpoint(pool, key)
        except notary.NotaryError as error:
            err.print(f"NOT SIGNED: {error}", markup=False, soft_wrap=True)
            for problem in error.problems:
                err.print(f"  row {problem.row_id}: {problem.what}", markup=False)
            return 1
        finally:
            await pool.close()
        if checkpoint is None:
            out.print("nothing appended since the last checkpoint")
        else:
            out.print(
                f"checkpoint {checkpoint.seq}: row {checkpoint.last_id}"
                f" ({checkpoint.rows} rows, {checkpoint.archives} archived histories),"
                f" head {checkpoint.last_hash}, signed by {checkpoint.key_id}",
                markup=False,
            )
        return 0

    try:
        code = asyncio.run(run())
    except OSError as error:
        fail(False, Failure(EXIT_UNREACHABLE, f"PostgreSQL: {error}"))
    raise typer.Exit(code)


@app.command("db-migrate")
def db_migrate(
    service_role: Annotated[
        str | None,
        typer.Option(help="The service's role (default: the user in DATABASE_URL)."),
    ] = None,
) -> None:
    """Apply the database migrations as the owner, and give the service its privileges.

    Reads YUQING_DB_OWNER_URL (the owner's role) and DATABASE_URL (to name the service's
    role), and YUQING_NOTARY_DATABASE_URL if set (the notary reads the audit tables).
    """
    import asyncio
    import os

    from yuqing import db
    from yuqing.audit.notary import DATABASE_URL_ENV
    from yuqing.settings import Settings

    settings = Settings.from_env()
    if not settings.owner_database_url:
        fail(False, Failure(EXIT_INPUT, "YUQING_DB_OWNER_URL is not set"))
    role = service_role or (_role_of(settings.database_url) if settings.database_url else None)
    if not role:
        fail(False, Failure(EXIT_INPUT, "name the service's role: --service-role or DATABASE_URL"))
    notary_url = os.environ.get(DATABASE_URL_ENV)
    applied = asyncio.run(
        db.migrate_as_owner(
            settings.owner_database_url, role, _role_of(notary_url) if notary_url else None
        )
    )
    out.print(
        ("applied " + ", ".join(applied)) if applied else "the database is current",
        markup=False,
    )
    out.print(f"privileges of {role} set", markup=False)


class KeyAction(StrEnum):
    new = "new"
    rotate = "rotate"
    list = "list"


@app.command("payload-key")
def payload_key(
    action: Annotated[KeyAction, typer.Argument(help="new: make the file; rotate; list.")],
    file: Annotated[
        Path | None,
        typer.Option(
            help="The key file (default: YUQING_PAYLOAD_KEYS_FILE, else the data dir's"
            " keys/payload-keys.toml)."
        ),
    ] = None,
) -> None:
    """Make, rotate or list the payload encryption keys (never prints a key).

    rotate adds a fresh key and makes it the one new payloads are encrypted with; older keys
    stay in the file so every history and archive encrypted under them still reads. Restart
    the worker and the API afterwards.
    """
    import os

    from yuqing import codec

    path = file or Path(os.environ.get(codec.KEYS_FILE_ENV) or codec.default_key_file())
    try:
        if action is KeyAction.new:
            if path.exists():
                fail(False, Failure(EXIT_INPUT, f"{path} exists already; use rotate"))
            ring = codec.ensure_key_file(path)
        elif action is KeyAction.rotate:
            ring = codec.rotate_key_file(path)
        else:
            ring = codec.KeyRing.from_file(path)
    except codec.PayloadKeyError as error:
        fail(False, Failure(EXIT_INPUT, str(error)))
    for key_id in sorted(ring.keys):
        marker = "active" if key_id == ring.active else "decrypt only"
        out.print(f"{key_id}  {marker}", markup=False)
    if action is not KeyAction.list:
        err.print(f"wrote {path} (readable by this user only)")


@app.command("audit-archive")
def audit_archive(
    incident_id: Annotated[str, typer.Argument(help="The incident's id, e.g. demo-1.")],
) -> None:
    """Archive a closed incident's history, and its posts', now.

    Incidents archive themselves as they end; this is for one that ended otherwise (terminated,
    failed) or before the archive existed. Already archived runs are left as they are. Reads
    TEMPORAL_ADDRESS, DATABASE_URL and the payload keys. Exit code 1 if it is still running.
    """
    import asyncio

    from temporalio.client import WorkflowExecutionStatus

    from yuqing import db, incident_workflow_id
    from yuqing.audit.archive import ArchiveHistory, archive_runs
    from yuqing.audit.history import post_workflow_ids
    from yuqing.client import connect
    from yuqing.settings import Settings

    settings = Settings.from_env()
    if not settings.database_url:
        fail(False, Failure(EXIT_INPUT, "DATABASE_URL is not set (./dev serve logs it)"))

    async def run() -> int:
        client = await connect(settings)
        pool = await db.create_pool(settings.database_url or "")
        try:
            first = incident_workflow_id(incident_id)
            history = await client.get_workflow_handle(first).fetch_history()
            running = 0
            for workflow_id in [first, *post_workflow_ids(history)]:
                description = await client.get_workflow_handle(workflow_id).describe()
                if description.status == WorkflowExecutionStatus.RUNNING:
                    err.print(f"{workflow_id} is still running: it archives itself as it ends")
                    running += 1
                    continue
                post_id = workflow_id.partition("-post-")[2] or None
                done = await archive_runs(
                    client,
                    pool,
                    ArchiveHistory(
                        workflow_id=workflow_id,
                        run_id=description.run_id or "",
                        incident_id=incident_id,
                        post_id=post_id,
                    ),
                )
                for archived in done.runs:
                    state = "archived" if archived.new else "already archived"
                    out.print(
                        f"{workflow_id} run {archived.run_id}: {state}, {archived.events} events,"
                        f" sha256 {archived.sha256}",
                        markup=False,
                        soft_wrap=True,
                    )
            return 1 if running else 0
        finally:
            await pool.close()

    raise typer.Exit(asyncio.run(run()))
