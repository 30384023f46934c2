"""Settings read from the environment, each with the default a single-machine run wants."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from yuqing import DEFAULT_TASK_QUEUE

PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class Settings:
    temporal_address: str = "localhost:7233"
    temporal_namespace: str = "default"
    task_queue: str = DEFAULT_TASK_QUEUE
    database_url: str | None = None
    roster_path: Path = PROJECT_ROOT / "config" / "roster.toml"
    policy_path: Path = PROJECT_ROOT / "policies" / "nanning-2017.toml"
    statement_base_url: str = "http://localhost:8000/statements"
    # (console) Where officials open the console, for the link every notice ends with; and the
    # language of notices (zh, en) for readers whose own the roster does not give.
    console_url: str = "http://localhost:8000/console"
    notice_language: str = "zh"
    # A newer official holiday schedule than the `holidays` package has (SPEC §3).
    calendar_override_path: Path | None = None
    office_hours: str = "08:00-12:00,15:00-18:00"
    # The HTTP API (`api/`): where serve() listens, and where the `yuqing` CLI looks for it.
    api_port: int = 8000
    api_url: str = "http://127.0.0.1:8000"
    # SHA-256 hashes of the API's bearer tokens, each naming a roster person.
    tokens_path: Path = PROJECT_ROOT / "config" / "tokens.toml"
    # Where notices and statements leave the building (SMTP, chat robots, publishing
    # gateways); unset: they are recorded in PostgreSQL only.
    channels_path: Path | None = None
    # The SMTP intake, where e-mails become incident reports; no port: not started.
    smtp_intake_port: int | None = None
    smtp_intake_host: str = "127.0.0.1"
    # Who an e-mail is reported by when its sender is not in the roster, and the unit that
    # handles an incident first reported by e-mail (a roster unit with a unit head).
    email_intake_reporter: str = "office-intake"
    email_intake_unit: str = "xixiangtang-branch"
    # (core) An incident continues as new after deciding this many signals in one run (or
    # sooner, when Temporal suggests it): each run's history stays far under its limits. New
    # incidents take the value in force when they begin; it is kept in their history.
    continue_after_decisions: int = 2000
    # Who may send what (README, "Security"): the authorization file; the public keys that
    # decisions are checked against (required by the worker); the API's own signing key.
    authorization_path: Path = PROJECT_ROOT / "config" / "authorization.toml"
    keys_path: Path | None = None
    signing_key_path: Path | None = None
    signing_key_id: str | None = None
    # E-mail senders: attributed only with a valid DKIM signature of this domain, or when the
    # mail came through one of these relays (addresses); DKIM public keys in a file instead of
    # DNS (a TOML table of "<selector>._domainkey.<domain>" = "<TXT record>").
    email_domain: str | None = None
    email_trusted_relays: tuple[str, ...] = ()
    dkim_keys_path: Path | None = None
    # -- the record (issue 11): payload keys, database roles, the notary ----------------------
    # The payload key file (`yuqing.codec`); unset: YUQING_PAYLOAD_KEYS, or the data dir's.
    payload_keys_file: Path | None = None
    # The database owner's URL, for migrations only; the service itself uses DATABASE_URL, a
    # role that may only append to the audit tables (`yuqing.db.roles`).
    owner_database_url: str | None = None
    # The codec server (`api/routes/codec.py`): the web UI origins that may call it from a
    # browser, and whether a request from this machine with such an Origin needs no token
    # (only `./dev serve` sets it: its UI has no login).
    codec_origins: tuple[str, ...] = ("http://127.0.0.1:8233", "http://localhost:8233")
    codec_trust_local_ui: bool = False
    # How often the worker's sweeper archives the runs that closed (`yuqing.audit.sweeper`):
    # minutes, against a retention of days.
    archive_sweep_seconds: float = 60.0

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None) -> Settings:
        env = os.environ if environ is None else environ
        default = cls()
        return cls(
            temporal_address=env.get("TEMPORAL_ADDRESS", default.temporal_address),
            temporal_namespace=env.get("TEMPORAL_NAMESPACE", default.temporal_namespace),
            task_queue=env.get("YUQING_TASK_QUEUE", default.task_queue),
            database_url=env.get("DATABASE_URL") or None,
            roster_path=Path(env.get("YUQING_ROSTER", str(default.roster_path))),
            policy_path=Path(env.get("YUQING_POLICY", str(default.policy_path))),
            statement_base_url=env.get("YUQING_STATEMENT_BASE_URL", default.statement_base_url),
            console_url=env.get("YUQING_CONSOLE_URL") or default.console_url,
            notice_language=_language(env.get("YUQING_NOTICE_LANGUAGE"), default.notice_language),
            calendar_override_path=(
                Path(env["YUQING_CALENDAR_OVERRIDE"])
                if env.get("YUQING_CALENDAR_OVERRIDE")
                else None
            ),
            office_hours=env.get("YUQING_OFFICE_HOURS", default.office_hours),
            api_port=_port(env.get("YUQING_API_PORT"), default.api_port),
            api_url=env.get("YUQING_API_URL") or default.api_url,
            tokens_path=Path(env.get("YUQING_TOKENS") or default.tokens_path),
            channels_path=Path(env["YUQING_CHANNELS"]) if env.get("YUQING_CHANNELS") else None,
            smtp_intake_port=_optional_port(env, "YUQING_SMTP_INTAKE_PORT"),
            smtp_intake_host=env.get("YUQING_SMTP_INTAKE_HOST") or default.smtp_intake_host,
            email_intake_reporter=(
                env.get("YUQING_EMAIL_REPORTER") or default.email_intake_reporter
            ),
            email_intake_unit=env.get("YUQING_EMAIL_UNIT") or default.email_intake_unit,
            continue_after_decisions=int(
                env.get("YUQING_CONTINUE_AFTER") or default.continue_after_decisions
            ),
            authorization_path=_path(env, "YUQING_AUTHORIZATION") or default.authorization_path,
            keys_path=_path(env, "YUQING_KEYS"),
            signing_key_path=_path(env, "YUQING_SIGNING_KEY"),
            signing_key_id=env.get("YUQING_SIGNING_KEY_ID") or None,
            email_domain=(env.get("YUQING_EMAIL_DOMAIN") or "").strip().lower() or None,
            email_trusted_relays=tuple(
                relay.strip()
                for relay in (env.get("YUQING_EMAIL_TRUSTED_RELAYS") or "").split(",")
                if relay.strip()
            ),
            dkim_keys_path=_path(env, "YUQING_DKIM_KEYS"),
            payload_keys_file=(
                Path(env["YUQING_PAYLOAD_KEYS_FILE"])
                if env.get("YUQING_PAYLOAD_KEYS_FILE")
                else None
            ),
            owner_database_url=env.get("YUQING_DB_OWNER_URL") or None,
            codec_origins=(
                tuple(o.strip() for o in env["YUQING_CODEC_ORIGINS"].split(",") if o.strip())
                if "YUQING_CODEC_ORIGINS" in env
                else default.codec_origins
            ),
            codec_trust_local_ui=env.get("YUQING_CODEC_TRUST_LOCAL_UI") == "1",
            archive_sweep_seconds=float(
                env.get("YUQING_ARCHIVE_SWEEP_SECONDS") or default.archive_sweep_seconds
            ),
        )


def _language(value: str | None, default: str) -> str:
    if not value:
        return default
    if value not in ("zh", "en"):
        raise ValueError(
            f"YUQING_NOTICE_LANGUAGE={value!r} is not a language notices come in (zh, en)"
        )
    return value


def _path(env: Mapping[str, str], name: str) -> Path | None:
    value = env.get(name)
    return Path(value) if value else None


def _port(value: str | None, default: int) -> int:
    if not value:
        return default
    try:
        port = int(value)
    except ValueError:
        port = -1
    if not 0 <= port <= 65535:
        raise ValueError(f"YUQING_API_PORT={value!r} is not a port number (0-65535)")
    return port


def _optional_port(env: Mapping[str, str], name: str) -> int | None:
    value = env.get(name)
    if not value:
        return None
    if not value.isdigit() or not 0 <= int(value) <= 65535:
        raise ValueError(f"{name}={value!r} is not a port number (0-65535)")
    return int(value)
