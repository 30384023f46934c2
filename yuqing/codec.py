"""Payloads encrypted at rest in Temporal (SPEC §8): AES-256-GCM, each payload naming its key.

Every payload a client of ours sends (workflow inputs, signals, updates, activity inputs and
results, queries' answers, memos, summaries, failures' messages and stack traces) is replaced by
one without metadata whose `data` is a small header (the format, and a tag naming the key), then
the original payload, deflated and encrypted (format 3, below). Payloads sealed in format 2
(`encoding: binary/sealed`, the key id in the header) and format 1 (`encoding:
binary/encrypted`, the key's id and cipher in metadata) open as before.
Search attributes are not payloads: Temporal indexes them, so they stay readable (and hold no
personal data; see `yuqing.search_attributes`).

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
import functools
import hashlib
import os
import re
import secrets
import threading
import tomllib
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from google.protobuf.message import Message
from temporalio.api.common.v1 import Payload, Payloads
from temporalio.converter import PayloadCodec

from yuqing.settings import PROJECT_ROOT

ENCODING = b"binary/encrypted"
CIPHER = b"AES-256-GCM"
CIPHER_METADATA = "encryption-cipher"
KEY_ID = "encryption-key-id"
KEY_BYTES = 32
NONCE_BYTES = 12
TAG_BYTES = 16

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
        # A payload names its key by a 4-byte tag: a new key must not share one (a ring
        # that does is refused when it is loaded, by every process at its restart).
        tags = {key_tag(k): k for k in self.keys}
        if key_id is None:
            key_id = new_key_id()
            while key_tag(key_id) in tags:
                key_id = new_key_id()
        if key_id in self.keys:
            raise PayloadKeyError(f"{self.source}: there is already a key {key_id!r}")
        if key_tag(key_id) in tags:
            raise PayloadKeyError(
                f"{self.source}: key {key_id!r} would have the same 4-byte tag as"
                f" {tags[key_tag(key_id)]!r}; choose another id"
            )
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

    def __init__(self, ring: KeyRing, *, writes: int = 3) -> None:
        super().__init__()
        if writes not in WRITABLE_FORMATS:
            raise ValueError(f"payload format {writes}: this code writes format 1, 2 or 3")
        self.ring = ring
        # Every format is read; one is written: 1 or 2 while processes that read only those
        # may still run (a rolling upgrade from a release before format 2 or 3), then 3.
        self.writes = writes
        self._ciphers = {key_id: AESGCM(key) for key_id, key in ring.keys.items()}
        self._tagged: dict[bytes, str] = {}
        # perf (issue 9): what format 3 seals every payload with, worked out once (the tag is a
        # SHA-256 of the id: it was computed again for each payload).
        self._active_tag = key_tag(ring.active)
        self._active_id = ring.active.encode()
        self._active_cipher = self._ciphers[ring.active]
        # perf (issue 9): the deflated form of each recent large plain text (see `_Deflated`).
        self._deflated = _Deflated()
        for key_id in ring.keys:
            other = self._tagged.setdefault(key_tag(key_id), key_id)
            if other != key_id:
                raise PayloadKeyError(
                    f"{ring.source}: keys {other!r} and {key_id!r} have the same 4-byte tag in"
                    " the payload envelope; give one of them another id"
                )

    async def encode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.encrypt(p) for p in payloads]

    async def decode(self, payloads: Sequence[Payload]) -> list[Payload]:
        return [self.decrypt(p) for p in payloads]

    def encrypt(self, payload: Payload) -> Payload:
        # Already ours: never wrapped twice. (Every converter writes an `encoding` entry, so a
        # payload without metadata too short to be sealed is somebody else's: sealed.)
        if is_encrypted(payload) and (payload.metadata or len(payload.data) >= _LEAST_3):
            return payload
        if self.writes == 3:
            return self._seal_3(payload)
        return self._seal(payload) if self.writes == 2 else self._seal_1(payload)

    def decrypt(self, payload: Payload) -> Payload:
        if _is_format_3(payload):
            return self._open_3(payload.data)
        encoding = payload.metadata.get("encoding")
        if encoding == SEALED:
            return self._open(payload.data)
        if encoding != ENCODING:
            return payload
        # Sealed before the compact envelope (format 1): the key id and cipher in metadata.
        key_id = payload.metadata.get(KEY_ID, b"").decode(errors="replace")
        cipher = self._cipher(key_id)
        data = payload.data
        how = payload.metadata.get(CIPHER_METADATA, CIPHER)
        plain = _opened(
            cipher, key_id, data[:NONCE_BYTES], data[NONCE_BYTES:], _associated(key_id, how)
        )
        return Payload.FromString(_unpacked(plain, how))

    @property
    def keys(self) -> Iterable[str]:
        return self._ciphers.keys()

    def _cipher(self, key_id: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise PayloadKeyError(
                f"this payload was encrypted with key {key_id!r}, which the key ring"
                f" ({self.ring.source}) does not hold; it holds {', '.join(sorted(self.keys))}"
            )
        return cipher

    def _seal_1(self, payload: Payload) -> Payload:
        """Format 1, as releases before format 2 wrote it and read it."""
        key_id = self.ring.active
        nonce = secrets.token_bytes(NONCE_BYTES)
        plain, cipher = _seal_1_parts(payload.SerializeToString(deterministic=True))
        sealed = self._ciphers[key_id].encrypt(nonce, plain, _associated(key_id, cipher))
        metadata = {"encoding": ENCODING, KEY_ID: key_id.encode(), CIPHER_METADATA: cipher}
        return Payload(metadata=metadata, data=nonce + sealed)

    def _seal(self, payload: Payload) -> Payload:
        """Format 2, as the release before format 3 wrote it and read it."""
        key_id = self.ring.active
        plain, flags = _packed(payload, 1, self._deflated)
        header = _header(flags, key_id)
        nonce = secrets.token_bytes(NONCE_BYTES)
        sealed = self._ciphers[key_id].encrypt(nonce, plain, header)
        return Payload(metadata={"encoding": SEALED}, data=header + nonce + sealed)

    def _seal_3(self, payload: Payload) -> Payload:
        plain, flags = _packed(payload, 2, self._deflated)
        header = bytes((FORMAT_3 | flags,)) + self._active_tag
        # os.urandom is what secrets.token_bytes returns, without its two calls in between.
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._active_cipher.encrypt(nonce, plain, header + self._active_id)
        return Payload(data=header + nonce + sealed)

    def key_of(self, payload: Payload) -> str | None:
        """The id of the key a payload of ours was sealed with (any format), or None."""
        if _is_format_3(payload):
            tag = payload.data[1:_HEADER_3]
            return self._tagged.get(tag, f"#{tag.hex()}")
        return key_id_of(payload)

    def _open_3(self, data: bytes) -> Payload:
        flags = data[0] & 0x0F
        if flags & ~_FLAGS:
            raise PayloadKeyError(
                f"a sealed payload has flags this code does not know (first byte {data[0]:02x})"
            )
        tag = data[1:_HEADER_3]
        key_id = self._tagged.get(tag)
        if key_id is None:
            raise PayloadKeyError(
                f"this payload was encrypted with the key whose tag is {tag.hex()}, which the key"
                f" ring ({self.ring.source}) does not hold; it holds"
                f" {', '.join(f'{k} ({key_tag(k).hex()})' for k in sorted(self.keys))}"
            )
        if len(data) < _LEAST_3:
            raise PayloadKeyError(f"a payload under key {key_id!r} is cut short: {len(data)} B")
        nonce_end = _HEADER_3 + NONCE_BYTES
        plain = _opened(
            self._ciphers[key_id],
            key_id,
            data[_HEADER_3:nonce_end],
            data[nonce_end:],
            data[:_HEADER_3] + key_id.encode(),
        )
        return _unpacked_2(plain, flags)

    def _open(self, data: bytes) -> Payload:
        if len(data) < 2 or data[0] & 0xF0 != FORMAT_2 or data[0] & ~_FLAGS & 0x0F:
            raise PayloadKeyError(
                f"a payload marked {SEALED.decode()} is not in a format this code reads"
                f" (first byte {data[:1].hex() or 'missing'})"
            )
        flags, end = data[0] & 0x0F, 2 + data[1]
        key_id = data[2:end].decode(errors="replace")
        if len(data) < end + NONCE_BYTES + TAG_BYTES:
            raise PayloadKeyError(f"a payload under key {key_id!r} is cut short: {len(data)} B")
        plain = _opened(
            self._cipher(key_id),
            key_id,
            data[end : end + NONCE_BYTES],
            data[end + NONCE_BYTES :],
            data[:end],
        )
        return _unpacked_2(plain, flags)


def _opened(cipher: AESGCM, key_id: str, nonce: bytes, sealed: bytes, bound: bytes) -> bytes:
    """The plain bytes of a sealed payload (any format), or why they cannot be had."""
    try:
        return cipher.decrypt(nonce, sealed, bound)
    except InvalidTag as err:
        raise PayloadKeyError(
            f"a payload under key {key_id!r} does not decrypt: it was altered, or the key"
            " under that id is not the one it was encrypted with"
        ) from err


def _packed(payload: Payload, dictionary_number: int, recent: _Deflated) -> tuple[bytes, int]:
    """What formats 2 and 3 seal of a payload, and the flags that say how to unpack it:
    deflated with dictionary 1 (format 2, what its readers know) or 2 (format 3)."""
    flags = 0
    metadata = payload.metadata
    # (the metadata's only entry is `encoding: json/plain`; said without building a key set)
    if len(metadata) == 1 and metadata.get("encoding") == JSON_PLAIN:
        plain, flags = payload.data, FLAG_JSON
    else:
        plain = payload.SerializeToString(deterministic=True)
    if len(plain) < DEFLATE_FROM_2:
        return plain, flags
    remembered = REMEMBER_FROM <= len(plain) <= REMEMBER_AT_MOST
    if remembered:
        found = recent.get((dictionary_number, plain))
        if found is not None:
            return found[0], flags | found[1]
    packed, flag = plain, 0
    deflater = _primed(dictionary_number).copy()
    deflated = deflater.compress(plain) + deflater.flush()
    if len(deflated) < len(plain):
        flag = FLAG_DEFLATED_1 if dictionary_number == 1 else FLAG_DEFLATED_2
        packed = deflated
    if remembered:
        recent.put((dictionary_number, plain), (packed, flag))
    return packed, flags | flag


# perf (issue 9): a large plain text sent again and again (the configuration `load_configuration`
# returns, read back by every run; each workflow task's activity inputs that carry it) was
# deflated afresh each time: deflating is most of the codec's cost. Its deflated form is kept
# for the last few such texts, keyed by the plain bytes themselves (equal bytes deflate to equal
# bytes: nothing of the outcome changes). Only deflated plain text is held, never a nonce nor
# a key: each payload is still sealed on its own, with its own nonce.
REMEMBER_FROM = 4 * 1024  # bytes: below this, deflating costs little more than looking up
REMEMBER_AT_MOST = 64 * 1024  # bytes: no larger text is held (32 of them at most)
REMEMBERED = 32


class _Deflated:
    """The deflated form (and its flag) of the `REMEMBERED` plain texts last sealed, the least
    recently used let go first; one per codec, its lock for the threads that seal at once."""

    def __init__(self, size: int = REMEMBERED) -> None:
        self.size = size
        self._held: OrderedDict[tuple[int, bytes], tuple[bytes, int]] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._held)

    def get(self, key: tuple[int, bytes]) -> tuple[bytes, int] | None:
        with self._lock:
            found = self._held.get(key)
            if found is not None:
                self._held.move_to_end(key)
            return found

    def put(self, key: tuple[int, bytes], value: tuple[bytes, int]) -> None:
        with self._lock:
            self._held[key] = value
            self._held.move_to_end(key)
            while len(self._held) > self.size:
                self._held.popitem(last=False)


def _unpacked_2(plain: bytes, flags: int) -> Payload:
    if flags & FLAG_DEFLATED_1 and flags & FLAG_DEFLATED_2:
        raise PayloadKeyError("a sealed payload says it was deflated with two dictionaries")
    if flags & FLAG_DEFLATED_1:
        plain = _inflated(zlib.decompressobj(-15, zdict=dictionary(1)), plain)
    elif flags & FLAG_DEFLATED_2:
        plain = _inflated(zlib.decompressobj(-15, zdict=dictionary(2)), plain)
    if flags & FLAG_JSON:
        return Payload(metadata={"encoding": JSON_PLAIN}, data=plain)
    return Payload.FromString(plain)


# -- perf (issue 9): payloads compressed before they are sealed (format 1; opened, no longer made)
# Every payload is JSON, and a history holds the configuration, the trail's batches and the memo
# many times over: deflated first, a general incident's history is about a third smaller (bench/
# RESULTS.md). Small payloads stay as they are (zlib's own bytes would outweigh the gain), and
# so does any that deflate does not shrink. The cipher's name says which it is, and it is bound
# into the associated data, so relabelling a payload does not open it. Payloads sealed before
# (plain AES-256-GCM, the key id alone as associated data) open as they always did.
# Compressing before encrypting lets a payload's length depend on how alike its parts are: an
# insider who could both put text into an incident and read ciphertext lengths in Temporal
# learns, at most, whether their text resembles the rest of that same payload.
CIPHER_DEFLATED = b"AES-256-GCM+zlib"
DEFLATE_LEVEL = 6
INFLATE_AT_MOST = 16 * 2**20  # far above Temporal's payload limit: never a reason to refuse


DEFLATE_FROM_1 = 192  # bytes of serialised payload


def _seal_1_parts(serialised: bytes) -> tuple[bytes, bytes]:
    if len(serialised) >= DEFLATE_FROM_1:
        deflated = zlib.compress(serialised, DEFLATE_LEVEL)
        if len(deflated) < len(serialised):
            return deflated, CIPHER_DEFLATED
    return serialised, CIPHER


def _associated(key_id: str, cipher: bytes) -> bytes:
    return key_id.encode() if cipher != CIPHER_DEFLATED else key_id.encode() + b"\0" + cipher


def _unpacked(plain: bytes, cipher: bytes) -> bytes:
    if cipher != CIPHER_DEFLATED:
        return plain
    return _inflated(zlib.decompressobj(), plain)


def _inflated(inflater: Any, plain: bytes) -> bytes:
    serialised: bytes = inflater.decompress(plain, INFLATE_AT_MOST)
    if inflater.unconsumed_tail or not inflater.eof:
        raise PayloadKeyError("a compressed payload does not inflate within 16 MiB")
    return serialised


# -- hist (issue 9): the compact envelope (format 2) ---------------------------------------------
# Format 1 spent ~130 bytes on every payload (three metadata entries, and the original's own
# `encoding: json/plain` sealed inside), more than many payloads hold: a general incident's
# history was 2.5 × a bare workflow's. Format 2 says `encoding: binary/sealed` and nothing else;
# its data is a header, the nonce and the ciphertext with its tag:
#
#     byte 0     the format (2) in the high nibble, the flags in the low one
#     byte 1     length of the key id, then the key id (ASCII, 1-64 bytes)
#     12 bytes   nonce;  the rest: AES-256-GCM ciphertext and its 16-byte tag
#
# The whole header (format, flags, key id) is the associated data: relabelling a payload's key
# or flags does not open it. FLAG_JSON: the original was `encoding: json/plain` and nothing
# else, and only its data is sealed (its metadata comes back on opening). FLAG_DEFLATED_1: the
# sealed bytes were raw-deflated with dictionary 1 (yuqing/payload_dictionaries/1.txt, made by
# bench/dictionary.py from the skeletons of recorded payloads: field names and fixed values,
# no incident's text), which shrinks even a short trail line or memo to a fraction. A
# dictionary, once used, never changes: a better one would be a new flag. What format 1 said
# about compression and lengths holds here too.
SEALED = b"binary/sealed"
JSON_PLAIN = b"json/plain"
FORMAT_2 = 0x20
WRITABLE_FORMATS = (1, 2, 3)
PAYLOAD_FORMAT_ENV = "YUQING_PAYLOAD_FORMAT"


def payload_format(env: Mapping[str, str]) -> int:
    """The format this process writes: YUQING_PAYLOAD_FORMAT, 3 unless it says 1 or 2."""
    given = env.get(PAYLOAD_FORMAT_ENV, "").strip() or "3"
    if given not in ("1", "2", "3"):
        raise ValueError(
            f"{PAYLOAD_FORMAT_ENV}={given!r}: give 1 or 2 (while processes of a release before"
            " format 2 or 3 still run) or 3"
        )
    return int(given)


FLAG_JSON = 0x01
FLAG_DEFLATED_1 = 0x02
# (format 3) raw-deflated with dictionary 2 (yuqing/payload_dictionaries/2.txt): dictionary 1's
# skeletons, then the English the workflow writes itself (its trail lines' details, the
# policy's deadline and step titles), none of what people sent, no id of the roster (bench/
# dictionary.py --with-phrases). Never changes either.
FLAG_DEFLATED_2 = 0x04
_FLAGS = FLAG_JSON | FLAG_DEFLATED_1 | FLAG_DEFLATED_2
DEFLATE_FROM_2 = 24  # bytes: below this, deflate's own end-of-block bits outweigh the gain
_DICTIONARIES = Path(__file__).parent / "payload_dictionaries"


@functools.cache
def dictionary(number: int) -> bytes:
    return (_DICTIONARIES / f"{number}.txt").read_bytes()


@functools.cache
def _primed(number: int) -> Any:
    """A deflater that has read dictionary `number`, never used itself: each payload gets a
    copy (reading 32 KiB of dictionary afresh for each one cost three times the deflating)."""
    return zlib.compressobj(DEFLATE_LEVEL, zlib.DEFLATED, -15, zdict=dictionary(number))


def _header(flags: int, key_id: str) -> bytes:
    name = key_id.encode()
    return bytes((FORMAT_2 | flags, len(name))) + name


def key_id_of(payload: Payload) -> str | None:
    """The id of the key a payload of ours was sealed with (formats 1 and 2), or None; of a
    format 3 payload, its key's tag as `#` and hex (`EncryptionCodec.key_of` names the key)."""
    if _is_format_3(payload):
        return "#" + payload.data[1:_HEADER_3].hex()
    encoding = payload.metadata.get("encoding")
    if encoding == SEALED and len(payload.data) >= 2:
        return payload.data[2 : 2 + payload.data[1]].decode(errors="replace")
    if encoding == ENCODING:
        return payload.metadata.get(KEY_ID, b"").decode(errors="replace")
    return None


