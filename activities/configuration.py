"""The policy and roster in force, read from their files for each new incident."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from yuqing.effects import Configuration, LoadConfiguration
from yuqing.policy import PolicyError, load_policy
from yuqing.roster import RosterError, load_roster
from yuqing.settings import Settings


class ConfigurationActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    @activity.defn
    async def load_configuration(self, request: LoadConfiguration) -> Configuration:
        try:
            return Configuration(
                policy=load_policy(self._settings.policy_path),
                roster=load_roster(self._settings.roster_path),
            )
        except (PolicyError, RosterError) as err:
            # Someone has to mend the file; retrying meanwhile keeps the incident waiting,
            # visibly, instead of failing it.
            raise ApplicationError(str(err), type="ConfigurationInvalid") from err
