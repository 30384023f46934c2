"""Deadlines that start mid-incident: each approval step's own clock, and a statement deadline
that came back (§5.2, §5.4).

A draft waits at one step of its chain at a time. When the policy gives the step a clock, the
draft's arrival there starts it: the approver is reminded after `remind_after_hours`, and the
step is escalated after `escalate_after_hours`, to the roles the policy names. The clock is
an ordinary deadline of the incident (`step.<signal>.v<version>`), so its reminder and its
breach are timers like any other deadline's, it is on the trail, and the compliance report
shows it as the step's own lateness, apart from the unit's 24 hours.

Due times come from an activity (`PlanClock`), never from workflow code; until it answers,
the key waits in `state.planning`, so it is asked for once.
"""

from __future__ import annotations

from datetime import datetime

from yuqing.chain import missing_steps
from yuqing.decider import moment, said
from yuqing.outcomes import Effect, PlanClock
from yuqing.policy import ChainStep
from yuqing.roles import Role
from yuqing.rules.base import RulesBase
from yuqing.state import Deadline, DeadlineStatus, DraftStatus, Stage

STEP_PREFIX = "step."


def step_key(step: ChainStep, version: int) -> str:
    return f"{STEP_PREFIX}{step.signal}.v{version}"


def base_key(key: str) -> str:
    """`step.x.v1#2` → `step.x.v1`: the deadline a re-planned key stands for."""
    return key.split("#", 1)[0]


def step_kind(key: str) -> str:
    """`step.publicity_lead_approval.v3#2` → `step.publicity_lead_approval`: one kind per step,
    whatever the draft version, for summing up lateness across incidents."""
    base = base_key(key)
    if base.startswith(STEP_PREFIX) and ".v" in base:
        return base.rsplit(".v", 1)[0]
    return base


class ClockRules(RulesBase):
    # -- what the planning activity reports back -----------------------------------------------

    def clock_planned(self, deadline: Deadline, at: datetime) -> list[Effect]:
        """A clock's due time, computed; settled at once if what it waited for came meanwhile."""
        if deadline.key in self.state.planning:
            self.state.planning.remove(deadline.key)
        if self.state.deadline(deadline.key) is not None:
            return []
        self.state.deadlines.append(deadline)
        self.record(
            at,
            "deadline_planned",
            f"{deadline.title}: due {moment(deadline.due_at)}",
            message=self.plan_said(
                "msg.deadline_planned",
                deadline=deadline.key,
                deadline_title=deadline.title,
                due=deadline.due_at.isoformat(),
            ),
        )
        base = base_key(deadline.key)
        rule = next((r for k, r in self.policy.deadlines.items() if k == base), None)
        if rule is not None and rule.met_by == "publication":
            # The statement went out while its deadline was being planned.
            out = [p.published_at for p in self.state.publications if p.published_at]
            if out:
                self.meet(deadline.key, min(out))
        return self.reconcile_clocks(at)

    # -- keeping the step clocks true to where the draft is ---------------------------------------

    def waiting_step(self) -> tuple[ChainStep, int] | None:
        """The step the current draft waits at, and its version; None if it waits nowhere."""
        state = self.state
        draft = state.current_draft
        if (
            state.grade is None
            or state.stage is not Stage.approving
            or draft is None
            or draft.status is not DraftStatus.in_review
        ):
            return None
        missing = missing_steps(self.policy, state.grade, state.approvals, draft.version)
        return (missing[0], draft.version) if missing else None

    def reconcile_clocks(self, at: datetime) -> list[Effect]:
        """Settle the step clocks the draft no longer waits on; start the one it now waits on."""
        waiting = self.waiting_step()
        wanted = step_key(*waiting) if waiting else None
        for deadline in list(self.state.deadlines):
            if not deadline.key.startswith(STEP_PREFIX) or deadline.met_at is not None:
                continue
            if deadline.status is DeadlineStatus.waived or base_key(deadline.key) == wanted:
                continue
            self._settle_step(deadline, at)
        if waiting is None:
            return []
        step, version = waiting
        if not step.clocked or wanted is None:
            return []
        # One clock per wait: running, or escalated and still unanswered (a breach is not a
        # fresh start); a new one only once the draft waits there anew.
        if any(
            base_key(d.key) == wanted
            and d.met_at is None
            and d.status in (DeadlineStatus.pending, DeadlineStatus.breached)
            for d in self.state.deadlines
        ) or any(base_key(k) == wanted for k in self.state.planning):
            return []
        key = self.fresh_key(wanted)
        self.state.planning.append(key)
        assert step.escalate_after_hours is not None
        remind = (step.remind_after_hours,) if step.remind_after_hours else ()
        return [
            PlanClock(
                key=key,
                title=f"draft v{version} waiting at “{step.title}”",
                starts_at=at,
                hours=step.escalate_after_hours,
                remind_after=remind,
                remind=(step.role,),
                escalate_to=tuple(step.escalate_to),
                responsible_unit=self._step_unit(step),
                responsible_person=self._step_person(step),
                summary=f"plan the clock of “{step.title}” for draft v{version}",
            )
        ]

    def _settle_step(self, deadline: Deadline, at: datetime) -> None:
        signal, version_text = base_key(deadline.key).removeprefix(STEP_PREFIX).rsplit(".v", 1)
        version = int(version_text)
        acted = next(
            (
                a
                for a in self.state.approvals
                if a.signal == signal and a.draft_version == version and a.at >= deadline.starts_at
            ),
            None,
        )
        if acted is not None:
            self.meet(deadline.key, acted.at)  # late, if its escalation came first
            return
        if deadline.status is not DeadlineStatus.pending:
            return  # escalated and never acted on: it stays missed
        draft = next((d for d in self.state.drafts if d.version == version), None)
        if draft is not None and draft.status is DraftStatus.superseded:
            reason = f"draft version {version} was superseded"
            why = said("msg.why.superseded", version=version)
        elif draft is not None and draft.status is DraftStatus.returned:
            reason = f"draft version {version} was returned"
            why = said("msg.why.returned", version=version)
        elif self.state.stage is not Stage.approving:
            reason = f"the incident is {self.state.stage}"
            why = said("msg.why.stage", stage=self.state.stage)
        else:
            reason = f"the {self.state.grade} chain no longer waits there"
            why = said("msg.why.chain_moved", grade=self.state.grade)
        self.waive(deadline, reason, at, why)

    def _step_unit(self, step: ChainStep) -> str:
        # A step's lateness is its approver's, not the unit's: it is filed under the step's role.
        return step.role.value

    def _step_person(self, step: ChainStep) -> str | None:
        if step.role is Role.leadership_group:
            heads = self.roster.holders(Role.leadership_group_head)
            if heads:
                return heads[0]
        holders = self.roster.holders(step.role, self.unit)
        return holders[0] if holders else None
