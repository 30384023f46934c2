"""Keeping the record (issue 11): the notary's checkpoint, migrations as the owner, the
payload keys. Operators' commands; they read PostgreSQL and key files directly."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

import typer

from yuqing import tool
from yuqing.cli.options import IncidentArg, commands
from yuqing.cli.output import line

app = commands()


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
    import os

    from yuqing.audit import notary
    from yuqing.cli.audit import open_pool

    url = os.environ.get(notary.DATABASE_URL_ENV)
    if not url:
        raise tool.bad_input(f"{notary.DATABASE_URL_ENV} is not set")
    key_path = Path(os.environ.get(notary.KEY_FILE_ENV) or notary.default_key_file())
    try:
        key = notary.ensure_signing_key(key_path)
    except (OSError, ValueError) as error:
        raise tool.bad_input(str(error)) from error

    async def run() -> int:
        pool = await open_pool(url)
        try:
            checkpoint = await notary.take_checkpoint(pool, key)
        except notary.NotaryError as error:
            tool.say(f"NOT SIGNED: {error}")
            for problem in error.problems:
                tool.say(f"  row {problem.row_id}: {problem.what}")
            return 1
        finally:
            await pool.close()
        if checkpoint is None:
            line("nothing appended since the last checkpoint")
        else:
            line(
                f"checkpoint {checkpoint.seq}: row {checkpoint.last_id}"
                f" ({checkpoint.rows} rows, {checkpoint.archives} archived histories),"
                f" head {checkpoint.last_hash}, signed by {checkpoint.key_id}"
            )
        return 0

    raise typer.Exit(tool.run(run()))


@app.command("db-migrate")
def db_migrate(
    service_role: Annotated[
        str | None,
        typer.Option(
            metavar="ROLE", help="The service's role (default: the user in DATABASE_URL)."
        ),
    ] = None,
) -> None:
    """Apply the database migrations as the owner, and give the service its privileges.

    Reads YUQING_DB_OWNER_URL (the owner's role) and DATABASE_URL (to name the service's
    role), and YUQING_NOTARY_DATABASE_URL if set (the notary reads the audit tables).
    """
    import os

    from yuqing import db
    from yuqing.audit.notary import DATABASE_URL_ENV
    from yuqing.settings import Settings

    settings = Settings.from_env()
    owner = settings.owner_database_url
    if not owner:
        raise tool.bad_input("YUQING_DB_OWNER_URL is not set: set it to the owner role's address")
    role = service_role or (_role_of(settings.database_url) if settings.database_url else None)
    if not role:
        raise tool.bad_input("name the service's role: --service-role or DATABASE_URL")
    notary_url = os.environ.get(DATABASE_URL_ENV)
    import asyncpg

    try:
        applied = tool.run(
            db.migrate_as_owner(owner, role, _role_of(notary_url) if notary_url else None)
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as error:
        raise tool.postgres_unreachable(owner, str(error) or type(error).__name__) from error
    line(("applied " + ", ".join(applied)) if applied else "the database is current")
    line(f"privileges of {role} set")


class KeyAction(StrEnum):
    new = "new"
    rotate = "rotate"
    list = "list"


@app.command("payload-key")
def payload_key(
    action: Annotated[
        KeyAction, typer.Argument(metavar="ACTION", help="new: make the file; rotate; list.")
    ],
    file: Annotated[
        Path | None,
        typer.Option(
            metavar="FILE",
            help="The key file (default: YUQING_PAYLOAD_KEYS_FILE, else the data dir's"
            " keys/payload-keys.toml).",
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
                raise tool.bad_input(f"{path} exists already; use rotate")
            ring = codec.ensure_key_file(path)
        elif action is KeyAction.rotate:
            ring = codec.rotate_key_file(path)
        else:
            ring = codec.KeyRing.from_file(path)
    except codec.PayloadKeyError as error:
        raise tool.bad_input(str(error)) from error
    for key_id in sorted(ring.keys):
        marker = "active" if key_id == ring.active else "decrypt only"
        # The tag is how a sealed payload (format 3) names its key: an error naming a tag the
        # ring lacks is answered here.
        line(f"{key_id}  {marker}  (tag {codec.key_tag(key_id).hex()})")
    if action is not KeyAction.list:
        tool.say(f"wrote {path} (readable by this user only)")


@app.command("audit-archive")
def audit_archive(
    incident_id: IncidentArg,
) -> None:
    """Archive a closed incident's history, and its posts', now.

    Incidents archive themselves as they end; this is for one that ended otherwise (terminated,
    failed) or before the archive existed. Already archived runs are left as they are. Reads
    TEMPORAL_ADDRESS, DATABASE_URL and the payload keys. Exit code 1 if it is still running.
    """
    from temporalio.client import WorkflowExecutionStatus
    from temporalio.service import RPCError

    from yuqing import incident_workflow_id
    from yuqing.audit.archive import ArchiveHistory, archive_runs
    from yuqing.audit.history import post_workflow_ids
    from yuqing.cli.audit import open_pool
    from yuqing.settings import Settings

    settings = Settings.from_env()
    url = settings.database_url
    if not url:
        raise tool.database_url_missing("audit-archive")

    async def run() -> int:
        pool = await open_pool(url)
        try:
            client = await tool.connect_temporal(settings)
            return await archive(client, pool)
        except RPCError as error:
            raise tool.temporal_failure(error, settings.temporal_address, incident_id) from error
        finally:
            await pool.close()

    async def archive(client: Any, pool: Any) -> int:
        first = incident_workflow_id(incident_id)
        history = await client.get_workflow_handle(first).fetch_history()
        running = 0
        for workflow_id in [first, *post_workflow_ids(history)]:
            description = await client.get_workflow_handle(workflow_id).describe()
            if description.status == WorkflowExecutionStatus.RUNNING:
                tool.say(f"{workflow_id} is still running: it archives itself as it ends")
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
                line(
                    f"{workflow_id} run {archived.run_id}: {state}, {archived.events} events,"
                    f" sha256 {archived.sha256}"
                )
        return 1 if running else 0

    raise typer.Exit(tool.run(run()))
