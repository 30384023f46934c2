"""The rest of the plan (issue 12), as mixins of `yuqing.decisions.Incident`.

- `response`: whether to respond (§4.3), the waiver's approval, the duty coming back;
- `interviews`: media interviews and their authorisation (§4.4);
- `regrading`: the leading group's downgrade, and the chain following the grade;
- `clocks`: each approval step's own clock, and restored statement deadlines (§5.2, §5.4);
- `group`: the leading group's members per incident and how it decides (§3, §5.1);
- `contacts`: contacts with, and notices to, outside departments (§4.4);
- drills (§5.3): every line and notice of a drill incident marked 演练.

After every accepted decision `after_decision` keeps what depends on the whole state true: the
approvals that no longer apply to a changed grade, the statement duty, the step clocks.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from yuqing.models import Grade
from yuqing.outcomes import Effect, Outcome
from yuqing.rules.base import AUDIT_LINES, PLAN_FEATURES, PLAN_RULES, RulesBase
from yuqing.rules.clocks import ClockRules
from yuqing.rules.contacts import ContactRules
from yuqing.rules.drill import DRILL_MARK, DrillMarking
from yuqing.rules.group import GroupRules
from yuqing.rules.interviews import InterviewRules
from yuqing.rules.regrading import RegradeRules
from yuqing.rules.response import ResponseRules
from yuqing.state import DraftStatus, IncidentState, InterviewStatus, ResponseStatus, Stage

__all__ = [
    "AUDIT_LINES",
    "CARRIED_FEATURES",
    "DRILL_MARK",
    "PLAN_FEATURES",
    "PLAN_RULES",
    "PlanRules",
]

# The name under which `carried()` passes the features to the incident's next run.
CARRIED_FEATURES = "plan_features"


class PlanRules(
    ResponseRules,
    InterviewRules,
    RegradeRules,
    ContactRules,
    ClockRules,
    GroupRules,
    RulesBase,
    DrillMarking[IncidentState],
):
    def init_plan_rules(self, features: Iterable[str]) -> None:
        """Turn on the rules whose patch ids are in `features` (see `PLAN_FEATURES`)."""
        self.features = frozenset(features)
        if not self.rules_on:
            return
        self._decides_group()
        self._decides_response()
        self._decides_interviews()
        self._decides_regrading()
        self._decides_contacts()
        if self.state.drill is not None:
            self.mark_drill()

    def carried(self) -> dict[str, Any]:
        """Beside the decider's own: the later rules this incident runs under. Everything else
        the rules decide by is in the state (response, interviews, votes, clocks being planned
        in `planning`, whose PlanClock effects the workflow carries as effects under way)."""
        return {**super().carried(), CARRIED_FEATURES: sorted(self.features)}

    def apply(
        self,
        signal: str,
        raw: Any,
        at: datetime,
        problem: str | None = None,
        *,
        internal: bool = False,
    ) -> Outcome:
        grade = self.state.grade
        outcome = super().apply(signal, raw, at, problem, internal=internal)
        if outcome.refusal is None and self.rules_on:
            outcome.effects.extend(self.after_decision(grade, at))
        return outcome

    def after_decision(self, grade_before: Grade | None, at: datetime) -> list[Effect]:
        effects: list[Effect] = []
        if grade_before is not None and self.state.grade != grade_before:
            effects += self.follow_grade(at)
        effects += self.duty_returns(at)
        self._moot_matters()
        effects += self.reconcile_clocks(at)
        return effects

    # -- matters the group no longer needs to decide -----------------------------------------------

    def _moot_matters(self) -> None:
        state = self.state
        for matter in self._pending_matters():
            if matter.startswith("draft-"):
                draft = state.current_draft
                live = (
                    draft is not None
                    and matter == f"draft-{draft.version}"
                    and draft.status is DraftStatus.in_review
                    and state.stage is Stage.approving
                )
            elif matter.startswith("interview-"):
                interview = self.interview(matter.removeprefix("interview-"))
                live = interview is not None and interview.status is InterviewStatus.requested
            elif matter == "no-response":
                live = (
                    state.response is not None
                    and state.response.status is ResponseStatus.awaiting_waiver
                )
            elif matter.startswith("downgrade-"):
                live = state.grade is Grade.major
            else:
                live = True
            if not live:
                state.group_decided.append(matter)
