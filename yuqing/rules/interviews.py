"""Media interviews (§4.4): "未经领导小组授权，…不得擅自接受记者采访".

An interview is asked for (who, which medium, when, on what), then authorised or refused by the
leading group (as the policy has it decide), and recorded afterwards. One reported as held
without the group's authorisation (never asked for, still waiting, refused, or held before it
was authorised) is a breach of §4.4, recorded with the person who answers for it.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from yuqing.decider import moment, said
from yuqing.models import Decision, InterviewDecision, InterviewHeld, InterviewRequest
from yuqing.outcomes import Notify, Outcome, RefusalKind, Refused
from yuqing.roles import PER_UNIT_ROLES, Role
from yuqing.rules.base import RulesBase
from yuqing.rules.group import GroupRules
from yuqing.state import Breach, InterviewRecord, InterviewStatus

MAX_INTERVIEWS = 10
REQUESTERS = (Role.office, Role.unit, Role.unit_head, Role.publicity_lead)
REPORTERS = (*REQUESTERS, Role.leadership_group)
INTERVIEW_RULE = "§4.4 未经领导小组授权不得擅自接受记者采访 (interview without authorisation)"


class InterviewRules(GroupRules, RulesBase):
    def _decides_interviews(self) -> None:
        self.decides("request_interview", InterviewRequest, self._request_interview)
        self.decides("interview_decision", InterviewDecision, self._interview_decision)
        self.decides("interview_held", InterviewHeld, self._interview_held)

    def interview(self, interview_id: str) -> InterviewRecord | None:
        return next((i for i in self.state.interviews if i.interview_id == interview_id), None)

    def _request_interview(self, request: InterviewRequest, at: datetime) -> Outcome:
        self.require_open()
        role = self.may_send("request_interview", request.requested_by, REQUESTERS)
        interview_id = request.interview_id or self._next_id()
        if self.interview(interview_id) is not None:
            raise Refused(f"interview {interview_id} was already asked for")
        self._room()
        self.state.interviews.append(
            InterviewRecord(
                interview_id=interview_id,
                interviewee=request.interviewee,
                medium=request.medium,
                scheduled_at=request.scheduled_at,
                topic=request.topic,
                requested_by=request.requested_by,
                requested_at=at,
                status=InterviewStatus.requested,
            )
        )
        what = (
            f"interview {interview_id}: {request.interviewee} with {request.medium} at "
            f"{moment(request.scheduled_at)} on {request.topic}"
        )
        self.record(
            at,
            "interview_requested",
            what,
            actor=request.requested_by,
            role=role,
            message=self.plan_said(
                "msg.interview_requested",
                interview=interview_id,
                interviewee=request.interviewee,
                medium=request.medium,
                scheduled_at=request.scheduled_at.isoformat(),
                topic=request.topic,
            ),
        )
        notice = self.group_notice(
            f"interview/{interview_id}/requested",
            "interview_requested",
            f"采访申请 / interview request: {request.medium}",
            f"Asked by {request.requested_by}: {what}. It needs the leading group's authorisation "
            "(interview_decision) before it takes place.",
            f"ask the leading group about interview {interview_id}",
            text=self._text(
                "interview_requested",
                interview=interview_id,
                interviewee_person=request.interviewee,
                medium=request.medium,
                scheduled_at=request.scheduled_at.isoformat(),
                topic=request.topic,
                requester_person=request.requested_by,
            ),
        )
        return Outcome(effects=[notice])

    def _interview_decision(self, decision: InterviewDecision, at: datetime) -> Outcome:
        self.require_open()
        interview = self.interview(decision.interview_id)
        if interview is None:
            raise Refused(f"no interview {decision.interview_id} was asked for")
        if interview.status is not InterviewStatus.requested:
            raise Refused(f"interview {interview.interview_id} is {interview.status}")
        self.may_send("interview_decision", decision.decided_by, (Role.leadership_group,))
        verdict = self.group_vote(
            f"interview-{interview.interview_id}",
            f"interview {interview.interview_id}",
            decision.decided_by,
            decision.decision,
            decision.comment,
            at,
        )
        if verdict is None:
            return Outcome()
        comment = "; ".join(c for c in (verdict.comment or decision.comment, verdict.tally) if c)
        interview.status = (
            InterviewStatus.authorised
            if verdict.decision is Decision.approve
            else InterviewStatus.refused
        )
        interview.decided_by = verdict.decided_by
        interview.decided_at = at
        interview.decision_comment = comment
        why = f" ({comment})" if comment else ""
        self.record(
            at,
            f"interview_{interview.status}",
            f"interview {interview.interview_id} {interview.status}{why}",
            actor=verdict.decided_by,
            role=Role.leadership_group,
            message=self.plan_said(
                f"msg.interview_{interview.status}" + ("_why" if comment else ""),
                interview=interview.interview_id,
                comment=comment,
            ),
        )
        people = (interview.requested_by,) if interview.requested_by else ()
        notice = Notify(
            key=f"interview/{interview.interview_id}/decided",
            kind=f"interview_{interview.status}",
            subject=self.subject(f"采访 {interview.interview_id}: {interview.status}"),
            body=f"The leading group {interview.status} interview {interview.interview_id} "
            f"({interview.interviewee} with {interview.medium}){why}.",
            roles=[Role.office],
            summary=f"tell the Office interview {interview.interview_id} is {interview.status}",
            people=people,
            text=self._text(
                f"interview_{interview.status}",
                interview=interview.interview_id,
                interviewee_person=interview.interviewee,
                medium=interview.medium,
                comment=comment or None,
            ),
        )
        return Outcome(effects=[notice])

    def _interview_held(self, held: InterviewHeld, at: datetime) -> Outcome:
        self.require_open()
        role = self.may_send("interview_held", held.reported_by, REPORTERS)
        if held.held_at > at:
            raise Refused(f"held_at {moment(held.held_at)} is in the future")
        if held.interview_id is not None:
            interview = self.interview(held.interview_id)
            if interview is None:
                raise Refused(f"no interview {held.interview_id} was asked for")
            if interview.status in (InterviewStatus.held, InterviewStatus.held_unauthorised):
                raise Refused(
                    f"interview {interview.interview_id} was already recorded as held at "
                    f"{moment(interview.held_at)}"
                )
        else:
            self._room()
            assert held.interviewee is not None and held.medium is not None
            interview = InterviewRecord(
                interview_id=self._next_id(),
                interviewee=held.interviewee,
                medium=held.medium,
                scheduled_at=None,
                topic="",
                requested_by=None,
                requested_at=None,
                status=InterviewStatus.requested,
            )
            self.state.interviews.append(interview)
        authorised = (
            interview.status is InterviewStatus.authorised
            and interview.decided_at is not None
            and held.held_at >= interview.decided_at
        )
        without = self._without(interview, held)
        interview.held_at = held.held_at
        interview.held_summary = held.summary
        interview.reported_by = held.reported_by
        what = (
            f"interview {interview.interview_id}: {interview.interviewee} with "
            f"{interview.medium} at {moment(held.held_at)}: {held.summary}"
        )
        held_said: dict[str, Any] = dict(
            interview=interview.interview_id,
            interviewee=interview.interviewee,
            medium=interview.medium,
            held_at=held.held_at.isoformat(),
            summary=held.summary,
        )
        if authorised:
            interview.status = InterviewStatus.held
            message = self.plan_said("msg.interview_held", **held_said)
            self.record(
                at, "interview_held", what, actor=held.reported_by, role=role, message=message
            )
            return Outcome()
        without_said = self._without_said(interview, held)
        interview.status = InterviewStatus.held_unauthorised
        message = self.plan_said("msg.interview_held_without", **held_said, without=without_said)
        self.record(
            at,
            "interview_held",
            f"{what} ({without})",
            actor=held.reported_by,
            role=role,
            message=message,
        )
        person = held.responsible_id or interview.interviewee
        unit = self._unit_of(person)
        self.state.breaches.append(
            Breach(
                rule=INTERVIEW_RULE, person=person, unit=unit, at=at, detail=f"{what}; {without}"
            )
        )
        self.record(
            at,
            "breach",
            f"{INTERVIEW_RULE}: {person}{f' ({unit})' if unit else ''} answers for interview "
            f"{interview.interview_id} with {interview.medium} at {moment(held.held_at)}: "
            f"{without}",
            message=self.plan_said(
                "msg.interview_breach",
                rule=INTERVIEW_RULE,
                person=person,
                unit=unit,
                interview=interview.interview_id,
                medium=interview.medium,
                held_at=held.held_at.isoformat(),
                without=without_said,
            ),
        )
        notice = Notify(
            key=f"interview/{interview.interview_id}/breach",
            kind="breach",
            subject=self.subject(f"违反§4.4: 未经授权接受采访 ({interview.medium})"),
            body=f"{person} answers for an interview held without the leading group's "
            f"authorisation: {what}; {without}.",
            roles=[Role.office, Role.publicity_lead, Role.leadership_group],
            summary=f"report the unauthorised interview {interview.interview_id}",
            text=self._text(
                "breach",
                interview=interview.interview_id,
                medium=interview.medium,
                breach_person=person,
                held_at=held.held_at.isoformat(),
            ),
        )
        return Outcome(effects=[notice])

    # -- helpers -----------------------------------------------------------------------------------

    def _without(self, interview: InterviewRecord, held: InterviewHeld) -> str:
        if interview.requested_by is None:
            return "never asked for"
        if interview.status is InterviewStatus.requested:
            return "held while its request still awaited the leading group"
        if interview.status is InterviewStatus.refused:
            return f"the leading group refused it ({interview.decided_by})"
        authorised = moment(interview.decided_at)
        return f"held at {moment(held.held_at)}, before it was authorised at {authorised}"

    def _without_said(self, interview: InterviewRecord, held: InterviewHeld) -> dict[str, Any]:
        """`_without` as a message."""
        if interview.requested_by is None:
            return said("msg.without.never_asked")
        if interview.status is InterviewStatus.requested:
            return said("msg.without.awaiting")
        if interview.status is InterviewStatus.refused:
            return said("msg.without.refused", person=interview.decided_by)
        return said(
            "msg.without.early",
            held_at=held.held_at.isoformat(),
            decided_at=interview.decided_at.isoformat() if interview.decided_at else None,
        )

    def _unit_of(self, person_id: str) -> str | None:
        person = self.roster.person(person_id)
        if person is None:
            return None
        return next((g.unit for g in person.roles if g.role in PER_UNIT_ROLES and g.unit), None)

    def _next_id(self) -> str:
        taken = {i.interview_id for i in self.state.interviews}
        n = len(self.state.interviews) + 1
        while f"i{n}" in taken:
            n += 1
        return f"i{n}"

    def _room(self) -> None:
        if len(self.state.interviews) >= MAX_INTERVIEWS:
            raise Refused(
                f"an incident records at most {MAX_INTERVIEWS} interviews", RefusalKind.conflict
            )
