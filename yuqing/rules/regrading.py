"""A downgrade by the leading group (SPEC §2.3 reading), and the chain following the grade.

New figures upgrade an incident by themselves; only the leading group lowers its grade, with
its reason. The criteria that held then are overruled: they no longer upgrade it alone, though
a criterion that fires afresh does. Whenever the grade changes, the current draft's approvals
from steps the new chain does not have are voided (with why), and the draft waits at the new
chain's first missing step; a chain already complete under the new grade publishes.
"""

from __future__ import annotations

from datetime import datetime

from yuqing.chain import chain_complete
from yuqing.models import Decision, Downgrade
from yuqing.outcomes import Effect, Outcome, Publish, Refused
from yuqing.roles import Role
from yuqing.rules.base import ENDED, GRADE_ORDER, RulesBase, criterion_keys
from yuqing.rules.group import GroupRules
from yuqing.state import DraftStatus, GradeChange, Stage


class RegradeRules(GroupRules, RulesBase):
    def _decides_regrading(self) -> None:
        self.decides("downgrade", Downgrade, self._downgrade)

    def standing_criteria(self, criteria: list[str]) -> list[str]:
        """The criteria that still upgrade the incident: those the leading group left standing."""
        if not self.rules_on:
            return criteria
        overruled = set(self.state.overruled_criteria)
        return [
            c for k, c in zip(criterion_keys(criteria), criteria, strict=True) if k not in overruled
        ]

    def _downgrade(self, downgrade: Downgrade, at: datetime) -> Outcome:
        state = self.state
        if state.stage in ENDED:
            raise Refused(f"the incident is {state.stage}")
        if state.grade is None:
            raise Refused("the incident is not graded yet: the assessment grades it first")
        if GRADE_ORDER.index(downgrade.to_grade) >= GRADE_ORDER.index(state.grade):
            raise Refused(
                f"{downgrade.to_grade} is not below the incident's grade ({state.grade}); an "
                "upgrade follows the criteria (update_metrics)"
            )
        draft = state.current_draft
        if draft is not None and draft.status is DraftStatus.approved:
            raise Refused(f"draft version {draft.version} is approved and being published")
        self.may_send("downgrade", downgrade.decided_by, (Role.leadership_group,))
        number = 1 + sum(1 for m in state.group_decided if m.startswith("downgrade-"))
        verdict = self.group_vote(
            f"downgrade-{number}-to-{downgrade.to_grade}",
            f"the downgrade to {downgrade.to_grade}",
            downgrade.decided_by,
            downgrade.decision,
            downgrade.reason,
            at,
        )
        if verdict is None:
            return Outcome()
        if verdict.decision is Decision.reject:
            self.record(
                at,
                "downgrade_refused",
                f"the leading group keeps the grade {state.grade}"
                + (f" ({verdict.tally})" if verdict.tally else ""),
                actor=verdict.decided_by,
                role=Role.leadership_group,
                message=self.plan_said(
                    "msg.downgrade_refused_tally" if verdict.tally else "msg.downgrade_refused",
                    grade=state.grade,
                    tally=verdict.tally,
                ),
            )
            return Outcome()
        before = state.grade
        overruled = criterion_keys(self.criteria_now())
        state.overruled_criteria = sorted(set(state.overruled_criteria) | set(overruled))
        state.grade = downgrade.to_grade
        state.grade_criteria = []
        reason = f"downgrade: {downgrade.reason}"
        state.grade_history.append(
            GradeChange(
                grade=downgrade.to_grade, criteria=[], by=verdict.decided_by, reason=reason, at=at
            )
        )
        ruled = f"; criteria overruled: {', '.join(overruled)}" if overruled else ""
        tally = f" ({verdict.tally})" if verdict.tally else ""
        self.record(
            at,
            "downgraded",
            f"{before} → {downgrade.to_grade}: {downgrade.reason}{ruled}{tally}",
            actor=verdict.decided_by,
            role=Role.leadership_group,
            message=self.plan_said(
                "msg.downgraded" + ("_overruled" if overruled else ""),
                from_grade=before,
                to_grade=downgrade.to_grade,
                reason=downgrade.reason,
                criteria=list(overruled),
                tally=verdict.tally or "",
            ),
        )
        return Outcome(effects=self.follow_grade(at))

    def follow_grade(self, at: datetime) -> list[Effect]:
        """The current draft's approvals under the new grade's chain: void those that no
        longer apply; publish if what remains completes the chain."""
        state = self.state
        draft = state.current_draft
        if state.grade is None or draft is None or draft.status is not DraftStatus.in_review:
            return []
        steps = {step.signal for step in self.policy.chain(state.grade)}
        voided = []
        voided_steps: list[str] = []
        for approval in state.approvals:
            if (
                approval.draft_version == draft.version
                and not approval.void
                and approval.signal not in steps
            ):
                approval.void = True
                approval.void_reason = f"the {state.grade} chain has no such step"
                voided.append(f"{approval.signal} by {approval.approver_id}")
                voided_steps.append(approval.signal)
        if voided:
            self.record(
                at,
                "approvals_voided",
                f"draft version {draft.version}: {', '.join(voided)} voided (the incident is "
                f"{state.grade}; the {state.grade} chain has no such step)",
                message=self.plan_said(
                    "msg.approvals_voided",
                    version=draft.version,
                    voided=", ".join(voided_steps),
                    grade=state.grade,
                ),
            )
        if state.stage is not Stage.approving:
            return []
        if not chain_complete(self.policy, state.grade, state.approvals, draft.version):
            return []
        draft.status = DraftStatus.approved
        self.record(
            at,
            "chain_complete",
            f"the {state.grade} chain approved draft version {draft.version}",
            message=self.plan_said("msg.chain_complete", grade=state.grade, version=draft.version),
        )
        return [Publish(draft_version=draft.version)]
