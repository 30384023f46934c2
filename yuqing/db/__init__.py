"""PostgreSQL access: one pool per process, versioned migrations applied at start-up."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from typing import Any

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


async def _keep_session(conn: asyncpg.Connection) -> None:
    """What a released connection needs beyond asyncpg's own rollback of an open transaction:
    nothing. The default runs `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on
    every release, one more round trip for each use of the pool (a seventh of record_trail's).
    Nothing here leaves session state behind: no SET, LISTEN or cursor outlives its
    transaction, and the two session advisory locks (migrations, the archive sweeper) are taken
    through `session_lock`, which lets go of them or closes the connection, lock and all."""


@asynccontextmanager
async def session_lock(conn: Any, key: str, *, wait: bool = True) -> AsyncIterator[bool]:
    """A session advisory lock on `key` (an SQL expression) while the block runs: True if
    taken (`wait=False` only tries). If letting go of it fails or is cut short (a cancelled
    task), the connection is closed, so that no pooled connection keeps the lock."""
    if wait:
        await conn.execute(f"SELECT pg_advisory_lock({key})")
        taken = True
    else:
        taken = bool(await conn.fetchval(f"SELECT pg_try_advisory_lock({key})"))
    try:
        yield taken
    finally:
        if taken:
            try:
                await conn.execute(f"SELECT pg_advisory_unlock({key})")
            except BaseException:
                conn.terminate()
                raise


async def create_pool(url: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=8, reset=_keep_session)
    if pool is None:  # only when the pool is created with init=None in a closed loop
        raise RuntimeError(f"could not create a connection pool for {url}")
    return pool


def shipped_migrations() -> list[tuple[int, str, str]]:
    """(version, name, sql) for every migration shipped with the package, in order."""
    found = []
    for entry in resources.files("yuqing.db.migrations").iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.name, entry.read_text(encoding="utf-8")))
    return sorted(found)


async def migrate(pool: asyncpg.Pool) -> list[str]:
    """Apply the migrations not applied yet, each in its own transaction; returns their names.

    An advisory lock keeps two workers starting at once from applying the same migration.
    """
    applied_now: list[str] = []
    async with pool.acquire() as conn, session_lock(conn, "hashtext('yuqing.migrations')"):
        await conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version integer PRIMARY KEY, name text NOT NULL,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        done = {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
        for version, name, sql in shipped_migrations():
            if version in done:
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, name) VALUES ($1, $2)",
                    version,
                    name,
                )
            applied_now.append(name)
    if applied_now:
        log.info("database migrated", applied=applied_now)
    return applied_now


class MigrationsPending(RuntimeError):
    """The database lacks migrations this code needs; the message says how to apply them."""


async def migrate_as_owner(
    owner_url: str, service_role: str, notary_role: str | None = None
) -> list[str]:
    """Apply pending migrations as the owner, then give the service (and the notary) their
    privileges on every table (`yuqing.db.roles.grant_service`)."""
    from yuqing.db.roles import grant_service

    owner = await create_pool(owner_url)
    try:
        applied = await migrate(owner)
        async with owner.acquire() as conn:
            await grant_service(conn, service_role, notary_role)
    finally:
        await owner.close()
    return applied


async def pending_migrations(pool: asyncpg.Pool) -> list[str]:
    """The shipped migrations the database has not had; readable by the service itself."""
    async with pool.acquire() as conn:
        exists = await conn.fetchval("SELECT to_regclass('schema_migrations') IS NOT NULL")
        done = (
            {row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")}
            if exists
            else set()
        )
    return [name for version, name, _ in shipped_migrations() if version not in done]


async def prepare(pool: asyncpg.Pool, owner_url: str | None) -> None:
    """Before the service serves: the schema current (migrated by the owner when this process
    is given the owner's URL, else only checked), and a warning if the service's own role
    could rewrite the audit."""
    from yuqing.db.roles import role_problems

    if owner_url:
        service_role = await pool.fetchval("SELECT current_user")
        await migrate_as_owner(owner_url, service_role)
    pending = await pending_migrations(pool)
    async with pool.acquire() as conn:
        problems = await role_problems(conn)
    if pending and problems:
        # A service that may rewrite the audit anyway (a superuser, the owner itself) loses
        # nothing by migrating: done, with the warning below to give it a role of its own.
        await migrate(pool)
        pending = await pending_migrations(pool)
    if pending:
        raise MigrationsPending(
            f"the database lacks migration(s) {', '.join(pending)}: apply them as the owner"
            " (`yuqing db-migrate` with YUQING_DB_OWNER_URL set, or start the worker with"
            " YUQING_DB_OWNER_URL)"
        )
    if problems:
        log.warning(
            "DATABASE_URL's role can rewrite the audit; give the service its own role"
            " (see the README's security section)",
            problems=problems,
        )


async def fetch_one(
    conn: asyncpg.Connection | PoolConnectionProxy, sql: str, *args: object
) -> asyncpg.Record:
    """The one row a query must return; an absent row is a bug, so it raises."""
    row = await conn.fetchrow(sql, *args)
    if row is None:
        raise LookupError(f"no row for {sql!r} with {args!r}")
    return row
