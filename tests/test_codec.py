"""The payload codec and the client factory: AES-GCM with key ids, rotation, pass-through of
payloads we did not encode, failures encoded too, TLS settings from the environment."""

from __future__ import annotations

import base64
import hashlib
import json
import zlib
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.service import TLSConfig

from tests.driver import HISTORIES
from yuqing.client import ConnectionSettingsError, data_converter, tls_options
from yuqing.codec import (
    CIPHER_DEFLATED,
    CIPHER_METADATA,
    ENCODING,
    FLAG_DEFLATED_1,
    FLAG_DEFLATED_2,
    FLAG_JSON,
    KEY_ID,
    PAYLOAD_FORMAT_ENV,
    REMEMBER_AT_MOST,
    REMEMBER_FROM,
    REMEMBERED,
    SEALED,
    EncryptionCodec,
    KeyRing,
    PayloadKeyError,
    decode_in_place,
    dictionary,
    ensure_key_file,
    key_id_of,
    key_tag,
    payload_format,
    rotate_key_file,
    walk_payloads,
)
from yuqing.effects import RecordTrail

PHONE = "13907710000"


async def test_a_payload_is_sealed_under_the_active_key_and_opens_again() -> None:
    ring = KeyRing.generate("k1")
    converter = data_converter(ring)
    (sealed,) = await converter.encode([{"summary": f"来电 {PHONE}"}])
    # No metadata (format 3); the key's tag is in the envelope's header.
    assert not sealed.metadata
    assert sealed.data[0] >> 4 == 3 and sealed.data[1:5] == key_tag("k1")
    codec = converter.payload_codec
    assert isinstance(codec, EncryptionCodec)
    assert codec.key_of(sealed) == "k1" and key_id_of(sealed) == "#" + key_tag("k1").hex()
    assert PHONE.encode() not in sealed.SerializeToString()
    # The original encoding is inside the ciphertext, not beside it.
    assert b"json/plain" not in sealed.SerializeToString()
    assert await converter.decode([sealed]) == [{"summary": f"来电 {PHONE}"}]


async def test_rotation_old_payloads_still_open_new_ones_use_the_new_key(tmp_path: Path) -> None:
    keys = tmp_path / "payload-keys.toml"
    old_ring = ensure_key_file(keys)
    assert oct(keys.stat().st_mode & 0o777) == "0o600"
    (old,) = await data_converter(old_ring).encode(["before the rotation"])

    new_ring = rotate_key_file(keys, "k-next")
    assert new_ring.active == "k-next" and old_ring.active in new_ring.keys
    converter = data_converter(new_ring)
    (new,) = await converter.encode(["after"])
    assert isinstance(converter.payload_codec, EncryptionCodec)
    assert converter.payload_codec.key_of(new) == "k-next"
    assert await converter.decode([old, new]) == ["before the rotation", "after"]

    # A ring without the old key names the key it lacks, by its tag (`payload-key list`).
    with pytest.raises(PayloadKeyError, match=f"tag is {key_tag(old_ring.active).hex()}"):
        await data_converter(KeyRing.generate("k-other")).decode([old])


async def test_a_payload_not_encoded_by_us_passes_through() -> None:
    converter = data_converter(KeyRing.generate())
    plain = Payload(metadata={"encoding": b"json/plain"}, data=b'{"a": 1}')
    assert await converter.decode([plain]) == [{"a": 1}]
    # and is never encrypted twice
    codec = converter.payload_codec
    assert isinstance(codec, EncryptionCodec)
    (once,) = await codec.encode([plain])
    assert (await codec.encode([once]))[0] is once


