"""Signed checkpoints of the audit chain's head, kept where the service cannot write (SPEC §8).

The hash chain of `audit_log` shows an edited or removed row, but whoever may write the table
can recompute every hash after an edit, cut the tail, or remove an incident and relink the
rest: the chain alone then looks whole. So a notary, a role of its own (`yuqing.db.roles`),
periodically checks the rows appended since its last checkpoint and signs the table's head:
the id and row_hash of the last row, how many rows (and archived histories) there are up to it,
and the digest of the checkpoint before. It keeps the checkpoints in its own schema, which the
service and the owner can read but not write, and signs them with an Ed25519 key that never
enters the database. `yuqing audit-verify` checks every checkpoint's signature and its link to
the one before, then that the table still holds what each one signed: a recomputed chain, a cut
tail and a deleted incident all show, up to the newest checkpoint.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import structlog
from asyncpg.pool import PoolConnectionProxy
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from yuqing.audit.projection import CONTENT_FIELDS, GENESIS, Problem, canonical_time, chain_hash
from yuqing.db.roles import NOTARY_SCHEMA
from yuqing.settings import PROJECT_ROOT

log = structlog.get_logger(__name__)

Connection = asyncpg.Connection | PoolConnectionProxy

KEY_FILE_ENV = "YUQING_NOTARY_KEY_FILE"
PUBLIC_KEY_ENV = "YUQING_NOTARY_PUBLIC_KEY"
DATABASE_URL_ENV = "YUQING_NOTARY_DATABASE_URL"

_SCHEMA_SQL = f"""
CREATE TABLE IF NOT EXISTS {NOTARY_SCHEMA}.keys (
    key_id      text PRIMARY KEY,
    public_key  text        NOT NULL,
    added_at    timestamptz NOT NULL DEFAULT now()
);
CREATE TABLE IF NOT EXISTS {NOTARY_SCHEMA}.checkpoints (
    seq          bigint PRIMARY KEY CHECK (seq >= 0),
    taken_at     timestamptz NOT NULL,
    last_id      bigint      NOT NULL,
    last_hash    text        NOT NULL CHECK (last_hash ~ '^[0-9a-f]{{64}}$'),
    rows         bigint      NOT NULL CHECK (rows > 0),
    archives     bigint      NOT NULL CHECK (archives >= 0),
    prev_digest  text        NOT NULL CHECK (prev_digest ~ '^[0-9a-f]{{64}}$'),
    key_id       text        NOT NULL REFERENCES {NOTARY_SCHEMA}.keys (key_id),
    signature    text        NOT NULL
);
"""


class NotaryError(RuntimeError):
    """The notary will not sign: the chain it would sign is not the chain it signed before."""

    def __init__(self, message: str, problems: list[Problem]) -> None:
        super().__init__(message)
        self.problems = problems


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    taken_at: datetime
    last_id: int
    last_hash: str
    rows: int
    archives: int
    prev_digest: str
    key_id: str
    signature: str

    def signed_text(self) -> bytes:
        """What the signature covers: canonical JSON (sorted keys, no whitespace, UTF-8)."""
        return canonical(
            {
                "seq": self.seq,
                "taken_at": canonical_time(self.taken_at),
                "last_id": self.last_id,
                "last_hash": self.last_hash,
                "rows": self.rows,
                "archives": self.archives,
                "prev": self.prev_digest,
            }
        )

    @property
    def digest(self) -> str:
        """What the next checkpoint links to."""
        return hashlib.sha256(self.signed_text()).hexdigest()

    @classmethod
    def from_row(cls, row: Mapping[str, object] | asyncpg.Record) -> Checkpoint:
        return cls(**{name: row[name] for name in cls.__dataclass_fields__})  # type: ignore[arg-type]


def canonical(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


# -- keys ------------------------------------------------------------------------------------


def key_id_of(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return "notary-" + hashlib.sha256(raw).hexdigest()[:16]


def public_pem(public: Ed25519PublicKey) -> str:
    return public.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()


def default_key_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    data_dir = Path(env.get("YUQING_DATA_DIR") or PROJECT_ROOT / ".data")
    return data_dir / "keys" / "notary-ed25519.pem"


def ensure_signing_key(path: Path) -> Ed25519PrivateKey:
    """The notary's signing key in `path` (PEM, this user only), made if missing; its public
    half is written beside it as `<name>.pub`, to be kept wherever the record is checked."""
    if not path.exists():
        key = Ed25519PrivateKey.generate()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        pem = key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(pem)
    key = load_signing_key(path)
    public = path.with_suffix(".pub")
    if not public.exists():
        public.write_text(public_pem(key.public_key()), encoding="utf-8")
    return key


def load_signing_key(path: Path) -> Ed25519PrivateKey:
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except (OSError, ValueError) as err:
        raise ValueError(f"notary key file {path} cannot be read: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"notary key file {path} is not an Ed25519 private key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except (OSError, ValueError) as err:
        raise ValueError(f"notary public key {path} cannot be read: {err}") from err
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError(f"notary public key {path} is not an Ed25519 public key")
    return key


def trusted_public_key(env: Mapping[str, str] | None = None) -> Ed25519PublicKey | None:
    """The public key to check checkpoints against, kept outside the database: the file
    `YUQING_NOTARY_PUBLIC_KEY`, else the stack's `<data dir>/keys/notary-ed25519.pub`."""
    env = os.environ if env is None else env
    named = env.get(PUBLIC_KEY_ENV)
    if named:
        return load_public_key(Path(named))
    beside = default_key_file(env).with_suffix(".pub")
    return load_public_key(beside) if beside.exists() else None


