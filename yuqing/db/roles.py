"""Who may do what in the database (SPEC §8): the audit can be appended to, never rewritten.

Three roles, none a superuser:

- the **owner** (`YUQING_DB_OWNER_URL`) owns the schema and every table and runs the migrations.
  It is used for nothing else: the service never holds its password.
- the **service** (`DATABASE_URL`: the worker and the API). On the append-only tables below it
  holds INSERT and SELECT only: no UPDATE, DELETE or TRUNCATE, and no TRIGGER (disabling a
  trigger takes the table's owner), and, not being a superuser, it cannot set
  `session_replication_role`. On the working tables (the notice outbox, deliveries, the
  deadlines as they stand) it may change rows too.
- the **notary** (`YUQING_NOTARY_DATABASE_URL`) owns the `notary` schema, where the signed
  checkpoints of the audit chain are kept (`yuqing.audit.notary`), and reads the audit tables.
  Neither the owner nor the service may write there.

`provision` sets this up as a superuser would (the embedded stack and the tests do; a DBA runs
`provisioning_sql()` on a managed server); `grant_service` is run by the owner after every
migration, so tables added by later migrations get their grants without anyone remembering.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy

log = structlog.get_logger(__name__)

# Rows once written are the record: the service may add them and read them, nothing else.
APPEND_ONLY = frozenset(
    {
        "audit_log",
        "history_archive",
        "evidence",
        "publications",
        "delivery_attempts",
        # plan's drills: what a drill would have sent, kept instead of sent.
        "drill_sink",
    }
)
# Read by the service (to check the schema is current), written by the owner alone.
READ_ONLY = frozenset({"schema_migrations"})
# Everything else is a working table the service keeps current.
WORKING_PRIVILEGES = "SELECT, INSERT, UPDATE, DELETE"
# What the notary reads to sign the chain's head.
NOTARY_READS = ("audit_log", "history_archive")
NOTARY_SCHEMA = "notary"

_ROLE_OPTIONS = "LOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOREPLICATION NOBYPASSRLS"

Connection = asyncpg.Connection | PoolConnectionProxy


@dataclass(frozen=True)
class DatabaseRoles:
    owner: str = "yuqing_owner"
    service: str = "yuqing_service"
    notary: str = "yuqing_notary"


def role_url(url: str, role: str) -> str:
    """`url` (same server, same database) as `role`, without a password (the server's own
    authentication decides: peer or trust on a local socket, a password file elsewhere)."""
    parts = urlsplit(url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{quote(role, safe='')}@{host}"))


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def provisioning_sql(database: str, roles: DatabaseRoles = DatabaseRoles()) -> list[str]:
    """The statements a superuser runs once (idempotent but for CREATE ROLE, which
    `provision` guards): roles, the database and its public schema to the owner, the notary's
    schema to the notary. Passwords are the DBA's to set (`ALTER ROLE … PASSWORD`)."""
    creates = [
        f"CREATE ROLE {_ident(r)} {_ROLE_OPTIONS}"
        for r in (roles.owner, roles.service, roles.notary)
    ]
    return creates + _database_sql(database, roles)


def _database_sql(database: str, roles: DatabaseRoles) -> list[str]:
    owner, service, notary = (_ident(r) for r in (roles.owner, roles.service, roles.notary))
    db = _ident(database)
    return [
        f"ALTER DATABASE {db} OWNER TO {owner}",
        f"REVOKE ALL ON DATABASE {db} FROM PUBLIC",
        f"GRANT CONNECT ON DATABASE {db} TO {service}, {notary}",
        # (connected to the database itself from here on)
        f"ALTER SCHEMA public OWNER TO {owner}",
        "REVOKE ALL ON SCHEMA public FROM PUBLIC",
        f"GRANT USAGE ON SCHEMA public TO {service}, {notary}",
        f"CREATE SCHEMA IF NOT EXISTS {NOTARY_SCHEMA} AUTHORIZATION {notary}",
        f"GRANT USAGE ON SCHEMA {NOTARY_SCHEMA} TO {service}",
    ]


async def provision(admin_url: str, roles: DatabaseRoles = DatabaseRoles()) -> None:
    """As a superuser, on the application's database (`admin_url` names it): make the roles
    and hand them what is theirs. Safe to run at every start; it also takes over tables an
    earlier version made as the superuser, and re-asserts that no role is more than it says."""
    conn = await asyncpg.connect(admin_url)
    try:
        database = await conn.fetchval("SELECT current_database()")
        existing = {
            row["rolname"]
            for row in await conn.fetch(
                "SELECT rolname FROM pg_roles WHERE rolname = ANY($1)",
                [roles.owner, roles.service, roles.notary],
            )
        }
        for role in (roles.owner, roles.service, roles.notary):
            verb = "ALTER" if role in existing else "CREATE"
            await conn.execute(f"{verb} ROLE {_ident(role)} {_ROLE_OPTIONS}")
        # No role may act as another: membership would carry the other's privileges.
        for member, group in (
            (roles.service, roles.owner),
            (roles.notary, roles.owner),
            (roles.service, roles.notary),
            (roles.owner, roles.notary),
        ):
            await conn.execute(f"REVOKE {_ident(group)} FROM {_ident(member)}")
        for statement in _database_sql(database, roles):
            await conn.execute(statement)
        await _hand_over(conn, roles.owner)
    finally:
        await conn.close()
    log.info("database roles in place", database=database, **roles.__dict__)


