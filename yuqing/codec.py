"""Payloads encrypted at rest in Temporal (SPEC §8): AES-256-GCM, each payload naming its key.

Every payload a client of ours sends (workflow inputs, signals, updates, activity inputs and
results, queries' answers, memos, summaries, failures' messages and stack traces) is replaced by
one whose `data` is the original payload, serialised and encrypted, and whose metadata says
`encoding: binary/encrypted` and the key's id. Search attributes are not payloads: Temporal
indexes them, so they stay readable (and hold no personal data; see `yuqing.search_attributes`).

Keys rotate: the key ring encrypts with its active key and decrypts with any key it holds, so
incidents begun under an old key stay readable as long as the ring keeps that key. A payload
without our encoding (an old history, one recorded for the tests, one sent by the `temporal` CLI
without the codec endpoint) passes through unchanged.

The ring comes from `YUQING_PAYLOAD_KEYS` (inline, for secret stores that hand out environment
variables) or the TOML file `YUQING_PAYLOAD_KEYS_FILE`, else `<data dir>/keys/payload-keys.toml`
when that exists (`./dev serve` writes it on first start). Nothing secret lives in the repo.
"""

from __future__ import annotations

import base64
import binascii
import os
import re
import secrets
import tomllib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from yuqing.settings import PROJECT_ROOT

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
KEY_ID = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12

KEYS_ENV = "YUQING_PAYLOAD_KEYS"
KEYS_FILE_ENV = "YUQING_PAYLOAD_KEYS_FILE"
DATA_DIR_ENV = "YUQING_DATA_DIR"

_KEY_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


class PayloadKeyError(ValueError):
    """The key ring cannot be read, or a payload names a key it does not hold."""


@dataclass(frozen=True)
class KeyRing:
    """The keys payloads are encrypted with: the active one, and older ones kept to decrypt."""

    active: str
    keys: Mapping[str, bytes]
    # Where it was read from, for messages (never the key material itself).
    source: str = "(in memory)"

    def __post_init__(self) -> None:
        for key_id, key in self.keys.items():
            if not _KEY_ID_PATTERN.match(key_id):
                raise PayloadKeyError(
                    f"{self.source}: key id {key_id!r} is not 1-64 letters, digits, '.', '_' or '-'"
                )
            if len(key) != KEY_BYTES:
                raise PayloadKeyError(
                    f"{self.source}: key {key_id!r} has {len(key)} bytes; AES-256 needs"
                    f" {KEY_BYTES} (base64 of 32 random bytes)"
                )
        if self.active not in self.keys:
            raise PayloadKeyError(
                f"{self.source}: the active key {self.active!r} is not among the keys"
                f" ({', '.join(sorted(self.keys)) or 'none'})"
            )

    @classmethod
    def generate(cls, key_id: str | None = None) -> KeyRing:
        key_id = key_id or new_key_id()
        return cls(active=key_id, keys={key_id: secrets.token_bytes(KEY_BYTES)})

    def rotated(self, key_id: str | None = None) -> KeyRing:
        """A ring whose active key is new, keeping every key this one holds."""
        key_id = key_id or new_key_id()
        if key_id in self.keys:
            raise PayloadKeyError(f"{self.source}: there is already a key {key_id!r}")
        return KeyRing(
            active=key_id,
            keys={**self.keys, key_id: secrets.token_bytes(KEY_BYTES)},
            source=self.source,
        )

    def to_env(self) -> str:
        """The inline form `YUQING_PAYLOAD_KEYS` takes: `active=base64,other=base64`."""
        order = [self.active, *sorted(k for k in self.keys if k != self.active)]
        return ",".join(f"{k}={base64.b64encode(self.keys[k]).decode()}" for k in order)

    def to_toml(self) -> str:
        lines = [
            "# Yuqing payload encryption keys (AES-256-GCM), base64. SECRET: keep this file",
            "# readable only by the service; never commit it. Payloads are encrypted with the",
            "# active key; keep every older key for as long as any history or archive uses it.",
            f'active = "{self.active}"',
            "",
            "[keys]",
        ]
        lines += [f'"{k}" = "{base64.b64encode(v).decode()}"' for k, v in sorted(self.keys.items())]
        return "\n".join(lines) + "\n"

    def write(self, path: Path) -> None:
        """Write the ring to `path`, readable by this user only (created so from the start)."""
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        partial = path.with_name(path.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(self.to_toml())
        partial.replace(path)

    @classmethod
    def from_env_value(cls, value: str, source: str = KEYS_ENV) -> KeyRing:
        keys: dict[str, bytes] = {}
        active = None
        for part in (p.strip() for p in value.split(",")):
            if not part:
                continue
            key_id, sep, encoded = part.partition("=")
            if not sep:
                raise PayloadKeyError(f"{source}: {key_id!r} is not key-id=base64-key")
            keys[key_id.strip()] = _decode_key(encoded.strip(), source, key_id)
            active = active or key_id.strip()
        if active is None:
            raise PayloadKeyError(f"{source} is empty: give at least one key-id=base64-key")
        return cls(active=active, keys=keys, source=source)

    @classmethod
    def from_file(cls, path: Path) -> KeyRing:
        source = str(path)
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError as err:
            raise PayloadKeyError(f"payload key file {path} does not exist") from err
        except (OSError, tomllib.TOMLDecodeError) as err:
            raise PayloadKeyError(f"payload key file {path} cannot be read: {err}") from err
        active, keys = data.get("active"), data.get("keys")
        if not isinstance(active, str) or not isinstance(keys, dict) or not keys:
            raise PayloadKeyError(
                f'payload key file {path} needs `active = "<key id>"` and a [keys] table of'
                " key-id = base64-key"
            )
        decoded = {}
        for key_id, encoded in keys.items():
            if not isinstance(encoded, str):
                raise PayloadKeyError(f"{source}: key {key_id!r} is not a base64 string")
            decoded[key_id] = _decode_key(encoded, source, key_id)
        return cls(active=active, keys=decoded, source=source)

    @classmethod
    def from_environ(cls, env: Mapping[str, str] | None = None) -> KeyRing:
        """The ring the environment names (see the module's doc); PayloadKeyError if none."""
        env = os.environ if env is None else env
        inline, file = env.get(KEYS_ENV), env.get(KEYS_FILE_ENV)
        if inline and file:
            raise PayloadKeyError(f"set {KEYS_ENV} or {KEYS_FILE_ENV}, not both")
        if inline:
            return cls.from_env_value(inline)
        if file:
            return cls.from_file(Path(file))
        default = default_key_file(env)
        if default.exists():
            return cls.from_file(default)
        raise PayloadKeyError(
            f"no payload encryption keys: set {KEYS_FILE_ENV} (a key file; `./dev serve` makes"
            f" {default}) or {KEYS_ENV}; payloads are never sent to Temporal in clear"
        )


def default_key_file(env: Mapping[str, str] | None = None) -> Path:
    env = os.environ if env is None else env
    data_dir = Path(env.get(DATA_DIR_ENV) or PROJECT_ROOT / ".data")
    return data_dir / "keys" / "payload-keys.toml"


def ensure_key_file(path: Path) -> KeyRing:
    """The ring in `path`, made (one fresh key) if the file does not exist yet."""
    if not path.exists():
        KeyRing.generate().write(path)
    return KeyRing.from_file(path)


def rotate_key_file(path: Path, key_id: str | None = None) -> KeyRing:
    """Add a fresh key to the file and make it the active one; older keys stay."""
    ring = KeyRing.from_file(path).rotated(key_id)
    ring.write(path)
    return KeyRing.from_file(path)


def new_key_id(now: datetime | None = None) -> str:
    """e.g. `k20261128-3fa2`: when it was made, and enough randomness not to collide."""
    now = now or datetime.now(UTC)
    return f"k{now:%Y%m%d}-{secrets.token_hex(2)}"


def _decode_key(encoded: str, source: str, key_id: str) -> bytes:
    try:
        return base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError) as err:
        raise PayloadKeyError(f"{source}: key {key_id!r} is not valid base64") from err


