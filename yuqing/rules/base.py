"""What the plan's further rules share: the incident they decide over, and its switches.

Each rule is a mixin of `yuqing.decisions.Incident`, pure like it (no I/O, no clock). The
workflow turns a rule on only behind `workflow.patched` (its id is in `features`), so an
incident that began before the rule existed is decided, on replay and afterwards, as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from yuqing.decider import Decider, said
from yuqing.grading import fired_criteria
from yuqing.models import Grade
from yuqing.outcomes import Refused
from yuqing.policy import Policy
from yuqing.roles import Role
from yuqing.state import Deadline, DeadlineStatus, Draft, IncidentState, Stage

# Patch ids (workflow.patched): each names a set of behaviour changes that ship together.
AUDIT_LINES = "plan-audit-lines"  # roles on every input's line, calendar version, content hash
PLAN_RULES = "plan-rules"  # respond or not, interviews, downgrade, step clocks, the group …
PLAN_FEATURES = (AUDIT_LINES, PLAN_RULES)

GRADE_ORDER = (Grade.general, Grade.major)
ENDED = (Stage.closed, Stage.reviewed)


def criterion_keys(criteria: list[str]) -> list[str]:
    """`weibo_reposts: 25 reposts (threshold 20)` → `weibo_reposts`."""
    return [criterion.split(":", 1)[0] for criterion in criteria]


class RulesBase(Decider[IncidentState]):
    """The parts of `Incident` the rules use; `Incident` defines them."""

    policy: Policy
    features: frozenset[str]
    # Methods of `Incident` the rules call, declared by type so the rules type-check alone.
    _stage: Callable[[Stage, datetime], None]
    _draft: Callable[[int], Draft]
    # console (i18n): the notice of a kind as data (yuqing.i18n.notices).
    _text: Callable[..., dict[str, Any] | None]

    # -- shared helpers ------------------------------------------------------------------------

    def plan_said(self, key: str, **params: Any) -> dict[str, Any] | None:
        """A plan line's message (`said`), or none for a workflow older than that."""
        return said(key, **params) if self.plan_messages else None

    @property
    def rules_on(self) -> bool:
        return PLAN_RULES in self.features

    def may_send(self, signal: str, person_id: str, roles: tuple[Role, ...]) -> Role:
        """The role in which `person_id` sends `signal`: as the authorization file says
        (config/authorization.toml), or, without an entry for it, one of `roles`."""
        if self.checks(signal):
            return self.authorized(signal, person_id, self.state.grade)
        return self.require_any(person_id, roles)

    def acting_role(self, person_id: str) -> Role | None:
        """The role a sender acts in where the decision asks for none in particular."""
        return self.roster.role_of(person_id, self.unit)

    def criteria_now(self) -> list[str]:
        return fired_criteria(self.policy.grading, self.state.assessment, self.state.metrics)

    def waive(
        self, deadline: Deadline, reason: str, at: datetime, why: dict[str, Any] | None = None
    ) -> None:
        """`why`: the reason as a message (`said`), for readers of either language."""
        if deadline.status is not DeadlineStatus.pending:
            return
        deadline.status = DeadlineStatus.waived
        message = self.plan_said(
            "msg.deadline_waived", deadline=deadline.key, deadline_title=deadline.title, why=why
        )
        self.record(at, "deadline_waived", f"{deadline.title} waived: {reason}", message=message)

    def fresh_key(self, base: str) -> str:
        """`base`, or `base#2`, `#3` … when a deadline of that name was planned before."""
        taken = {d.key for d in self.state.deadlines} | set(self.state.planning)
        if base not in taken:
            return base
        n = 2
        while f"{base}#{n}" in taken:
            n += 1
        return f"{base}#{n}"

    def require_open(self) -> None:
        if self.state.stage in ENDED:
            raise Refused(f"the incident is {self.state.stage}")
