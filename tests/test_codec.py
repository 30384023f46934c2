"""The payload codec and the client factory: AES-GCM with key ids, rotation, pass-through of
payloads we did not encode, failures encoded too, TLS settings from the environment."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import pytest
from temporalio.api.common.v1 import Payload
from temporalio.api.failure.v1 import Failure
from temporalio.client import WorkflowHistory
from temporalio.exceptions import ApplicationError
from temporalio.service import TLSConfig

from tests.driver import HISTORIES
from yuqing.client import ConnectionSettingsError, data_converter, tls_options
from yuqing.codec import (
    ENCODING,
    KEY_ID,
    EncryptionCodec,
    KeyRing,
    PayloadKeyError,
    decode_in_place,
    ensure_key_file,
    rotate_key_file,
    walk_payloads,
)
from yuqing.effects import RecordTrail

PHONE = "13907710000"


async def test_a_payload_is_sealed_under_the_active_key_and_opens_again() -> None:
    ring = KeyRing.generate("k1")
    converter = data_converter(ring)
    (sealed,) = await converter.encode([{"summary": f"来电 {PHONE}"}])
    assert sealed.metadata["encoding"] == ENCODING
    assert sealed.metadata[KEY_ID] == b"k1"
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
    assert new.metadata[KEY_ID] == b"k-next"
    assert await converter.decode([old, new]) == ["before the rotation", "after"]

    # A ring without the old key names the key it lacks.
    with pytest.raises(PayloadKeyError, match=f"encrypted with key '{old_ring.active}'"):
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
    # The key id is bound to the ciphertext: relabelling it does not open it.
    (other,) = await codec.encode([Payload(metadata={"encoding": b"json/plain"}, data=b"1")])
    other.metadata[KEY_ID] = b"k2"
    with pytest.raises(PayloadKeyError, match="'k2'"):
        await codec.decode([other])


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