async def test_a_tampered_payload_is_refused() -> None:
    codec = EncryptionCodec(KeyRing.generate("k1"))
    (sealed,) = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    flipped = bytearray(sealed.data)
    flipped[-1] ^= 1
    sealed.data = bytes(flipped)
    with pytest.raises(PayloadKeyError, match="altered"):
        await codec.decode([sealed])
    # The header (key id, flags) is bound to the ciphertext: relabelling it does not open it.
    ring = KeyRing.generate("k1").rotated("k2")
    codec = EncryptionCodec(ring)
    (other,) = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    assert codec.key_of(other) == "k2"
    other.data = other.data[:1] + key_tag("k1") + other.data[5:]
    with pytest.raises(PayloadKeyError, match=r"'k1'.*altered"):
        await codec.decode([other])
    # A key the ring does not hold is named by its tag.
    other.data = other.data[:1] + key_tag("k9") + other.data[5:]
    with pytest.raises(PayloadKeyError, match=f"tag is {key_tag('k9').hex()}.*does not hold"):
        await codec.decode([other])
    (flagged,) = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    flagged.data = bytes((flagged.data[0] ^ 0x01,)) + flagged.data[1:]
    with pytest.raises(PayloadKeyError, match="altered"):
        await codec.decode([flagged])
    short = Payload(data=flagged.data[:20])
    with pytest.raises(PayloadKeyError, match="cut short"):
        await codec.decode([short])
    # A format this code does not know is named, not guessed at.
    unknown = Payload(metadata={"encoding": SEALED}, data=b"\x40" + flagged.data[1:])
    with pytest.raises(PayloadKeyError, match="not in a format this code reads"):
        await codec.decode([unknown])


async def test_payloads_sealed_in_format_2_still_open() -> None:
    ring = KeyRing.generate("k1")
    inner = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(["x"] * 200).encode())
    [format_2] = await EncryptionCodec(ring, writes=2).encode([inner])
    # As the release before format 3 sealed it: one metadata entry, the key id in the header.
    assert dict(format_2.metadata) == {"encoding": SEALED}
    assert format_2.data[0] >> 4 == 2 and key_id_of(format_2) == "k1"
    [format_3] = await EncryptionCodec(ring).encode([inner])
    assert format_3.ByteSize() <= format_2.ByteSize() - 26  # the metadata entry, at least
    assert await EncryptionCodec(ring).decode([format_2, format_3]) == [inner, inner]
    assert (await EncryptionCodec(ring).encode([format_2]))[0] is format_2  # never sealed twice


def test_a_ring_whose_key_ids_share_a_tag_is_refused() -> None:
    # Two ids of 77,000-odd tried: the envelope could not tell which of them sealed a payload.
    assert key_tag("k16830") == key_tag("k102849")
    first = KeyRing.generate("k16830")
    # Rotating to such an id is refused before any file is written...
    with pytest.raises(PayloadKeyError, match="'k102849' would have the same 4-byte tag"):
        first.rotated("k102849")
    # ...and a ring that holds both anyway (written by hand) is refused when it is loaded.
    ring = KeyRing(
        active="k102849",
        keys={**first.keys, "k102849": bytes(32)},
        source=first.source,
    )
    with pytest.raises(PayloadKeyError, match="'k16830' and 'k102849' have the same 4-byte tag"):
        EncryptionCodec(ring)


async def test_failures_carry_their_message_encrypted() -> None:
    converter = data_converter(KeyRing.generate())
    failure = Failure()
    await converter.encode_failure(ApplicationError(f"no reply to {PHONE}", type="X"), failure)
    assert PHONE.encode() not in failure.SerializeToString()
    assert failure.message == "Encoded failure"
    error = await converter.decode_failure(failure)
    assert PHONE in str(error)


def test_key_rings_from_the_environment(tmp_path: Path) -> None:
    ring = KeyRing.generate("a1")
    env = {"YUQING_PAYLOAD_KEYS": ring.rotated("b2").to_env()}
    loaded = KeyRing.from_environ(env)
    assert loaded.active == "b2" and set(loaded.keys) == {"a1", "b2"}

    with pytest.raises(PayloadKeyError, match="not both"):
        KeyRing.from_environ({**env, "YUQING_PAYLOAD_KEYS_FILE": "x"})
    with pytest.raises(PayloadKeyError, match="no payload encryption keys"):
        KeyRing.from_environ({"YUQING_DATA_DIR": str(tmp_path)})
    with pytest.raises(PayloadKeyError, match="32"):
        KeyRing.from_environ({"YUQING_PAYLOAD_KEYS": f"k={base64.b64encode(b'short').decode()}"})
    bad = tmp_path / "bad.toml"
    bad.write_text(f'active = "x"\n[keys]\ny = "{base64.b64encode(bytes(32)).decode()}"\n')
    with pytest.raises(PayloadKeyError, match="active key 'x' is not among"):
        KeyRing.from_file(bad)
    # The data dir's file, as `./dev serve` writes it, is found without being named.
    made = ensure_key_file(tmp_path / "keys" / "payload-keys.toml")
    assert KeyRing.from_environ({"YUQING_DATA_DIR": str(tmp_path)}).keys == made.keys


