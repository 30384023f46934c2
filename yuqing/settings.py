"""Settings read from the environment, each with the default a single-machine run wants."""

from __future__ import annotations

import os
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
    # A newer official holiday schedule than the `holidays` package has (SPEC §3).
    calendar_override_path: Path | None = None
    office_hours: str = "08:00-12:00,15:00-18:00"

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
            calendar_override_path=(
                Path(env["YUQING_CALENDAR_OVERRIDE"])
                if env.get("YUQING_CALENDAR_OVERRIDE")
                else None
            ),
            office_hours=env.get("YUQING_OFFICE_HOURS", default.office_hours),
        )
