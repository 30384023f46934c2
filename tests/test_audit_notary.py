"""The record no one can quietly rewrite (SPEC §8): an owner who edits a row and recomputes
every later hash, who cuts the tail, or who removes an incident and relinks the chain leaves a
chain whose every link holds, and `yuqing audit-verify` alone still says so, against the
notary's signed checkpoints, which neither the owner nor the service can write.

Each test works in a database of its own, with the roles the stack gives it: a broken chain in
the shared one would fail every later check of it.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from typer.testing import CliRunner

from tests.conftest import DatabaseUrls
from tests.test_audit_projection import entries, record, request
from yuqing import db
from yuqing.audit.notary import NotaryError, ensure_schema, ensure_signing_key, take_checkpoint
from yuqing.audit.projection import GENESIS, chain_hash, verify
from yuqing.audit.verify import verify_record
from yuqing.cli import app
from yuqing.db.roles import DatabaseRoles, provision, role_url

ROLES = DatabaseRoles()


@dataclass
class Record:
    service: asyncpg.Pool
    owner: asyncpg.Pool
    notary: asyncpg.Pool
    service_url: str
    key: Ed25519PrivateKey
    public_key_file: Path

    async def checkpoint(self) -> None:
        assert await take_checkpoint(self.notary, self.key) is not None

    async def audit_verify(self) -> tuple[int, str]:
        """`yuqing audit-verify`, as an auditor runs it: the database and the public key."""
        env = {
            "DATABASE_URL": self.service_url,
            "YUQING_NOTARY_PUBLIC_KEY": str(self.public_key_file),
        }
        result = await asyncio.to_thread(CliRunner().invoke, app, ["audit-verify"], env=env)
        return result.exit_code, result.output


def _in_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


@pytest.fixture
async def kept(database: DatabaseUrls, tmp_path: Path) -> AsyncIterator[Record]:
    name = f"record_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(database.admin)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    admin_url = _in_database(database.admin, name)
    pools: list[asyncpg.Pool] = []
    try:
        await provision(admin_url, ROLES)
        await db.migrate_as_owner(role_url(admin_url, ROLES.owner), ROLES.service, ROLES.notary)
        for role in (ROLES.service, ROLES.owner, ROLES.notary):
            pools.append(await db.create_pool(role_url(admin_url, role)))
        service, owner, notary = pools
        async with notary.acquire() as conn:
            await ensure_schema(conn, [ROLES.service, ROLES.owner])
        key_file = tmp_path / "keys" / "notary-ed25519.pem"
        yield Record(
            service=service,
            owner=owner,
            notary=notary,
            service_url=role_url(admin_url, ROLES.service),
            key=ensure_signing_key(key_file),
            public_key_file=key_file.with_suffix(".pub"),
        )
    finally:
        for pool in pools:
            await pool.close()
        admin = await asyncpg.connect(database.admin)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()


async def three_incidents(kept: Record) -> None:
    """Three incidents' trails, interleaved in the table as concurrent incidents are."""
    for start in (0, 3):
        for label in ("a", "b", "c"):
            trail = request(f"incident-{label}", start, entries(3, label, start))
            await record(kept.service, trail)


async def recompute_from(owner: asyncpg.Pool, first_id: int) -> None:
    """What an owner who wants no trace does: relink every row from `first_id` onwards."""
    async with owner.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_is_append_only")
        prev = await conn.fetchval(
            "SELECT row_hash FROM audit_log WHERE id < $1 ORDER BY id DESC LIMIT 1", first_id
        )
        prev = prev or GENESIS
        for row in await conn.fetch("SELECT * FROM audit_log WHERE id >= $1 ORDER BY id", first_id):
            new_hash = chain_hash(prev, row)
            await conn.execute(
                "UPDATE audit_log SET prev_hash = $1, row_hash = $2 WHERE id = $3",
                prev,
                new_hash,
                row["id"],
            )
            prev = new_hash
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_is_append_only")


async def test_an_edited_row_with_every_later_hash_recomputed_is_found(kept: Record) -> None:
    await three_incidents(kept)
    await kept.checkpoint()
    code, output = await kept.audit_verify()
    assert code == 0, output
    assert "18 row(s), 1 signed checkpoint(s)" in output and "the chain is intact" in output

    target = await kept.owner.fetchrow(
        "SELECT id FROM audit_log WHERE workflow_id = 'incident-b' AND seq = 1"
    )
    assert target is not None
    async with kept.owner.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_is_append_only")
        await conn.execute(
            "UPDATE audit_log SET detail = '审批（已改）' WHERE id = $1", target["id"]
        )
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_is_append_only")
    await recompute_from(kept.owner, target["id"])
    # Every link holds: the chain alone cannot tell.
    assert (await verify(kept.service)).ok

    code, output = await kept.audit_verify()
    assert code == 1
    assert "THE CHAIN IS BROKEN" in output
    assert "checkpoint 0 signed: the chain was rewritten" in output
    # And the notary will not sign the rewritten chain.
    with pytest.raises(NotaryError, match="not the one last signed"):
        await take_checkpoint(kept.notary, kept.key)