def test_tls_settings_from_the_environment(tmp_path: Path) -> None:
    assert tls_options({}) == {}
    assert tls_options({"TEMPORAL_TLS": "true"})["tls"] == TLSConfig()
    ca, cert, key = (tmp_path / n for n in ("ca.pem", "cert.pem", "key.pem"))
    for path in (ca, cert, key):
        path.write_bytes(f"-----{path.stem}-----".encode())
    options = tls_options(
        {
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(ca),
            "TEMPORAL_TLS_CLIENT_CERT_PATH": str(cert),
            "TEMPORAL_TLS_CLIENT_KEY_PATH": str(key),
            "TEMPORAL_TLS_SERVER_NAME": "temporal.bureau.internal",
        }
    )
    assert options["tls"] == TLSConfig(
        server_root_ca_cert=b"-----ca-----",
        client_cert=b"-----cert-----",
        client_private_key=b"-----key-----",
        domain="temporal.bureau.internal",
    )
    with pytest.raises(ConnectionSettingsError, match="both"):
        tls_options({"TEMPORAL_TLS_CLIENT_CERT_PATH": str(cert)})
    with pytest.raises(ConnectionSettingsError, match=r"missing\.pem"):
        tls_options({"TEMPORAL_TLS_SERVER_CA_CERT_PATH": str(tmp_path / "missing.pem")})
    assert tls_options({"TEMPORAL_API_KEY": "secret"}) == {"api_key": "secret", "tls": True}


async def test_a_whole_history_decodes_in_place() -> None:
    """Every payload of a recorded history, sealed and opened again: the history reads the same."""
    name = sorted(HISTORIES.glob("*.json"))[0]
    original = WorkflowHistory.from_json("wf", json.loads(name.read_text()))
    codec = EncryptionCodec(KeyRing.generate())
    sealed = WorkflowHistory.from_json("wf", json.loads(name.read_text()))
    count = 0
    for payload in walk_payloads(sealed.events[0]):
        payload.CopyFrom((await codec.encode([payload]))[0])
        count += 1
    for event in sealed.events[1:]:
        for payload in walk_payloads(event):
            payload.CopyFrom((await codec.encode([payload]))[0])
            count += 1
    assert count > 10
    assert sealed.events != original.events
    for event in sealed.events:
        await decode_in_place(event, codec)
    assert sealed.events == original.events
    # What the audit reads from it, e.g. a record_trail input, reads as before.
    scheduled = [
        e.activity_task_scheduled_event_attributes
        for e in original.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == "record_trail"
    ]
    if scheduled:
        converter = data_converter(KeyRing.generate()).payload_converter
        assert converter.from_payload(scheduled[0].input.payloads[0], RecordTrail).entries


def test_the_payload_key_command(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from yuqing.cli import app

    keys = tmp_path / "payload-keys.toml"
    runner = CliRunner()
    made = runner.invoke(app, ["payload-key", "new", "--file", str(keys)])
    assert made.exit_code == 0 and "active" in made.stdout
    first = KeyRing.from_file(keys).active
    rotated = runner.invoke(app, ["payload-key", "rotate", "--file", str(keys)])
    assert rotated.exit_code == 0
    listed = runner.invoke(app, ["payload-key", "list", "--file", str(keys)])
    assert f"{first}  decrypt only" in listed.stdout
    assert base64.b64encode(KeyRing.from_file(keys).keys[first]).decode() not in listed.output
    again = runner.invoke(app, ["payload-key", "new", "--file", str(keys)])
    assert again.exit_code == 2 and "exists already" in again.output


# -- perf (issue 9): compressed before sealed ---------------------------------------------------


async def test_payloads_are_deflated_with_the_dictionary_and_open_again() -> None:
    codec = EncryptionCodec(KeyRing.generate("k1"))
    trail = {
        "lines": [
            {"seq": i, "message": f"第 {i} 行：批准", "actor": "huang.wei"} for i in range(40)
        ]
    }
    large = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(trail).encode())
    # A single trail line: the dictionary (field names, kinds) shrinks even this one.
    line = {
        "at": "2026-12-01T18:37:18.527845Z",
        "kind": "approval",
        "actor": "zhou.min",
        "role": "publicity_lead",
        "detail": "publicity lead approves: approved draft version 1",
        "signal": "publicity_lead_approval",
        "refused": False,
        "refusal_kind": None,
        "source": None,
        "key_id": "api-dev-1",
    }
    short = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(line).encode())
    tiny = Payload(metadata={"encoding": b"json/plain"}, data=b"1")
    other = Payload(metadata={"encoding": b"binary/null"})
    sealed = await codec.encode([large, short, tiny, other])
    assert sealed[0].ByteSize() < large.ByteSize() / 2
    assert sealed[1].ByteSize() < short.ByteSize() * 0.8
    assert await codec.decode(sealed) == [large, short, tiny, other]


