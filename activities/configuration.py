"""The policy and roster in force, read from their files for each new incident."""

from __future__ import annotations

from temporalio import activity
from temporalio.exceptions import ApplicationError

from yuqing.effects import Configuration, LoadConfiguration
from yuqing.policy import PolicyError, load_policy
from yuqing.roster import RosterError, load_roster
from yuqing.settings import Settings
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
                calendar_version=self._calendar_version(),
            )
        except (PolicyError, RosterError, CalendarError) as err:
            # Someone has to mend the file; retrying meanwhile keeps the incident waiting,
            # visibly, instead of failing it.
            raise ApplicationError(str(err), type="ConfigurationInvalid") from err

    def _calendar_version(self) -> str:
        calendar = load_calendar(
            self._settings.calendar_override_path,
            OfficeHours.parse(self._settings.office_hours),
            provisional=True,
        )
        return calendar.version
