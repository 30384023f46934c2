"""An incident decided without a server, for the rules of issue 12, and the test rosters."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from yuqing.authorization import load_authorization
from yuqing.decisions import Incident
from yuqing.models import Grade, IntakeChannel, Sensitivity
from yuqing.outcomes import Effect, Outcome, PlanClock
from yuqing.policy import GroupRule, Policy, load_policy
from yuqing.roles import Role
from yuqing.roster import Person, RoleGrant, Roster, load_roster
from yuqing.rules import PLAN_FEATURES
from yuqing.settings import Settings
from yuqing.state import Deadline, IncidentState

T0 = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)  # Monday 09:00 in Shanghai
POLICY = load_policy(Settings().policy_path)
ROSTER = load_roster(Settings().roster_path)
AUTHORIZATION = load_authorization(Settings().authorization_path)

# Three members of the leading group besides its head: the deputy (the publicity lead, §3) and
# two unit heads, as the plan has it ("小组成员由各科室、分局…主要领导组成").
MEMBERS = ("tang.guo", "zhou.min", "liu.yang", "qin.fang")


def group_roster() -> Roster:
    people = []
    for person in ROSTER.people:
        if person.id in ("zhou.min", "liu.yang"):
            grants = [*person.roles, RoleGrant(role=Role.leadership_group)]
            person = person.model_copy(update={"roles": grants})
        people.append(person)
    people.append(
        Person(
            id="qin.fang",
            name="覃芳 (12315中心主任)",
            email="qin.fang@aic.example",
            roles=[RoleGrant(role=Role.leadership_group)],
        )
    )
    return ROSTER.model_copy(update={"people": people, "version": "test-group"})


def group_policy(decides: str, quorum: int | None = None, grade: Grade = Grade.major) -> Policy:
    rules = dict(POLICY.leading_group)
    rules[grade] = GroupRule(decides=decides, quorum=quorum)  # type: ignore[arg-type]
    return POLICY.model_copy(update={"leading_group": rules})


def deadline(key: str, hours: float, start: datetime = T0) -> Deadline:
    rule = POLICY.deadlines[key]  # type: ignore[index]
    return Deadline(
        key=key,
        title=rule.title,
        clock="calendar_hours",
        starts_at=start,
        due_at=start + timedelta(hours=hours),
        reminders_at=[],
        remind=rule.remind,
        escalate_to=rule.escalate_to,
        responsible_unit="xixiangtang-branch",
        responsible_person="huang.wei",
        policy_version=POLICY.version,
    )


def clock(plan: PlanClock) -> Deadline:
    """What the planning activity answers for a PlanClock."""
    return Deadline(
        key=plan.key,
        title=plan.title,
        clock="calendar_hours",
        starts_at=plan.starts_at,
        due_at=plan.starts_at + timedelta(hours=plan.hours),
        reminders_at=[plan.starts_at + timedelta(hours=h) for h in plan.remind_after or ()],
        remind=list(plan.remind),
        escalate_to=list(plan.escalate_to),
        responsible_unit=plan.responsible_unit,
        responsible_person=plan.responsible_person,
        policy_version=POLICY.version,
    )


def incident_state(**fields: Any) -> IncidentState:
    """The state of a new incident (the supermarket story of demo/), `fields` set over it."""
    return IncidentState(
        **{
            "incident_id": "x",
            "workflow_id": "incident-x",
            "title": "网传西乡塘某超市销售过期食品",
            "channel": IntakeChannel.weibo,
            "unit": "xixiangtang-branch",
            "reporter_id": "chen.jing",
            "summary": "",
            "source_url": None,
            "sensitivity": Sensitivity.important,
            "discovered_at": T0,
            **fields,
        }
    )


class Story:
    """One incident, decided signal by signal at a clock the test moves."""

    def __init__(
        self,
        policy: Policy = POLICY,
        roster: Roster = ROSTER,
        features: tuple[str, ...] = PLAN_FEATURES,
        **fields: Any,
    ) -> None:
        state = incident_state(
            policy_version=policy.version,
            roster_version=roster.version,
            calendar_version="holidays-test",
            **fields,
        )
        self.incident = Incident(state, policy, roster, features, authorization=AUTHORIZATION)
        self.incident.record_discovery()
        self.incident.record_deadlines(
            [deadline("report_important", 4), deadline("publish_statement", 24)], T0
        )
        self.now = T0
        self.effects: list[Effect] = []

    @property
    def state(self) -> IncidentState:
        return self.incident.state

    def later(self, minutes: float) -> Story:
        self.now += timedelta(minutes=minutes)
        return self

    def send(self, signal: str, payload: dict[str, Any]) -> Outcome:
        outcome = self.incident.apply(signal, payload, self.now)
        self.effects.extend(outcome.effects)
        self._plan_clocks(outcome.effects)
        return outcome

    def ok(self, signal: str, payload: dict[str, Any]) -> Outcome:
        outcome = self.send(signal, payload)
        assert outcome.refusal is None, f"{signal} refused: {outcome.refusal}"
        return outcome

    def no(self, signal: str, payload: dict[str, Any]) -> str:
        outcome = self.send(signal, payload)
        assert outcome.refusal is not None, f"{signal} was accepted"
        return str(outcome.refusal)

    def _plan_clocks(self, effects: list[Effect]) -> None:
        # The activity answers at once, as the workflow would have it answer.
        for effect in effects:
            if isinstance(effect, PlanClock):
                more = self.incident.clock_planned(clock(effect), self.now)
                self.effects.extend(more)
                self._plan_clocks(more)

    def lines(self, kind: str) -> list[str]:
        return [e.detail for e in self.state.trail if e.kind == kind]

    def reported_and_assessed(self, **assessment: Any) -> Story:
        self.ok("submit_report", UPWARD_REPORT)
        self.ok("submit_assessment", {"assessor_id": "li.ming", **assessment})
        return self


UPWARD_REPORT = {
    "reporter_id": "li.ming",
    "medium": "新浪微博",
    "facts": {
        "time": "2026-11-28 09:10",
        "place": "西乡塘区某超市",
        "units_involved": ["西乡塘分局"],
        "course": "网民发帖称超市销售过期牛奶",
        "outcome": "分局执法人员已到场核查",
    },
    "comment_tendency": "负面",
}


def approval(who: str, version: int = 1, decision: str = "approve", comment: str = "") -> dict:
    return {"approver_id": who, "decision": decision, "draft_version": version, "comment": comment}