def test_the_deflate_dictionaries_never_change() -> None:
    # Payloads deflated with dictionary 1 or 2 inflate only with these exact bytes.
    digest = hashlib.sha256(dictionary(1)).hexdigest()
    assert digest == "ace792a3389e4c96027fa0fef48965077187df2f32d9b9d59a4178e126ee5b5c"
    digest = hashlib.sha256(dictionary(2)).hexdigest()
    assert digest == "9398c62f110e3424887ddcacfb53618ca7254f9fb87346b2e03a4a51dd730279"


async def test_format_3_deflates_with_dictionary_2_and_format_2_with_dictionary_1() -> None:
    ring = KeyRing.generate("k1")
    detail = "draft v1 waiting at “unit head signs”: due 2026-12-01T23:41+00:00 (recorded for 1"
    data = json.dumps({"detail": detail}).encode()
    line = Payload(metadata={"encoding": b"json/plain"}, data=data)
    [third] = await EncryptionCodec(ring).encode([line])
    [second] = await EncryptionCodec(ring, writes=2).encode([line])
    assert third.data[0] == 0x30 | FLAG_JSON | FLAG_DEFLATED_2
    assert second.data[0] == 0x20 | FLAG_JSON | FLAG_DEFLATED_1
    # The workflow's own English is in dictionary 2: a line of it shrinks further.
    assert len(third.data) - 5 < len(second.data) - 4 - 10
    assert await EncryptionCodec(ring).decode([third, second]) == [line, line]


async def test_a_large_text_sent_again_is_deflated_once_yet_sealed_afresh_each_time() -> None:
    ring = KeyRing.generate("k1")
    codec = EncryptionCodec(ring)
    text = json.dumps({"steps": [f"step {n}: notify the duty officer" for n in range(300)]})
    configuration = Payload(metadata={"encoding": b"json/plain"}, data=text.encode())
    assert REMEMBER_FROM <= len(configuration.data) <= REMEMBER_AT_MOST
    first, again = await codec.encode([configuration, configuration])
    # Each its own nonce, so its own ciphertext; both open to the same payload.
    assert first.data[5:17] != again.data[5:17] and first.data[17:] != again.data[17:]
    assert await codec.decode([first, again]) == [configuration, configuration]
    assert await EncryptionCodec(ring).decode([again]) == [configuration]
    # Deflated as a codec that holds nothing deflates it: the same length, the same flags.
    [fresh] = await EncryptionCodec(ring).encode([configuration])
    assert (len(fresh.data), fresh.data[0]) == (len(again.data), again.data[0])
    assert len(codec._deflated) == 1


