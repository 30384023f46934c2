"""PostgreSQL access: one pool per process, versioned migrations applied at start-up."""

from __future__ import annotations

import re
from importlib import resources

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger(__name__)

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


async def create_pool(url: str) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(url, min_size=1, max_size=8)
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
    async with pool.acquire() as conn:
        await conn.execute("SELECT pg_advisory_lock(hashtext('yuqing.migrations'))")
        try:
            await conn.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version integer PRIMARY KEY, name text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
            done = {
                row["version"] for row in await conn.fetch("SELECT version FROM schema_migrations")
            }
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
        finally:
            await conn.execute("SELECT pg_advisory_unlock(hashtext('yuqing.migrations'))")
    if applied_now:
        log.info("database migrated", applied=applied_now)
    return applied_now


async def fetch_one(
    conn: asyncpg.Connection | PoolConnectionProxy, sql: str, *args: object
) -> asyncpg.Record:
    """The one row a query must return; an absent row is a bug, so it raises."""
    row = await conn.fetchrow(sql, *args)
    if row is None:
        raise LookupError(f"no row for {sql!r} with {args!r}")
    return row