# -- the notary's side ---------------------------------------------------------------------


async def ensure_schema(conn: Connection, readers: Iterable[str]) -> None:
    """As the notary: its tables, readable (only) by `readers` (the service, the owner)."""
    await conn.execute(_SCHEMA_SQL)
    for reader in readers:
        who = '"' + reader.replace('"', '""') + '"'
        await conn.execute(f"GRANT USAGE ON SCHEMA {NOTARY_SCHEMA} TO {who}")
        for table in ("keys", "checkpoints"):
            await conn.execute(f"REVOKE ALL ON {NOTARY_SCHEMA}.{table} FROM {who}")
            await conn.execute(f"GRANT SELECT ON {NOTARY_SCHEMA}.{table} TO {who}")


_ROW_COLUMNS = ", ".join(("id", *CONTENT_FIELDS, "prev_hash", "row_hash"))


async def take_checkpoint(
    pool: asyncpg.Pool, key: Ed25519PrivateKey, *, now: datetime | None = None
) -> Checkpoint | None:
    """Check the rows appended since the last checkpoint and sign the head; None if nothing was
    appended. Raises NotaryError, signing nothing, if the chain it signed before was changed."""
    public = key.public_key()
    key_id = key_id_of(public)
    async with (
        pool.acquire() as conn,
        conn.transaction(isolation="repeatable_read"),
    ):
        await conn.execute(
            f"INSERT INTO {NOTARY_SCHEMA}.keys (key_id, public_key) VALUES ($1, $2)"
            " ON CONFLICT (key_id) DO NOTHING",
            key_id,
            public_pem(public),
        )
        head = await conn.fetchrow("SELECT id, row_hash FROM audit_log ORDER BY id DESC LIMIT 1")
        if head is None:
            return None
        last_row = await conn.fetchrow(
            f"SELECT * FROM {NOTARY_SCHEMA}.checkpoints ORDER BY seq DESC LIMIT 1"
        )
        last = Checkpoint.from_row(last_row) if last_row is not None else None
        if last is not None and last.last_id == head["id"] and last.last_hash == head["row_hash"]:
            return None
        problems = await _since(conn, last)
        if problems:
            log.error(
                "the notary refuses to sign: the audit chain was changed",
                problems=[p.what for p in problems],
            )
            raise NotaryError(
                f"the audit chain is not the one last signed: {problems[0].what}", problems
            )
        rows = await conn.fetchval("SELECT count(*) FROM audit_log WHERE id <= $1", head["id"])
        archives = await conn.fetchval(
            "SELECT count(*) FROM history_archive WHERE chain_row <= $1", head["id"]
        )
        unsigned = Checkpoint(
            seq=0 if last is None else last.seq + 1,
            taken_at=(now or datetime.now(UTC)).replace(microsecond=0),
            last_id=head["id"],
            last_hash=head["row_hash"],
            rows=rows,
            archives=archives,
            prev_digest=GENESIS if last is None else last.digest,
            key_id=key_id,
            signature="",
        )
        signature = base64.b64encode(key.sign(unsigned.signed_text())).decode()
        checkpoint = Checkpoint(**{**unsigned.__dict__, "signature": signature})
        await conn.execute(
            f"INSERT INTO {NOTARY_SCHEMA}.checkpoints (seq, taken_at, last_id, last_hash, rows,"
            " archives, prev_digest, key_id, signature)"
            " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            checkpoint.seq,
            checkpoint.taken_at,
            checkpoint.last_id,
            checkpoint.last_hash,
            checkpoint.rows,
            checkpoint.archives,
            checkpoint.prev_digest,
            checkpoint.key_id,
            checkpoint.signature,
        )
    log.info(
        "audit chain checkpoint signed",
        seq=checkpoint.seq,
        last_id=checkpoint.last_id,
        rows=checkpoint.rows,
    )
    return checkpoint