async def test_a_truncated_tail_is_found(kept: Record) -> None:
    await three_incidents(kept)
    await kept.checkpoint()
    last_ids = [
        row["id"]
        for row in await kept.owner.fetch("SELECT id FROM audit_log ORDER BY id DESC LIMIT 4")
    ]
    async with kept.owner.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_is_append_only")
        await conn.execute("DELETE FROM audit_log WHERE id = ANY($1)", last_ids)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_is_append_only")
    assert (await verify(kept.service)).ok  # a cut tail leaves no broken link

    code, output = await kept.audit_verify()
    assert code == 1
    assert f"row {max(last_ids)}: the row checkpoint 0 signed is gone" in output


async def test_a_deleted_incident_is_found(kept: Record) -> None:
    await three_incidents(kept)
    await kept.checkpoint()
    first = await kept.owner.fetchval(
        "SELECT min(id) FROM audit_log WHERE workflow_id = 'incident-b'"
    )
    async with kept.owner.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_is_append_only")
        await conn.execute("DELETE FROM audit_log WHERE workflow_id = 'incident-b'")
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_is_append_only")
    await recompute_from(kept.owner, first)
    assert (await verify(kept.service)).ok

    code, output = await kept.audit_verify()
    assert code == 1
    assert "checkpoint 0 signed: the chain was rewritten" in output

    # Had the owner kept every hash as it was (only possible if the incident was the last in
    # the table), the count of rows would still show it.
    report = await verify_record(kept.service, kept.key.public_key())
    assert not report.ok


async def test_checkpoints_are_beyond_the_owner_and_the_service(kept: Record) -> None:
    await three_incidents(kept)
    await kept.checkpoint()
    for pool in (kept.owner, kept.service):
        for statement in (
            "DELETE FROM notary.checkpoints",
            "UPDATE notary.checkpoints SET rows = rows + 1",
            "TRUNCATE notary.checkpoints",
            "INSERT INTO notary.checkpoints SELECT * FROM notary.checkpoints",
            "DROP TABLE notary.checkpoints",
        ):
            with pytest.raises(asyncpg.InsufficientPrivilegeError):
                await pool.execute(statement)
        assert await pool.fetchval("SELECT count(*) FROM notary.checkpoints") == 1

    # A checkpoint signed by any other key (a forger's) does not count, and says so.
    forger = Ed25519PrivateKey.generate()
    await record(kept.service, request("incident-d", 0, entries(2, "d")))
    await take_checkpoint(kept.notary, forger)
    code, output = await kept.audit_verify()
    assert code == 1 and "checkpoint 1: signed with key notary-" in output


async def test_later_checkpoints_extend_the_first(kept: Record) -> None:
    await three_incidents(kept)
    await kept.checkpoint()
    assert await take_checkpoint(kept.notary, kept.key) is None  # nothing new
    await record(kept.service, request("incident-d", 0, entries(2, "d")))
    await kept.checkpoint()
    report = await verify_record(kept.service, kept.key.public_key())
    assert report.ok, report.problems
    assert (report.checkpoints_checked, report.rows_after_checkpoint) == (2, 0)
    await record(kept.service, request("incident-d", 2, entries(1, "d", start=2)))
    report = await verify_record(kept.service, kept.key.public_key())
    assert report.ok and report.rows_after_checkpoint == 1


async def test_the_checkpoint_and_migrate_commands(kept: Record, tmp_path: Path) -> None:
    await three_incidents(kept)
    notary_url = kept.service_url.replace(ROLES.service, ROLES.notary, 1)
    key_file = tmp_path / "cron" / "notary.pem"
    env = {"YUQING_NOTARY_DATABASE_URL": notary_url, "YUQING_NOTARY_KEY_FILE": str(key_file)}
    runner = CliRunner()
    first = await asyncio.to_thread(runner.invoke, app, ["audit-checkpoint"], env=env)
    assert first.exit_code == 0, first.output
    assert "checkpoint 0: row" in first.output and "(18 rows" in first.output
    assert key_file.exists() and key_file.with_suffix(".pub").exists()
    again = await asyncio.to_thread(runner.invoke, app, ["audit-checkpoint"], env=env)
    assert again.exit_code == 0 and "nothing appended" in again.output

    # Rewritten since: the notary signs nothing and says why.
    last = await kept.owner.fetchval("SELECT max(id) FROM audit_log")
    async with kept.owner.acquire() as conn, conn.transaction():
        await conn.execute("ALTER TABLE audit_log DISABLE TRIGGER audit_log_is_append_only")
        await conn.execute("DELETE FROM audit_log WHERE id = $1", last)
        await conn.execute("ALTER TABLE audit_log ENABLE TRIGGER audit_log_is_append_only")
    await record(kept.service, request("incident-e", 0, entries(1, "e")))
    refused = await asyncio.to_thread(runner.invoke, app, ["audit-checkpoint"], env=env)
    assert refused.exit_code == 1 and "NOT SIGNED" in refused.output

    migrate_env = {
        "YUQING_DB_OWNER_URL": kept.service_url.replace(ROLES.service, ROLES.owner, 1),
        "DATABASE_URL": kept.service_url,
    }
    migrated = await asyncio.to_thread(runner.invoke, app, ["db-migrate"], env=migrate_env)
    assert migrated.exit_code == 0, migrated.output
    assert "the database is current" in migrated.output
    assert f"privileges of {ROLES.service} set" in migrated.output
