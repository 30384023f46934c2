"""Signed decisions (SPEC §8): who decided is proven by an Ed25519 signature, not by a name.

A deciding payload carries `"proof": {"key_id": ..., "signature": <base64>}`. The signature
covers the canonical JSON (keys sorted, no whitespace, UTF-8) of

    {"workflow_id": <the workflow it is sent to>, "signal": <its name>, "payload": <without proof>}

so a proof made for one incident, one signal or one draft version proves nothing elsewhere.
Public keys live in a keys file (`YUQING_KEYS`), each with its holder and its validity; the
configuration activity loads it, so an incident's keys are in its history and the workflow's
check (`Keyring.verify`, pure computation) replays the same way. Private keys never enter the
repository: the API's comes from `YUQING_SIGNING_KEY`, a person's from their own file.
"""

from __future__ import annotations

import base64
import binascii
import functools
import json
import os
import stat
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator
from temporalio import workflow

from yuqing.toml_files import load_toml_model

PROOF = "proof"
KEY_ID = r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,63}$"


class KeysError(ValueError):
    """A keys file or a private key cannot be used; the message names it and what is wrong."""


class SignatureRefused(ValueError):
    """Why a payload's proof does not prove it; the workflow records this as `forbidden`."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Proof(_Strict):
    key_id: str = Field(pattern=KEY_ID)
    signature: str = Field(min_length=1, max_length=200)


class PublicKey(_Strict):
    """One public key: a person's own, or a service's that signs in the name of the person it
    has authenticated (the API's)."""

    key_id: str = Field(pattern=KEY_ID)
    holder: str | None = Field(default=None, description="the roster person who holds it")
    service: str | None = Field(
        default=None, description="a service that signs for the people it authenticates"
    )
    public_key: str = Field(description="the raw 32-byte Ed25519 public key, base64")
    valid_from: AwareDatetime
    valid_until: AwareDatetime | None = Field(
        default=None, description="refused for anything received after this"
    )
    note: str = ""

    @model_validator(mode="after")
    def _checked(self) -> PublicKey:
        if (self.holder is None) == (self.service is None):
            raise ValueError("give exactly one of holder (a person) or service")
        try:
            raw = base64.b64decode(self.public_key, validate=True)
        except binascii.Error as err:
            raise ValueError(f"public_key is not base64: {err}") from err
        if len(raw) != 32:
            raise ValueError(f"public_key is {len(raw)} bytes; an Ed25519 key has 32")
        if self.valid_until is not None and self.valid_until <= self.valid_from:
            raise ValueError("valid_until must come after valid_from")
        return self

    @property
    def who(self) -> str:
        return self.holder or f"service {self.service}"

    def valid_at(self, at: datetime) -> bool:
        return self.valid_from <= at and (self.valid_until is None or at <= self.valid_until)


@dataclass(frozen=True)
class Verified:
    """A payload whose proof holds: the payload without it, and the key that signed it."""

    payload: dict[str, Any]
    key: PublicKey


class Keyring(_Strict):
    """The public keys in force, as the keys file gives them (`YUQING_KEYS`)."""

    version: str = Field(min_length=1)
    keys: list[PublicKey] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> Keyring:
        ids = [key.key_id for key in self.keys]
        twice = sorted({i for i in ids if ids.count(i) > 1})
        if twice:
            raise ValueError(f"key id(s) {', '.join(twice)} appear twice")
        return self

    def key(self, key_id: str) -> PublicKey | None:
        return next((key for key in self.keys if key.key_id == key_id), None)

    def verify(
        self, workflow_id: str, signal: str, raw: Mapping[str, Any], at: datetime
    ) -> Verified:
        """The payload without its proof, if the proof holds at `at`; else SignatureRefused."""
        proof = read_proof(raw)
        key = self.key(proof.key_id)
        if key is None:
            raise SignatureRefused(
                f"{signal} is signed with key {proof.key_id}, which is not in keys {self.version}"
            )
        if at < key.valid_from:
            raise SignatureRefused(
                f"key {key.key_id} ({key.who}) is valid only from {key.valid_from.isoformat()}"
            )
        if key.valid_until is not None and at > key.valid_until:
            raise SignatureRefused(
                f"key {key.key_id} ({key.who}) was rotated out: valid until "
                f"{key.valid_until.isoformat()}"
            )
        payload = {k: v for k, v in raw.items() if k != PROOF}
        try:
            signature = base64.b64decode(proof.signature, validate=True)
            # cryptography imports parts of itself on first use; in a workflow's sandbox those
            # must be the process's own modules (its Rust core loads once per process).
            with workflow.unsafe.imports_passed_through():
                public = _public_key(key.public_key)
                public.verify(signature, signed_bytes(workflow_id, signal, payload))
        except (binascii.Error, InvalidSignature) as err:
            raise SignatureRefused(
                f"the signature of key {key.key_id} ({key.who}) does not match this {signal} "
                f"for {workflow_id}: it was made for another payload or another workflow"
            ) from err
        return Verified(payload, key)


@functools.lru_cache(maxsize=256)
def _public_key(encoded: str) -> Ed25519PublicKey:
    """The key as `cryptography` holds it, made once per key and process: a replay of a
    thousand decisions signed by one key loaded it a thousand times. binascii.Error and
    ValueError for a key that is none (raised each time: failures are not cached)."""
    return Ed25519PublicKey.from_public_bytes(base64.b64decode(encoded))


def read_proof(raw: Mapping[str, Any]) -> Proof:
    value = raw.get(PROOF)
    if value is None:
        raise SignatureRefused(
            'it carries no proof: a decision is accepted only signed ("proof": {"key_id", '
            '"signature"}); the API signs for you, `yuqing sign` signs a file'
        )
    try:
        return Proof.model_validate(value)
    except ValueError as err:
        raise SignatureRefused(f"its proof is malformed: {_first_error(err)}") from err


def _first_error(err: ValueError) -> str:
    errors = getattr(err, "errors", None)
    if callable(errors):
        first = errors()[0]
        return f"{'.'.join(str(p) for p in first['loc']) or 'proof'}: {first['msg']}"
    return str(err)


def signed_bytes(workflow_id: str, signal: str, payload: Mapping[str, Any]) -> bytes:
    """The canonical JSON the signature covers: sorted keys, no whitespace, UTF-8."""
    content = {
        "workflow_id": workflow_id,
        "signal": signal,
        "payload": {k: v for k, v in payload.items() if k != PROOF},
    }
    return json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode(
        "utf-8"
    )


@dataclass(frozen=True)
class Signer:
    """A private key and its id: signs payloads for the workflow they are sent to."""

    key_id: str
    private_key: Ed25519PrivateKey

    def sign(self, workflow_id: str, signal: str, payload: Mapping[str, Any]) -> dict[str, Any]:
        """`payload` with its proof (any proof it had is replaced)."""
        bare = {k: v for k, v in payload.items() if k != PROOF}
        signature = self.private_key.sign(signed_bytes(workflow_id, signal, bare))
        proof = {"key_id": self.key_id, "signature": base64.b64encode(signature).decode("ascii")}
        return {**bare, PROOF: proof}

    @property
    def public_key(self) -> str:
        return public_key_text(self.private_key)


# (replay) cryptography's serialization is imported where it is used: only the holders of
# private keys (the API, `yuqing sign`, `yuqing keys`) need it; the workflows, and `yuqing audit
# --replay`'s replayer, verify with public keys made from raw bytes (its SSH formats are most
# of its import).


def public_key_text(private_key: Ed25519PrivateKey) -> str:
    from cryptography.hazmat.primitives import serialization

    raw = private_key.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return base64.b64encode(raw).decode("ascii")


def load_keyring(path: Path) -> Keyring:
    return load_toml_model(
        path, Keyring, what="keys", error=KeysError, missing_hint=" (set YUQING_KEYS)"
    )


def private_key_pem(private_key: Ed25519PrivateKey) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def read_private_key(text: bytes, where: str) -> Ed25519PrivateKey:
    """A PEM (PKCS#8) Ed25519 private key, or the raw 32-byte seed in base64."""
    from cryptography.hazmat.primitives import serialization

    stripped = text.strip()
    try:
        if stripped.startswith(b"-----BEGIN"):
            key = serialization.load_pem_private_key(stripped, password=None)
        else:
            key = Ed25519PrivateKey.from_private_bytes(base64.b64decode(stripped, validate=True))
    except (ValueError, TypeError, binascii.Error) as err:
        raise KeysError(f"{where} is not an Ed25519 private key: {err}") from err
    if not isinstance(key, Ed25519PrivateKey):
        raise KeysError(f"{where} holds a {type(key).__name__}, not an Ed25519 private key")
    return key


def load_private_key(path: Path) -> Ed25519PrivateKey:
    try:
        mode = path.stat().st_mode
        text = path.read_bytes()
    except OSError as err:
        raise KeysError(f"private key {path} cannot be read: {err.strerror}") from err
    if mode & (stat.S_IRWXG | stat.S_IRWXO):
        raise KeysError(
            f"private key {path} is readable by others (mode {stat.S_IMODE(mode):o}): "
            f"chmod 600 {path}"
        )
    return read_private_key(text, f"private key {path}")


def signer_from_env(
    environ: Mapping[str, str] | None = None, *, key_path: Path | None = None
) -> Signer | None:
    """The API's service key: YUQING_SIGNING_KEY (a file) or YUQING_SIGNING_KEY_B64 (the seed
    itself, for secret stores that hand out values), with YUQING_SIGNING_KEY_ID."""
    env = os.environ if environ is None else environ
    key_id = env.get("YUQING_SIGNING_KEY_ID")
    inline = env.get("YUQING_SIGNING_KEY_B64")
    path = key_path or (Path(env["YUQING_SIGNING_KEY"]) if env.get("YUQING_SIGNING_KEY") else None)
    if path is None and not inline:
        return None
    if not key_id:
        raise KeysError("YUQING_SIGNING_KEY_ID is not set: name the key id the keys file gives")
    if inline:
        key = read_private_key(inline.encode("ascii"), "YUQING_SIGNING_KEY_B64")
    else:
        assert path is not None
        key = load_private_key(path)
    return Signer(key_id, key)


def new_key_pair(
    directory: Path,
    key_id: str,
    *,
    valid_from: datetime,
    valid_until: datetime | None = None,
    holder: str | None = None,
    service: str | None = None,
) -> tuple[Path, PublicKey]:
    """A fresh key: its private half written to `directory/<key_id>.pem` (mode 600), its
    public entry returned for the keys file."""
    private_key = Ed25519PrivateKey.generate()
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{key_id}.pem"
    if path.exists():
        raise KeysError(f"{path} already exists: a key id is used once")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(private_key_pem(private_key))
    entry = PublicKey(
        key_id=key_id,
        holder=holder,
        service=service,
        public_key=public_key_text(private_key),
        valid_from=valid_from,
        valid_until=valid_until,
    )
    return path, entry


def key_entry_toml(entry: PublicKey) -> str:
    """The `[[keys]]` entry of a public key, to append to the keys file."""
    lines = ["[[keys]]", f'key_id = "{entry.key_id}"']
    if entry.holder is not None:
        lines.append(f'holder = "{entry.holder}"')
    if entry.service is not None:
        lines.append(f'service = "{entry.service}"')
    lines.append(f'public_key = "{entry.public_key}"')
    lines.append(f"valid_from = {entry.valid_from.isoformat()}")
    if entry.valid_until is not None:
        lines.append(f"valid_until = {entry.valid_until.isoformat()}")
    return "\n".join(lines) + "\n"
