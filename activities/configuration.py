"""The policy, roster, authorization and keys in force, read from their files for each new
incident (and the keys again when a decision names one the incident has not seen)."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from yuqing.authorization import AuthorizationError, load_authorization
from yuqing.effects import Configuration, LoadConfiguration, LoadKeys
from yuqing.policy import PolicyError, load_policy
from yuqing.roster import RosterError, load_roster
from yuqing.settings import Settings
from yuqing.signing import Keyring, KeysError, load_keyring
from yuqing.working_time import CalendarError, OfficeHours, load_calendar


class ConfigurationActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn
    async def load_configuration(self, request: LoadConfiguration) -> Configuration:
        try:
            policy = load_policy(self._settings.policy_path)
            if request.drill_speed is not None:
                policy = policy.scaled(request.drill_speed)
            return Configuration(
                policy=policy,
                roster=load_roster(self._settings.roster_path),
                authorization=load_authorization(self._settings.authorization_path),
                keys=self._keys(),
                calendar_version=self._calendar_version(),
            )
        except (PolicyError, RosterError, AuthorizationError, KeysError, CalendarError) as err:
            # Someone has to mend the file; retrying meanwhile keeps the incident waiting,
            # visibly, instead of failing it.
            raise ApplicationError(str(err), type="ConfigurationInvalid") from err

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
        return load_keyring(self._settings.keys_path)

    def _calendar_version(self) -> str:
        calendar = load_calendar(
            self._settings.calendar_override_path,
            OfficeHours.parse(self._settings.office_hours),
            provisional=True,
        )
        return calendar.version
