"""Whether to respond, and how far (§4.3 是否需要应对、进行何种程度的应对措施).

The assessment says it. "No response needed" asks, with its reason, for the approval the grade
requires (the policy's `no_response_approvers`: the publicity lead for a general incident, the
leading group for a major one); until then the statement deadline runs. Approved, the deadline
is waived (not breached) and the incident stays under monitoring. If the incident is later
upgraded, or new figures fire a major-incident criterion that did not hold when the waiver was
given, the duty comes back with a fresh clock from that moment: a new statement deadline,
planned by an activity like every other.
"""

from __future__ import annotations

from datetime import datetime

from yuqing.decider import moment, said
from yuqing.models import Assessment, Decision, Grade, NoResponseApproval
from yuqing.outcomes import Effect, Notify, Outcome, PlanClock, Refused
from yuqing.policy import DeadlineKey
from yuqing.roles import Role
from yuqing.rules.base import GRADE_ORDER, RulesBase, criterion_keys
from yuqing.rules.clocks import base_key
from yuqing.rules.group import GroupRules
from yuqing.state import DraftStatus, ResponseDecision, ResponseStatus, Stage

STATEMENT = DeadlineKey.publish_statement


class ResponseRules(GroupRules, RulesBase):
    def _decides_response(self) -> None:
        self.decides("no_response_approval", NoResponseApproval, self._no_response_approval)

    def response_assessed(self, assessment: Assessment, at: datetime) -> list[Effect]:
        """Called by the assessment once it has graded the incident."""
        if not self.rules_on:
            return []
        self.state.response = ResponseDecision(
            needed=assessment.response_needed,
            measures=assessment.response_measures,
            reason=assessment.response_reason,
            decided_by=assessment.assessor_id,
            decided_at=at,
            status=(
                ResponseStatus.respond
                if assessment.response_needed
                else ResponseStatus.awaiting_waiver
            ),
        )
        if assessment.response_needed:
            if assessment.response_measures:
                self.record(
                    at,
                    "response_decided",
                    f"respond: {assessment.response_measures}",
                    actor=assessment.assessor_id,
                    role=Role.office,
                    message=self.plan_said("msg.respond", measures=assessment.response_measures),
                )
            return []
        approver = self._waiver_approver()
        self.record(
            at,
            "response_decided",
            f"no response needed: {assessment.response_reason}; the statement deadline stands "
            f"until the {approver} approves",
            actor=assessment.assessor_id,
            role=Role.office,
            message=self.plan_said(
                "msg.no_response_asked", reason=assessment.response_reason, role=approver
            ),
        )
        return [self._ask_waiver(approver, assessment.response_reason)]

    # -- the approval of "no response needed" ----------------------------------------------------

    def _no_response_approval(self, approval: NoResponseApproval, at: datetime) -> Outcome:
        self.require_open()
        response = self.state.response
        if response is None or response.status is not ResponseStatus.awaiting_waiver:
            status = response.status if response else "no assessment yet"
            raise Refused(f'no "no response needed" awaits approval (response: {status})')
        if self.state.publications:
            raise Refused("the statement is already published")
        draft = self.state.current_draft
        if draft is not None and draft.status is DraftStatus.approved:
            raise Refused(f"draft version {draft.version} is approved and being published")
        approver = self._waiver_approver()
        decision, comment, who = approval.decision, approval.comment, approval.approver_id
        if approver is Role.leadership_group:
            verdict = self.group_vote(
                "no-response",
                '"no response needed"',
                who,
                decision,
                comment,
                at,
            )
            if verdict is None:
                return Outcome()
            decision, who = verdict.decision, verdict.decided_by
            comment = verdict.comment or comment
            if verdict.tally:
                comment = f"{comment}; {verdict.tally}".lstrip("; ")
        else:
            self.require(who, approver)
        response.approved_by = who
        response.approver_role = approver.value
        response.approved_at = at
        response.approval_comment = comment
        why = f" ({comment})" if comment else ""
        if decision is Decision.reject:
            response.status = ResponseStatus.waiver_refused
            self.record(
                at,
                "response_waiver_refused",
                f'"no response needed" refused{why}: the statement is due as planned',
                actor=who,
                role=approver,
                message=self.plan_said(
                    "msg.no_response_refused" + ("_why" if comment else ""), comment=comment
                ),
            )
            notice = Notify(
                key="response/waiver/refused",
                kind="response_waiver_refused",
                subject=self.subject(f"须发布权威信息: {self.state.title}"),
                body=f'The {approver} refused "no response needed"{why}. The statement is due '
                "as planned.",
                roles=[Role.office, Role.unit, Role.unit_head],
                summary="tell the Office and the unit a statement is due after all",
                text=self._text("response_waiver_refused", step=approver, comment=comment or None),
            )
            return Outcome(effects=[notice])
        response.status = ResponseStatus.waived
        response.criteria_when_waived = criterion_keys(self.criteria_now())
        response.grade_when_waived = self.state.grade
        self.record(
            at,
            "response_waived",
            f'"no response needed" approved{why}: {response.reason}',
            actor=who,
            role=approver,
            message=self.plan_said(
                "msg.no_response_approved" + ("_why" if comment else ""),
                comment=comment,
                reason=response.reason,
            ),
        )
        for deadline in self.state.deadlines:
            if base_key(deadline.key) == STATEMENT:
                self.waive(
                    deadline,
                    f"no response needed, approved by {who} ({approver})",
                    at,
                    said("msg.why.no_response", person=who, role=approver),
                )
        self._stage(Stage.monitoring, at)
        return Outcome()

    # -- the duty coming back ----------------------------------------------------------------------

    def duty_returns(self, at: datetime) -> list[Effect]:
        """After each decision: has an upgrade or a new criterion brought the duty back?"""
        response = self.state.response
        if response is None or response.status is not ResponseStatus.waived:
            return []
        if self.state.publications or self.state.stage not in (Stage.monitoring,):
            return []
        grade = self.state.grade
        upgraded = (
            grade is not None
            and response.grade_when_waived is not None
            and GRADE_ORDER.index(grade) > GRADE_ORDER.index(response.grade_when_waived)
        )
        new = [
            key
            for key in criterion_keys(self.criteria_now())
            if key not in response.criteria_when_waived
        ]
        if not upgraded and not new:
            return []
        why = f"upgraded to {grade}" if upgraded else f"new figures: {', '.join(new)}"
        response.status = ResponseStatus.duty_returned
        response.returned_at = at
        response.returned_reason = why
        rule = self.policy.deadlines[STATEMENT]
        original = self.state.deadline(STATEMENT)
        key = self.fresh_key(STATEMENT)
        self.state.planning.append(key)
        self.record(
            at,
            "response_duty_returned",
            f"a statement is due again ({why}): {rule.title} from {moment(at)}",
            message=self.plan_said(
                "msg.duty_returned",
                why=(
                    said("msg.why.upgraded", grade=grade)
                    if upgraded
                    else said("msg.why.new_figures", criteria=new)
                ),
                deadline=STATEMENT,
                deadline_title=rule.title,
                at=at.isoformat(),
            ),
        )
        self._stage(Stage.handling, at)
        plan = PlanClock(
            key=key,
            title=f"{rule.title} (from {moment(at)}: {why})",
            starts_at=at,
            hours=rule.hours,
            remind_after=None,
            remind=tuple(rule.remind),
            escalate_to=tuple(rule.escalate_to),
            responsible_unit=self.state.unit,
            responsible_person=original.responsible_person if original else None,
            summary=f"plan the statement deadline again ({why})",
        )
        notice = Notify(
            key=f"response/{key}/returned",
            kind="response_duty_returned",
            subject=self.subject(f"须发布权威信息: {self.state.title}"),
            body=f'"No response needed" no longer holds ({why}): a statement is due within '
            f"{rule.hours:g} h from {moment(at)}.",
            roles=[Role.office, Role.unit, Role.unit_head, Role.publicity_lead],
            summary="tell the Office and the unit the statement is due again",
            text=self._text(
                "response_duty_returned",
                hours=f"{rule.hours:g}",
                from_at=at.isoformat(),
                reason=why,
            ),
        )
        return [plan, notice]

    # -- helpers -----------------------------------------------------------------------------------

    def _waiver_approver(self) -> Role:
        return self.policy.no_response_approvers[self.state.grade or Grade.general]

    def _ask_waiver(self, approver: Role, reason: str) -> Notify:
        subject = f"待审批: 无需应对 / no response needed: {self.state.title}"
        body = (
            f"The Office finds no response needed: {reason}. The statement deadline is waived "
            f"only with your approval (no_response_approval); until then it runs."
        )
        key = "response/waiver/asked"
        text = self._text("response_waiver_asked", reason=reason, step=approver)
        if approver is Role.leadership_group:
            summary = "ask the leading group to approve no response"
            return self.group_notice(key, "response_waiver_asked", subject, body, summary, text)
        return Notify(
            key=key,
            kind="response_waiver_asked",
            subject=self.subject(subject),
            body=body,
            roles=[approver],
            summary=f"ask the {approver} to approve no response",
            text=text,
        )