class EncryptionCodec(PayloadCodec):
    """AES-256-GCM over each whole payload (metadata included), its key id as associated data."""

    def __init__(self, ring: KeyRing) -> None:
        super().__init__()
        self.ring = ring
        self._ciphers = {key_id: AESGCM(key) for key_id, key in ring.keys.items()}

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") == ENCODING:
            return payload  # already ours: never wrap twice
        key_id = self.ring.active
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(
            nonce, payload.SerializeToString(deterministic=True), key_id.encode()
        )
        return Payload(
            metadata={
                "encoding": ENCODING,
                KEY_ID: key_id.encode(),
                "encryption-cipher": CIPHER,
            },
            data=nonce + sealed,
        )

    def decrypt(self, payload: Payload) -> Payload:
        if payload.metadata.get("encoding") != ENCODING:
            return payload
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(
                f"this payload was encrypted with key {key_id!r}, which the key ring"
                f" ({self.ring.source}) does not hold; it holds {', '.join(sorted(self.keys))}"
            )
        data = payload.data
        try:
            plain = cipher.decrypt(data[:NONCE_BYTES], data[NONCE_BYTES:], key_id.encode())
        except InvalidTag as err:
            raise PayloadKeyError(
                f"a payload under key {key_id!r} does not decrypt: it was altered, or the key"
                " under that id is not the one it was encrypted with"
            ) from err
        return Payload.FromString(plain)

    @property
    def keys(self) -> Iterable[str]:
        return self._ciphers.keys()


def is_encrypted(payload: Payload) -> bool:
    return payload.metadata.get("encoding") == ENCODING


def walk_payloads(message: Message, *, skip_search_attributes: bool = True) -> Iterable[Payload]:
    """Every Payload inside a protobuf message (a history, an event), depth first.

    Search attributes are skipped by default: they are indexed, never encoded.
    """
    for field, value in message.ListFields():
        if field.message_type is None:
            continue
        if skip_search_attributes and field.message_type.full_name == (
            "temporal.api.common.v1.SearchAttributes"
        ):
            continue
        if field.message_type.GetOptions().map_entry:
            values = value.values()
            if field.message_type.fields_by_name["value"].message_type is None:
                continue
        elif field.is_repeated:
            values = value
        else:
            values = [value]
        for item in values:
            if isinstance(item, Payload):
                yield item
                # A failure's encoded attributes or a payload nested in a payload: no deeper.
            else:
                yield from walk_payloads(item, skip_search_attributes=skip_search_attributes)


async def decode_in_place(message: Message, codec: PayloadCodec) -> int:
    """Decode every payload inside `message` (a History, say), in place; how many changed."""
    changed = 0
    for payload in list(walk_payloads(message)):
        if not is_encrypted(payload):
            continue
        (plain,) = await codec.decode([payload])
        payload.CopyFrom(plain)
        changed += 1
    return changed


def payloads_from_json(body: bytes) -> list[Payload]:
    """The codec server protocol's body (`{"payloads": [...]}`, protobuf JSON) as payloads."""
    from google.protobuf import json_format

    return list(json_format.Parse(body, Payloads()).payloads)


def payloads_to_json(payloads: Sequence[Payload]) -> str:
    from google.protobuf import json_format

    return json_format.MessageToJson(Payloads(payloads=payloads), indent=None)
