"""The record, as the embedded stack keeps it (issue 11): payload keys, database roles, the
notary, and the Temporal UI's codec endpoint.

On its first start the stack makes, under `<data dir>/keys/` (mode 700, files 600), the
payload key ring (`payload-keys.toml`) and the notary's Ed25519 key (`notary-ed25519.pem`,
its public half `.pub` beside it). On every start it (re)provisions the database roles as the
embedded server's superuser, migrates as the owner, and hands the service processes
`DATABASE_URL` as the service's role, which may only append to the audit. A notary task signs a
checkpoint of the audit chain's head every `YUQING_NOTARY_INTERVAL` seconds and at shutdown.
Nothing is made when the operator gives their own (YUQING_PAYLOAD_KEYS[_FILE], DATABASE_URL with
YUQING_DB_OWNER_URL and YUQING_NOTARY_DATABASE_URL).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import structlog

from yuqing import db
from yuqing.audit import notary
from yuqing.codec import KEYS_ENV, KEYS_FILE_ENV, ensure_key_file
from yuqing.db.roles import DatabaseRoles, provision, role_url
from yuqing.settings import Settings
from yuqing.stack.common import StackError, redact

log = structlog.get_logger("yuqing.stack")

NOTARY_INTERVAL = 300.0  # seconds between checkpoints; YUQING_NOTARY_INTERVAL overrides


@dataclass(frozen=True)
class Record:
    """What the service's processes are given (`settings`; `service_variables` for a process
    of their own), and the notary's own connection and key."""

    settings: Settings
    notary_url: str | None
    notary_key: Path | None


async def prepare_record(
    data_dir: Path,
    settings: Settings,
    *,
    admin_url: str | None,
    ui_origins: tuple[str, ...] = (),
) -> Record:
    """Keys made if missing, roles and migrations in place; `admin_url` is the embedded
    PostgreSQL's superuser URL (None: DATABASE_URL is the operator's own)."""
    keys_dir = data_dir / "keys"
    if settings.payload_keys_file is None and not os.environ.get(KEYS_ENV):
        key_file = keys_dir / "payload-keys.toml"
        ring = ensure_key_file(key_file)
        settings = dataclasses.replace(settings, payload_keys_file=key_file)
        log.info("payload keys", file=str(key_file), active=ring.active, keys=len(ring.keys))
    notary_url = os.environ.get(notary.DATABASE_URL_ENV) or None
    if admin_url is not None:
        roles = DatabaseRoles()
        try:
            await provision(admin_url, roles)
        except OSError as err:
            raise StackError(f"cannot set up the database roles: {err}") from err
        owner_url = role_url(admin_url, roles.owner)
        service_url = role_url(admin_url, roles.service)
        notary_url = role_url(admin_url, roles.notary)
        applied = await db.migrate_as_owner(owner_url, roles.service, roles.notary)
        await _notary_schema(notary_url, [roles.service, roles.owner])
        settings = dataclasses.replace(settings, database_url=service_url)
        log.info(
            "database roles",
            service=service_url,
            owner=owner_url,
            notary=notary_url,
            migrations=applied or "none pending",
        )
    elif settings.owner_database_url and settings.database_url:
        service = await _role_of(settings.database_url)
        notary_role = await _role_of(notary_url) if notary_url else None
        await db.migrate_as_owner(settings.owner_database_url, service, notary_role)
        if notary_url:
            await _notary_schema(notary_url, [service])
        log.info("migrated as the owner", owner=redact(settings.owner_database_url))
    notary_key = None
    if notary_url is not None:
        notary_key = Path(os.environ.get(notary.KEY_FILE_ENV) or keys_dir / "notary-ed25519.pem")
        notary.ensure_signing_key(notary_key)
        log.info(
            "audit notary", key=str(notary_key), public_key=str(notary_key.with_suffix(".pub"))
        )
    if ui_origins:
        # The stack's own UI has no login: a request from this machine with its Origin is the
        # UI's (api/routes/codec.py); any other caller of the codec needs a token.
        settings = dataclasses.replace(
            settings, codec_origins=ui_origins, codec_trust_local_ui=True
        )
    return Record(settings=settings, notary_url=notary_url, notary_key=notary_key)


async def _role_of(url: str) -> str:
    pool = await db.create_pool(url)
    try:
        role: str = await pool.fetchval("SELECT current_user")
        return role
    finally:
        await pool.close()


async def _notary_schema(url: str, readers: list[str]) -> None:
    pool = await db.create_pool(url)
    try:
        async with pool.acquire() as conn:
            await notary.ensure_schema(conn, readers)
    finally:
        await pool.close()


def service_variables(settings: Settings) -> dict[str, str]:
    """The environment the service's processes read these settings back from."""
    found = {
        "YUQING_CODEC_ORIGINS": ",".join(settings.codec_origins),
        "YUQING_CODEC_TRUST_LOCAL_UI": "1" if settings.codec_trust_local_ui else "",
    }
    if settings.payload_keys_file is not None:
        found[KEYS_FILE_ENV] = str(settings.payload_keys_file)
    # The stack migrated and runs the notary itself: the service's processes hold neither the
    # owner's URL nor the notary's.
    found["YUQING_DB_OWNER_URL"] = ""
    found[notary.DATABASE_URL_ENV] = ""
    return found


def ui_origins(ui_port: int) -> tuple[str, ...]:
    return (f"http://127.0.0.1:{ui_port}", f"http://localhost:{ui_port}")


def codec_endpoint(api_port: int) -> str:
    """What the dev server's UI is pointed at (`--ui-codec-endpoint`)."""
    return f"http://127.0.0.1:{api_port}/codec"


@contextlib.asynccontextmanager
async def notary_running(record: Record) -> AsyncIterator[None]:
    """Sign a checkpoint now, every interval, and once more on the way out."""
    if record.notary_url is None or record.notary_key is None:
        yield
        return
    key = notary.load_signing_key(record.notary_key)
    interval = float(os.environ.get("YUQING_NOTARY_INTERVAL") or NOTARY_INTERVAL)
    pool = await db.create_pool(record.notary_url)

    async def sign() -> None:
        try:
            await notary.take_checkpoint(pool, key)
        except notary.NotaryError:
            pass  # logged loudly by the notary; it signs nothing until the chain is mended
        except Exception as err:  # PostgreSQL away for a moment: the next round tries again
            log.warning("audit checkpoint not taken", error=str(err))

    async def every_interval() -> None:
        while True:
            await sign()
            await asyncio.sleep(interval)

    task = asyncio.create_task(every_interval())
    try:
        yield
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await sign()
        await pool.close()
