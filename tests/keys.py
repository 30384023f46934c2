"""The tests' own keys: made afresh for each run, never committed (README, "Security").

One keys file holds the service key the tests (and the API under test) sign with in anyone's
name, a personal key for some officials, and one key already rotated out in the near future
(`ROTATED`), for the test that it stops counting after its end date.
"""

from __future__ import annotations

import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from yuqing.signing import (
    Keyring,
    PublicKey,
    Signer,
    key_entry_toml,
    load_private_key,
    new_key_pair,
)

DIRECTORY = Path(tempfile.mkdtemp(prefix="yuqing-test-keys-"))
KEYS_FILE = DIRECTORY / "keys.toml"
SERVICE_KEY_ID = "test-api-1"
PEOPLE = ("huang.wei", "zhou.min", "tang.guo", "li.ming", "wu.hua", "chen.jing", "liu.yang")
ROTATED = "huang.wei-rotated"
# Real time: the time-skipping servers start at the real clock.
NOW = datetime.now(UTC)
ROTATED_UNTIL = NOW + timedelta(days=2)


def _make() -> tuple[Signer, dict[str, Signer]]:
    entries: list[PublicKey] = []
    since = NOW - timedelta(days=1)
    path, entry = new_key_pair(DIRECTORY, SERVICE_KEY_ID, valid_from=since, service="api")
    entries.append(entry)
    signers = {"service": Signer(SERVICE_KEY_ID, load_private_key(path))}
    for person in PEOPLE:
        key_id = f"{person}-1"
        path, entry = new_key_pair(DIRECTORY, key_id, valid_from=since, holder=person)
        entries.append(entry)
        signers[person] = Signer(key_id, load_private_key(path))
    path, entry = new_key_pair(
        DIRECTORY, ROTATED, valid_from=since, valid_until=ROTATED_UNTIL, holder="huang.wei"
    )
    entries.append(entry)
    signers[ROTATED] = Signer(ROTATED, load_private_key(path))
    body = "".join("\n" + key_entry_toml(e) for e in entries)
    KEYS_FILE.write_text(f'version = "tests"\n{body}', encoding="utf-8")
    return signers.pop("service"), signers


SERVICE, PERSONAL = _make()


def keyring() -> Keyring:
    from yuqing.signing import load_keyring

    return load_keyring(KEYS_FILE)


def signed(workflow_id: str, signal: str, payload: Any, signer: Signer | None = None) -> Any:
    """`payload` signed for `workflow_id` (by the service key unless `signer` says who)."""
    if not isinstance(payload, dict):
        return payload
    return (signer or SERVICE).sign(workflow_id, signal, payload)


def settings_env() -> dict[str, str]:
    """The variables a worker or the API needs to check and make signatures."""
    return {
        "YUQING_KEYS": str(KEYS_FILE),
        "YUQING_SIGNING_KEY": str(DIRECTORY / f"{SERVICE_KEY_ID}.pem"),
        "YUQING_SIGNING_KEY_ID": SERVICE_KEY_ID,
    }