def is_encrypted(payload: Payload) -> bool:
    return _is_format_3(payload) or payload.metadata.get("encoding") in (ENCODING, SEALED)


# -- hist (issue 9): the envelope without metadata (format 3) ------------------------------------
# Format 2's one metadata entry (`encoding: binary/sealed`, 27 bytes as stored) and its key id
# in clear (16 bytes for `k20261201-13a2`) were a third of what sealing added to each payload;
# a general incident's history holds ~85 sealed payloads. Format 3 has no metadata at all (no
# converter of any SDK writes a payload without `encoding`, so none is taken for ours) and
# names its key by a 4-byte tag:
#
#     byte 0     the format (3) in the high nibble, the flags in the low one (as format 2's,
#                but what is deflated is deflated with dictionary 2: FLAG_DEFLATED_2)
#     4 bytes    the key's tag: the first 4 bytes of SHA-256("yuqing-payload-key\0" + key id)
#     12 bytes   nonce;  the rest: AES-256-GCM ciphertext and its 16-byte tag
#
# The associated data is the header and the key id the tag stands for: relabelling a payload's
# key or flags does not open it. A ring whose ids share a tag is refused when it is loaded. The
# key's id is no longer readable without the ring (`EncryptionCodec.key_of` names it with it).
FORMAT_3 = 0x30
_HEADER_3 = 5


