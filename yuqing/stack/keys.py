"""The embedded stack's own keys, made on its first start under the data directory.

`<data dir>/keys/` holds the API's service key (`api-dev-1.pem`, mode 600) and the keys file
naming its public half (`keys.toml`), to which an operator adds people's keys (`yuqing new-key`).
Nothing here is ever committed; a stack given YUQING_KEYS (and YUQING_SIGNING_KEY) uses those
instead and makes nothing.
"""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import structlog

from yuqing.settings import Settings
from yuqing.signing import key_entry_toml, new_key_pair

log = structlog.get_logger("yuqing.stack")

SERVICE_KEY_ID = "api-dev-1"


def ensure_dev_keys(data_dir: Path, settings: Settings) -> Settings:
    """`settings` with the keys file and the API's key: those configured, else the data
    directory's own, made now if this is the first start."""
    if settings.keys_path is not None:
        return settings
    directory = data_dir / "keys"
    keys_file = directory / "keys.toml"
    private = directory / f"{SERVICE_KEY_ID}.pem"
    if not keys_file.exists():
        directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        private.unlink(missing_ok=True)  # half made by an interrupted first start
        _, entry = new_key_pair(
            directory,
            SERVICE_KEY_ID,
            valid_from=datetime.now(UTC).replace(microsecond=0),
            service="api",
        )
        keys_file.write_text(
            "# The embedded stack's keys (made on its first start). Add people's keys with\n"
            "# `yuqing new-key PERSON --dir ...`; see the README, Security.\n"
            f'version = "dev-{entry.valid_from:%Y%m%d%H%M%S}"\n\n' + key_entry_toml(entry),
            encoding="utf-8",
        )
        log.info("made the stack's signing key", keys=str(keys_file), private_key=str(private))
    if settings.signing_key_path is None:
        settings = dataclasses.replace(
            settings, signing_key_path=private, signing_key_id=SERVICE_KEY_ID
        )
    return dataclasses.replace(settings, keys_path=keys_file)