async def _hand_over(conn: asyncpg.Connection, owner: str) -> None:
    """Tables, sequences and functions of the public schema owned by anyone else (a database
    from before the roles, made as the superuser) pass to the owner."""
    found = await conn.fetch(
        "SELECT c.relname AS name, c.relkind AS kind FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'S')"
        " AND pg_get_userbyid(c.relowner) <> $1",
        owner,
    )
    for row in found:
        # A sequence owned by a column follows its table; ALTER TABLE works on either.
        if row["kind"] == "S" and await conn.fetchval(
            "SELECT EXISTS (SELECT 1 FROM pg_depend d JOIN pg_class s ON s.oid = d.objid"
            " WHERE s.relname = $1 AND d.deptype = 'a')",
            row["name"],
        ):
            continue
        await conn.execute(f"ALTER TABLE public.{_ident(row['name'])} OWNER TO {_ident(owner)}")
    functions = await conn.fetch(
        "SELECT p.oid::regprocedure::text AS signature FROM pg_proc p"
        " JOIN pg_namespace n ON n.oid = p.pronamespace"
        " WHERE n.nspname = 'public' AND pg_get_userbyid(p.proowner) <> $1",
        owner,
    )
    for row in functions:
        await conn.execute(f"ALTER FUNCTION {row['signature']} OWNER TO {_ident(owner)}")
    if found or functions:
        log.info("tables handed to the owner", owner=owner, tables=len(found))


async def grant_service(conn: Connection, service: str, notary: str | None = None) -> None:
    """As the owner: the service's privileges on every table of the public schema, afresh."""
    if service == await conn.fetchval("SELECT current_user"):
        log.warning(
            "the service connects as the database owner: the audit tables are append-only"
            " by trigger alone; give DATABASE_URL a role of its own (yuqing.db.roles)"
        )
        return
    tables = await conn.fetch(
        "SELECT c.relname AS name, c.relkind AS kind FROM pg_class c"
        " JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'S')"
        " ORDER BY c.relname"
    )
    who = _ident(service)
    async with conn.transaction():
        for row in tables:
            name = f"public.{_ident(row['name'])}"
            if row["kind"] == "S":
                await conn.execute(f"REVOKE ALL ON SEQUENCE {name} FROM {who}")
                await conn.execute(f"GRANT USAGE, SELECT ON SEQUENCE {name} TO {who}")
                continue
            await conn.execute(f"REVOKE ALL ON TABLE {name} FROM {who}")
            await conn.execute(f"GRANT {service_privileges(row['name'])} ON TABLE {name} TO {who}")
        if notary is not None:
            present = {row["name"] for row in tables}
            for table in NOTARY_READS:
                if table in present:
                    await conn.execute(f"GRANT SELECT ON TABLE public.{table} TO {_ident(notary)}")


def service_privileges(table: str) -> str:
    if table in READ_ONLY:
        return "SELECT"
    if table in APPEND_ONLY:
        return "SELECT, INSERT"
    return WORKING_PRIVILEGES


async def role_problems(conn: Connection) -> list[str]:
    """What makes the connected role more than the service should be: empty when it is not."""
    me = await conn.fetchrow(
        "SELECT rolname, rolsuper, rolbypassrls, rolcreaterole FROM pg_roles"
        " WHERE rolname = current_user"
    )
    assert me is not None
    problems = []
    if me["rolsuper"]:
        problems.append(f"{me['rolname']} is a superuser")
    if me["rolbypassrls"] or me["rolcreaterole"]:
        problems.append(f"{me['rolname']} may create roles or bypass row security")
    owned = await conn.fetch(
        "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace"
        " WHERE n.nspname = 'public' AND c.relname = ANY($1)"
        " AND pg_has_role(current_user, c.relowner, 'USAGE')",
        sorted(APPEND_ONLY),
    )
    if owned:
        problems.append(
            f"{me['rolname']} owns (or acts as the owner of) "
            + ", ".join(sorted(row["relname"] for row in owned))
            + ": it could disable their triggers"
        )
    for table in sorted(APPEND_ONLY):
        rights = await _rights(conn, table, ("UPDATE", "DELETE", "TRUNCATE", "TRIGGER"))
        if rights:
            problems.append(f"{me['rolname']} may {', '.join(rights)} {table}")
    return problems


async def _rights(conn: Connection, table: str, privileges: Iterable[str]) -> list[str]:
    exists = await conn.fetchval("SELECT to_regclass($1) IS NOT NULL", f"public.{table}")
    if not exists:
        return []
    return [
        privilege
        for privilege in privileges
        if await conn.fetchval("SELECT has_table_privilege($1, $2)", f"public.{table}", privilege)
    ]
