"""Due times of a netizen post's working-time deadlines (SPEC §3), from the working calendar.

The calendar is read afresh for each computation, so an override file with a newly published
schedule counts from the next deadline on; running deadlines move only when a
`calendar_changed` signal asks for a re-plan.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import structlog
from temporalio import activity
from temporalio.exceptions import ApplicationError

from yuqing.effects import PlannedPostDeadline, PlanPostDeadline
from yuqing.settings import Settings
from yuqing.state import Deadline
from yuqing.working_time import CalendarError, OfficeHours, WorkingCalendar, load_calendar

log = structlog.get_logger(__name__)


class PostDeadlineActivities:
    def __init__(self, settings: Settings) -> None:
        self._settings = settings

    def calendar(self) -> WorkingCalendar:
        return load_calendar(
            self._settings.calendar_override_path,
            OfficeHours.parse(self._settings.office_hours),
            provisional=True,
        )

    @activity.defn
    async def plan_post_deadline(self, request: PlanPostDeadline) -> PlannedPostDeadline:
        speed = request.drill_speed
        if speed is None and request.policy is not None:
            speed = request.policy.posts.drill_speed
        if speed is not None:
            return drill_post_deadline(request, speed)
        try:
            calendar = self.calendar()
            if request.working_days is not None:
                due = calendar.working_days_after(request.starts_at, request.working_days)
                clock = "working_days"
            elif request.working_hours is not None:
                due = calendar.add_working_hours(request.starts_at, request.working_hours)
                clock = "working_hours"
            else:
                raise CalendarError("give working_hours or working_days")
            reminders = _reminders(calendar, request, due)
        except CalendarError as err:
            # A calendar that cannot be read needs a person to mend its file; until then the
            # activity keeps retrying, visibly, in the UI.
            raise ApplicationError(str(err), type="CalendarInvalid") from err
        note = None
        if calendar.provisional_years:
            years = ", ".join(str(y) for y in sorted(calendar.provisional_years))
            note = (
                f"provisional: no official schedule for {years}, Monday–Friday counted; the "
                "official due time may be earlier (a weekend made a working day) or later (a "
                "holiday): it is planned again once the schedule is loaded (calendar_changed)"
            )
        deadline = Deadline(
            key=request.key,
            title=request.title,
            clock=clock,
            starts_at=request.starts_at,
            due_at=due,
            reminders_at=reminders,
            remind=request.remind,
            escalate_to=request.escalate_to,
            responsible_unit=request.unit,
            responsible_person=request.responsible_person,
            policy_version=_policy_version(request),
            calendar_version=calendar.version + (";provisional" if note else ""),
        )
        log.info(
            "post deadline planned",
            incident_id=request.incident_id,
            post_id=request.post_id,
            key=request.key,
            due=due.isoformat(),
            provisional=bool(note),
        )
        return PlannedPostDeadline(deadline=deadline, provisional_note=note)


def _policy_version(request: PlanPostDeadline) -> str:
    if request.policy_version is not None:
        return request.policy_version
    if request.policy is not None:
        return request.policy.version
    raise ApplicationError("the plan names no policy version", non_retryable=True)


def _reminders(
    calendar: WorkingCalendar, request: PlanPostDeadline, due: datetime
) -> list[datetime]:
    """The policy's reminder points, counted in working time: half time and 1 h before."""
    reminders = request.reminders or (request.policy.reminders if request.policy else None)
    if reminders is None:
        raise ApplicationError("the plan names no reminders", non_retryable=True)
    total = calendar.working_hours_between(request.starts_at, due)
    points = [total * fraction for fraction in reminders.at_fractions]
    points += [total - timedelta(hours=hours) for hours in reminders.hours_before]
    moments = {calendar.add_working_time(request.starts_at, p) for p in points if p > timedelta(0)}
    return sorted(m for m in moments if request.starts_at < m < due)


def drill_post_deadline(request: PlanPostDeadline, speed: float) -> PlannedPostDeadline:
    """A drill's post clock (§5.3): elapsed time, `speed` times faster; a working hour counts
    as an hour and a working day as a day, so the drill need not wait for office hours."""
    if request.working_days is not None:
        span, clock = timedelta(days=request.working_days), "drill_days"
    else:
        span, clock = timedelta(hours=request.working_hours or 0), "drill_hours"
    start = request.starts_at
    due = start + span / speed
    reminders = request.reminders or (request.policy.reminders if request.policy else None)
    if reminders is None:
        raise ApplicationError("the plan names no reminders", non_retryable=True)
    moments = {start + (due - start) * f for f in reminders.at_fractions}
    moments |= {due - timedelta(hours=h) / speed for h in reminders.hours_before}
    deadline = Deadline(
        key=request.key,
        title=request.title,
        clock=clock,
        starts_at=start,
        due_at=due,
        reminders_at=sorted(m for m in moments if start < m < due),
        remind=request.remind,
        escalate_to=request.escalate_to,
        responsible_unit=request.unit,
        responsible_person=request.responsible_person,
        policy_version=_policy_version(request),
    )
    return PlannedPostDeadline(deadline=deadline)