def key_tag(key_id: str) -> bytes:
    return hashlib.sha256(b"yuqing-payload-key\0" + key_id.encode()).digest()[:4]


# The least a format 3 payload can be: its header, the nonce and the GCM tag.
_LEAST_3 = _HEADER_3 + NONCE_BYTES + TAG_BYTES


def _is_format_3(payload: Payload) -> bool:
    data = payload.data
    return not payload.metadata and len(data) > 0 and data[0] & 0xF0 == FORMAT_3


def walk_payloads(message: Message, *, skip_search_attributes: bool = True) -> Iterable[Payload]:
    """Every Payload inside a protobuf message (a history, an event), depth first.

    Search attributes are skipped by default: they are indexed, never encoded.
    """
    # perf (issue 9): only the fields that can hold a payload are looked at, and a oneof (an
    # event's attributes) by the one member set: see _plan. (replay) Through a collector made
    # once per message type (`_collector`), not a generator per message: `yuqing audit
    # --replay` walks every event of every run before it hands them over (`payloads_in`: 27 ->
    # 18 ms of CPU for a 1,000-line incident's 8,951 events).
    found: list[Payload] = []
    _collector(message.DESCRIPTOR, skip_search_attributes)(message, found)
    return found


def payloads_in(messages: Iterable[Message]) -> list[Payload]:
    """`walk_payloads` of each message (of one type: a run's events, say), in order."""
    found: list[Payload] = []
    collect: Collect | None = None
    for message in messages:
        if collect is None:
            collect = _collector(message.DESCRIPTOR, True)
        collect(message, found)
    return found


