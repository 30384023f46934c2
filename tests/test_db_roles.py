"""The service's database role may append to the audit and read it, nothing more: not by
privilege, not by switching the trigger off, not by replication mode (SPEC §8)."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import asyncpg
import pytest

from tests.conftest import DatabaseUrls
from yuqing import db
from yuqing.db.roles import APPEND_ONLY, DatabaseRoles, provision, role_problems


@pytest.fixture
async def service(database: DatabaseUrls) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(database.service)
    try:
        yield conn
    finally:
        await conn.close()


async def _append_one(conn: asyncpg.Connection) -> int:
    row_id: int = await conn.fetchval(
        "INSERT INTO audit_log (workflow_id, incident_id, seq, at, kind, refused, detail,"
        " prev_hash, row_hash) VALUES ($1, 'r', 0, now(), 'probe', false, 'a row', $2, $2)"
        " RETURNING id",
        f"roles-probe-{uuid.uuid4().hex[:8]}",
        "0" * 64,
    )
    return row_id


async def test_the_service_appends_and_reads_and_nothing_else(
    service: asyncpg.Connection,
) -> None:
    # In a transaction rolled back at the end: a probe row does not belong in the shared chain.
    probe = service.transaction()
    await probe.start()
    try:
        row_id = await _append_one(service)
        assert await service.fetchval("SELECT detail FROM audit_log WHERE id = $1", row_id)
        for statement, args in [
            ("UPDATE audit_log SET detail = 'rewritten' WHERE id = $1", (row_id,)),
            ("DELETE FROM audit_log WHERE id = $1", (row_id,)),
            ("TRUNCATE audit_log", ()),
            ("ALTER TABLE audit_log DISABLE TRIGGER audit_log_is_append_only", ()),
            ("ALTER TABLE audit_log DISABLE TRIGGER ALL", ()),
            ("DROP TRIGGER audit_log_is_append_only ON audit_log", ()),
            (
                "CREATE TRIGGER t BEFORE INSERT ON audit_log FOR EACH ROW"
                " EXECUTE FUNCTION yuqing_refuse_change()",
                (),
            ),
            ("SET session_replication_role = replica", ()),
            ("SET LOCAL session_replication_role = replica", ()),
            ("ALTER ROLE CURRENT_USER SET session_replication_role = replica", ()),
            ("DROP TABLE audit_log", ()),
            ("CREATE TABLE audit_log_copy (id int)", ()),
        ]:
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                async with service.transaction():  # a savepoint: the probe goes on after it
                    await service.execute(statement, *args)
        assert await service.fetchval("SELECT detail FROM audit_log WHERE id = $1", row_id)
        assert await service.fetchval("SHOW session_replication_role") == "origin"
    finally:
        await probe.rollback()
    assert not await service.fetchval("SELECT rolsuper FROM pg_roles WHERE rolname = current_user")
    assert await role_problems(service) == []


async def test_every_append_only_table_refuses_change_by_privilege(
    service: asyncpg.Connection,
) -> None:
    present = [
        t
        for t in sorted(APPEND_ONLY)
        if await service.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{t}")
    ]
    assert {"audit_log", "history_archive", "evidence", "publications"} <= set(present)
    for table in present:
        for privilege in ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER", "REFERENCES"):
            assert not await service.fetchval(
                "SELECT has_table_privilege($1, $2)", f"public.{table}", privilege
            ), f"the service may {privilege} {table}"
        assert await service.fetchval("SELECT has_table_privilege($1, 'INSERT')", table)
    # The working tables it keeps current stay writable.
    assert await service.fetchval("SELECT has_table_privilege('notification_outbox', 'UPDATE')")
    assert not await service.fetchval("SELECT has_table_privilege('schema_migrations', 'INSERT')")


async def test_the_owner_migrates_and_the_worker_only_checks(database: DatabaseUrls) -> None:
    service = await db.create_pool(database.service)
    try:
        assert await db.pending_migrations(service) == []
        await db.prepare(service, None)  # current: nothing to do, nothing to complain of
        # The service cannot migrate itself, were it to try.
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await service.execute("CREATE TABLE schema_probe (id int)")
    finally:
        await service.close()
    # Provisioning again (every start of the stack does) changes nothing and breaks nothing.
    await provision(database.admin, DatabaseRoles())
    again = await db.create_pool(database.service)
    try:
        async with again.acquire() as conn:
            assert await role_problems(conn) == []
    finally:
        await again.close()


async def test_a_superuser_service_is_warned_of(database: DatabaseUrls) -> None:
    admin = await asyncpg.connect(database.admin)
    try:
        problems = await role_problems(admin)
    finally:
        await admin.close()
    assert any("superuser" in p for p in problems)
