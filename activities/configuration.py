"""The policy, roster, authorization and keys in force, read from their files for each new
incident (and the keys again when a decision names one the incident has not seen).

Each policy and roster an incident begins under is kept in PostgreSQL by the SHA-256 of its
JSON (`configuration_snapshots`), and the incident records those digests. Activities and post
workflows are then handed a digest rather than the whole text; they read it here, once per
process (the snapshots never change).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import asyncpg
from pydantic import BaseModel
from temporalio import activity
from temporalio.exceptions import ApplicationError

from yuqing.authorization import AuthorizationError, load_authorization
from yuqing.config_cache import digest_of, file_key, parsed, recent
from yuqing.effects import Configuration, LoadConfiguration, LoadKeys, LoadSnapshot
from yuqing.policy import Policy, PolicyError, load_policy
from yuqing.roster import Roster, RosterError, load_roster
from yuqing.settings import Settings
from yuqing.signing import Keyring, KeysError, load_keyring
from yuqing.working_time import CalendarError, OfficeHours, load_calendar


def digest(model: BaseModel) -> str:
    return hashlib.sha256(model.model_dump_json().encode("utf-8")).hexdigest()


class ConfigurationSnapshots:
    """Policies and rosters by digest: this process's cache in front of PostgreSQL."""

    def __init__(self, pool: asyncpg.Pool | None) -> None:
        self._pool = pool
        self._policies: dict[str, Policy] = {}
        self._rosters: dict[str, Roster] = {}

    async def keep(self, policy: Policy, roster: Roster) -> tuple[str, str]:
        policy_sha, roster_sha = digest_of(policy, digest), digest_of(roster, digest)
        if policy_sha not in self._policies:
            await self._store(policy_sha, "policy", policy.version, policy)
            self._policies[policy_sha] = policy
        if roster_sha not in self._rosters:
            await self._store(roster_sha, "roster", roster.version, roster)
            self._rosters[roster_sha] = roster
        return policy_sha, roster_sha

    async def _store(self, sha256: str, kind: str, version: str, model: BaseModel) -> None:
        if self._pool is None:
            return
        await self._pool.execute(
            "INSERT INTO configuration_snapshots (sha256, kind, version, body)"
            " VALUES ($1, $2, $3, $4::jsonb) ON CONFLICT (sha256) DO NOTHING",
            sha256,
            kind,
            version,
            model.model_dump_json(),
        )

    async def policy(self, sha256: str) -> Policy:
        if sha256 not in self._policies:
            self._policies[sha256] = Policy.model_validate(await self._body("policy", sha256))
        return self._policies[sha256]

    async def roster(self, sha256: str) -> Roster:
        if sha256 not in self._rosters:
            self._rosters[sha256] = Roster.model_validate(await self._body("roster", sha256))
        return self._rosters[sha256]

    async def _body(self, kind: str, sha256: str) -> Any:
        row = None
        if self._pool is not None:
            row = await self._pool.fetchrow(
                "SELECT body FROM configuration_snapshots WHERE sha256 = $1 AND kind = $2",
                sha256,
                kind,
            )
        if row is None:
            # Nobody can mend this by retrying: the incident names a snapshot never kept.
            raise ApplicationError(
                f"no {kind} snapshot {sha256} is kept", type="UnknownSnapshot", non_retryable=True
            )
        return json.loads(row["body"])


class ConfigurationActivities:
    def __init__(self, settings: Settings, snapshots: ConfigurationSnapshots | None = None) -> None:
        self._settings = settings
        self._snapshots = snapshots or ConfigurationSnapshots(None)

    @activity.defn
    async def load_configuration(self, request: LoadConfiguration) -> Configuration:
        try:
            # perf: each file parsed once per version (yuqing.config_cache), not per incident.
            policy = parsed(load_policy, self._settings.policy_path)
            if request.drill_speed is not None:
                policy = policy.scaled(request.drill_speed)
            roster = parsed(load_roster, self._settings.roster_path)
            authorization = parsed(load_authorization, self._settings.authorization_path)
            if request.for_workflow:
                authorization = authorization.model_copy(update={"routes": {}})
            keys = self._keys()
            calendar_version = self._calendar_version()
        except (PolicyError, RosterError, AuthorizationError, KeysError, CalendarError) as err:
            # Someone has to mend the file; retrying meanwhile keeps the incident waiting,
            # visibly, instead of failing it.
            raise ApplicationError(str(err), type="ConfigurationInvalid") from err
        policy_sha, roster_sha = await self._snapshots.keep(policy, roster)
        return Configuration(
            policy=policy,
            roster=roster,
            authorization=authorization,
            keys=keys,
            policy_sha256=policy_sha,
            roster_sha256=roster_sha,
            continue_after_decisions=self._settings.continue_after_decisions,
            calendar_version=calendar_version,
        )

    @activity.defn
    async def load_snapshot(self, request: LoadSnapshot) -> Configuration:
        """The policy and roster an incident began under, by their digests (for its posts)."""
        return Configuration(
            policy=await self._snapshots.policy(request.policy_sha256),
            roster=await self._snapshots.roster(request.roster_sha256),
            policy_sha256=request.policy_sha256,
            roster_sha256=request.roster_sha256,
        )

    @activity.defn
    async def load_keys(self, request: LoadKeys) -> Keyring:
        try:
            return self._keys()
        except KeysError as err:
            raise ApplicationError(str(err), type="ConfigurationInvalid") from err

    def _keys(self) -> Keyring:
        if self._settings.keys_path is None:
            # Without keys no decision could be proven: better a waiting incident than one
            # that takes anybody's word.
            raise KeysError("YUQING_KEYS is not set: decisions are checked against its keys")
        return parsed(load_keyring, self._settings.keys_path)

    def _calendar_version(self) -> str:
        # perf: the calendar (the holidays library's years) built at most once a minute.
        settings = self._settings
        override = settings.calendar_override_path
        key = ("calendar", str(override), file_key(override), settings.office_hours)
        return recent(key, self._built_calendar_version)

    def _built_calendar_version(self) -> str:
        calendar = load_calendar(
            self._settings.calendar_override_path,
            OfficeHours.parse(self._settings.office_hours),
            provisional=True,
        )
        return calendar.version