Collect = Callable[[Any, list[Payload]], None]
_COLLECTORS: dict[tuple[str, bool], Collect] = {}


def _collector(descriptor: Any, skip: bool) -> Collect:
    """A function that appends every Payload inside a message of this type to a list, in
    `walk_payloads`' order: the fields of `_plan`, each as its shape says."""
    key = (descriptor.full_name, skip)
    made = _COLLECTORS.get(key)
    if made is not None:
        return made
    steps: list[Collect] = []

    def collect(message: Any, found: list[Payload]) -> None:
        for step in steps:
            step(message, found)

    # Registered before its fields are worked out: a type that holds itself (a failure's
    # cause) finds this one.
    _COLLECTORS[key] = collect
    try:
        for entry in _plan(descriptor, skip):
            if entry.oneof is None:
                steps.append(_step(descriptor, entry, skip))
                continue
            members = {
                name: _step(descriptor, member, skip) for name, member in entry.members.items()
            }
            steps.append(_oneof_step(entry.oneof, members))
    except BaseException:
        # Half made, it would skip fields and leave their payloads sealed: never kept.
        _COLLECTORS.pop(key, None)
        raise
    return collect


def _oneof_step(oneof: str, members: Mapping[str, Collect]) -> Collect:
    def step(message: Any, found: list[Payload]) -> None:
        member = members.get(message.WhichOneof(oneof) or "")
        if member is not None:
            member(message, found)

    return step