async def test_the_codec_holds_at_most_32_texts_of_at_most_64_kib() -> None:
    codec = EncryptionCodec(KeyRing.generate("k1"))

    def text(n: int, size: int) -> Payload:
        body = json.dumps({"n": n, "pad": "x" * size})
        return Payload(metadata={"encoding": b"json/plain"}, data=body.encode())

    # Too small or too large: sealed, never held.
    small, large = text(0, REMEMBER_FROM // 2), text(0, REMEMBER_AT_MOST + 1)
    sealed = await codec.encode([small, large])
    assert len(codec._deflated) == 0
    assert await codec.decode(sealed) == [small, large]
    # Many texts: only the last REMEMBERED are held, and each still opens as itself.
    texts = [text(n, REMEMBER_FROM) for n in range(REMEMBERED + 8)]
    sealed = await codec.encode(texts)
    assert len(codec._deflated) == REMEMBERED
    assert await codec.decode(sealed) == texts
    assert await codec.decode(await codec.encode(texts[:2])) == texts[:2]
    assert len(codec._deflated) == REMEMBERED


async def test_payloads_sealed_in_format_1_still_open() -> None:
    ring = KeyRing.generate("k1")
    aes = AESGCM(ring.keys["k1"])
    inner = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(["x"] * 200).encode())
    nonce = b"\x01" * 12
    # As the codec sealed every payload at first: the key id alone as associated data.
    first = Payload(
        metadata={"encoding": ENCODING, KEY_ID: b"k1", CIPHER_METADATA: b"AES-256-GCM"},
        data=nonce + aes.encrypt(nonce, inner.SerializeToString(), b"k1"),
    )
    # Then deflated (zlib) first, the cipher's name bound too.
    deflated = Payload(
        metadata={"encoding": ENCODING, KEY_ID: b"k1", CIPHER_METADATA: CIPHER_DEFLATED},
        data=nonce
        + aes.encrypt(nonce, zlib.compress(inner.SerializeToString()), b"k1\0" + CIPHER_DEFLATED),
    )
    codec = EncryptionCodec(ring)
    assert await codec.decode([first, deflated]) == [inner, inner]
    assert key_id_of(first) == "k1"
    # Which cipher is bound to the ciphertext: relabelling it does not open the payload.
    deflated.metadata[CIPHER_METADATA] = b"AES-256-GCM"
    with pytest.raises(PayloadKeyError, match="altered"):
        await codec.decode([deflated])
    # Never sealed twice, in either format.
    assert (await codec.encode([first]))[0] is first


async def test_during_an_upgrade_from_format_1_processes_write_format_1_and_read_both() -> None:
    """YUQING_PAYLOAD_FORMAT=1 while processes of a release before format 2 still run: what this
    release writes is what they read (format 1, checked here as they opened it)."""
    ring = KeyRing.generate("k1")
    inner = Payload(metadata={"encoding": b"json/plain"}, data=json.dumps(["x"] * 200).encode())
    [old_style] = await EncryptionCodec(
        ring, writes=payload_format({PAYLOAD_FORMAT_ENV: "1"})
    ).encode([inner])
    assert old_style.metadata["encoding"] == ENCODING
    assert old_style.metadata[KEY_ID] == b"k1"
    cipher = old_style.metadata[CIPHER_METADATA]
    assert cipher == CIPHER_DEFLATED
    # As a format-1 release opens it: AES-GCM, key id and cipher as associated data, then zlib.
    data = old_style.data
    plain = AESGCM(ring.keys["k1"]).decrypt(data[:12], data[12:], b"k1\0" + cipher)
    assert Payload.FromString(zlib.decompress(plain)) == inner
    # This release opens every format, and writes format 3 unless told otherwise.
    [new_style] = await EncryptionCodec(ring, writes=payload_format({})).encode([inner])
    assert not new_style.metadata
    assert await EncryptionCodec(ring).decode([old_style, new_style]) == [inner, inner]
    assert payload_format({PAYLOAD_FORMAT_ENV: "2"}) == 2
    with pytest.raises(ValueError, match="YUQING_PAYLOAD_FORMAT='4'"):
        payload_format({PAYLOAD_FORMAT_ENV: "4"})


async def test_every_data_converter_shares_one_payload_converter_and_reads_models() -> None:
    # The SDK makes a DataConverter per workflow activation: they share one pydantic converter
    # (made once per process), and a model goes through any of them and back, with context too.
    from temporalio.converter import WorkflowSerializationContext

    from yuqing.client import SharedPydanticPayloadConverter
    from yuqing.state import TrailEntry

    ring = KeyRing.generate("k1")
    first, second = data_converter(ring), data_converter(ring)
    made = first.payload_converter_class()
    assert made is second.payload_converter_class() is SharedPydanticPayloadConverter()
    context = WorkflowSerializationContext(namespace="default", workflow_id="incident-t1")
    entry = TrailEntry(at="2026-12-01T08:00:00+08:00", kind="approval", detail="同意", signal="s")
    (sealed,) = await first.with_context(context).encode([entry])
    assert await second.decode([sealed], [TrailEntry]) == [entry]