async def _since(conn: Connection, last: Checkpoint | None) -> list[Problem]:
    """The rows after `last` link on from it and hash right, and what it signed is there."""
    problems: list[Problem] = []
    expected = GENESIS
    after = 0
    if last is not None:
        signed = await conn.fetchrow(
            "SELECT id, row_hash FROM audit_log WHERE id = $1", last.last_id
        )
        count = await conn.fetchval("SELECT count(*) FROM audit_log WHERE id <= $1", last.last_id)
        if signed is None or signed["row_hash"] != last.last_hash or count != last.rows:
            problems.append(against(last, signed, count))
            return problems
        expected, after = last.last_hash, last.last_id
    cursor = conn.cursor(f"SELECT {_ROW_COLUMNS} FROM audit_log WHERE id > $1 ORDER BY id", after)
    async for row in cursor:
        if row["prev_hash"] != expected or chain_hash(row["prev_hash"], row) != row["row_hash"]:
            problems.append(
                Problem(
                    row_id=row["id"],
                    workflow_id=row["workflow_id"],
                    seq=row["seq"],
                    what="does not link on from the last signed head, or does not hash right",
                )
            )
            break
        expected = row["row_hash"]
    return problems


def against(
    checkpoint: Checkpoint, row: Mapping[str, object] | asyncpg.Record | None, count: int
) -> Problem:
    """What is wrong where the table no longer holds what `checkpoint` signed."""
    if row is None:
        what = (
            f"the row checkpoint {checkpoint.seq} signed (id {checkpoint.last_id}) is gone:"
            " the tail of the chain was cut, or rows were removed"
        )
    elif row is not None and row["row_hash"] != checkpoint.last_hash:
        what = (
            f"row_hash is not the one checkpoint {checkpoint.seq} signed"
            f" ({checkpoint.last_hash[:16]}…): the chain was rewritten up to this row"
        )
    else:
        what = (
            f"{count} row(s) up to here where checkpoint {checkpoint.seq} counted"
            f" {checkpoint.rows}: rows were removed (or added) before it"
        )
    return Problem(row_id=checkpoint.last_id, workflow_id=None, seq=None, what=what)


# -- the verifier's side -------------------------------------------------------------------


@dataclass
class SignedCheckpoints:
    checkpoints: list[Checkpoint]
    problems: list[Problem]
    # Whose public key they were checked against: "trusted file" or "database (unchecked)".
    key_source: str


async def signed_checkpoints(
    conn: Connection, trusted: Ed25519PublicKey | None
) -> SignedCheckpoints:
    """Every checkpoint whose signature holds, in order; each bad one is a problem.

    `trusted` is the notary's public key as kept outside the database; without it, the keys
    the notary recorded in its own schema are used, and the report says so.
    """
    exists = await conn.fetchval(
        "SELECT to_regclass($1) IS NOT NULL", f"{NOTARY_SCHEMA}.checkpoints"
    )
    if not exists:
        return SignedCheckpoints([], [], "none: the notary has never run")
    keys: dict[str, Ed25519PublicKey] = {}
    if trusted is not None:
        keys[key_id_of(trusted)] = trusted
        source = "the notary's public key file"
    else:
        for row in await conn.fetch(f"SELECT key_id, public_key FROM {NOTARY_SCHEMA}.keys"):
            recorded = serialization.load_pem_public_key(row["public_key"].encode())
            if isinstance(recorded, Ed25519PublicKey):
                keys[row["key_id"]] = recorded
        source = "the key recorded in the database (set YUQING_NOTARY_PUBLIC_KEY to check it)"
    good: list[Checkpoint] = []
    problems: list[Problem] = []
    previous: Checkpoint | None = None
    for row in await conn.fetch(f"SELECT * FROM {NOTARY_SCHEMA}.checkpoints ORDER BY seq"):
        checkpoint = Checkpoint.from_row(row)

        def problem(what: str, c: Checkpoint = checkpoint) -> None:
            problems.append(
                Problem(
                    row_id=c.last_id, workflow_id=None, seq=None, what=f"checkpoint {c.seq}: {what}"
                )
            )

        signer = keys.get(checkpoint.key_id)
        if signer is None:
            problem(f"signed with key {checkpoint.key_id}, which is not the notary's")
            continue
        try:
            signer.verify(base64.b64decode(checkpoint.signature), checkpoint.signed_text())
        except (InvalidSignature, ValueError):
            problem("its signature does not hold: it was altered or forged")
            continue
        expected_seq = 0 if previous is None else previous.seq + 1
        if checkpoint.seq != expected_seq:
            problem(f"checkpoints {expected_seq}–{checkpoint.seq - 1} are missing")
        expected_prev = GENESIS if previous is None else previous.digest
        if checkpoint.seq == expected_seq and checkpoint.prev_digest != expected_prev:
            problem("does not follow the checkpoint before it")
        good.append(checkpoint)
        previous = checkpoint
    return SignedCheckpoints(good, problems, source)