def _step(descriptor: Any, entry: _Entry, skip: bool) -> Collect:
    """What one field of `_plan` adds to the list."""
    name, shape = entry.name, entry.shape
    if entry.payload:
        if shape == _SINGLE:

            def single_payload(message: Any, found: list[Payload]) -> None:
                if message.HasField(name):
                    found.append(getattr(message, name))

            return single_payload
        if shape == _MAP:
            return lambda message, found: found.extend(getattr(message, name).values())
        return lambda message, found: found.extend(getattr(message, name))
    inner = _collector(_target(descriptor.fields_by_name[name]), skip)
    if shape == _SINGLE:

        def single(message: Any, found: list[Payload]) -> None:
            if message.HasField(name):
                inner(getattr(message, name), found)

        return single

    def each(message: Any, found: list[Payload]) -> None:
        items = getattr(message, name)
        for item in items.values() if shape == _MAP else items:
            inner(item, found)

    return each


# -- perf (issue 9): which fields of a message type can hold a payload, worked out once ---------
# Walking every field of every event (ListFields and a descriptor look-up each) was a fifth of
# `yuqing audit`'s time on a 1,000-line incident.
_PAYLOAD = "temporal.api.common.v1.Payload"
_SEARCH_ATTRIBUTES = "temporal.api.common.v1.SearchAttributes"
_SINGLE, _REPEATED, _MAP = "single", "repeated", "map"


@dataclass(frozen=True)
class _Entry:
    name: str = ""
    shape: str = _SINGLE
    payload: bool = False  # the field holds payloads themselves (no deeper)
    oneof: str | None = None  # a oneof: look at the member set, in `members`
    members: Mapping[str, _Entry] = field(default_factory=dict)


_PLANS: dict[tuple[str, bool], tuple[_Entry, ...]] = {}


def _holds_payload(descriptor: Any, skip: bool, seen: set[str]) -> bool:
    name = descriptor.full_name
    if name == _PAYLOAD:
        return True
    if (skip and name == _SEARCH_ATTRIBUTES) or name in seen:
        return False  # a type being looked at already: its other fields answer for it
    seen.add(name)
    for item in descriptor.fields:
        target = _target(item)
        if target is not None and _holds_payload(target, skip, seen):
            return True
    return False


def _target(item: Any) -> Any:
    """The message type a field leads to (a map's value type), or None."""
    if item.message_type is None:
        return None
    if item.message_type.GetOptions().map_entry:
        return item.message_type.fields_by_name["value"].message_type
    return item.message_type


def _plan(descriptor: Any, skip: bool) -> tuple[_Entry, ...]:
    key = (descriptor.full_name, skip)
    found = _PLANS.get(key)
    if found is not None:
        return found
    plain: list[_Entry] = []
    oneofs: dict[str, dict[str, _Entry]] = {}
    for item in descriptor.fields:
        target = _target(item)
        if target is None or not _holds_payload(target, skip, set()):
            continue
        if item.message_type.GetOptions().map_entry:
            shape = _MAP
        else:
            shape = _REPEATED if item.is_repeated else _SINGLE
        entry = _Entry(item.name, shape, payload=target.full_name == _PAYLOAD)
        oneof = item.containing_oneof
        if oneof is not None and shape == _SINGLE:
            oneofs.setdefault(oneof.name, {})[item.name] = entry
        else:
            plain.append(entry)
    plan = tuple(plain) + tuple(_Entry(oneof=o, members=m) for o, m in oneofs.items())
    _PLANS[key] = plan
    return plan


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
