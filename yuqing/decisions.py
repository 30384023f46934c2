"""What each signal decides (SPEC §2), as pure functions of the incident state.

The workflow feeds every signal through `Incident.apply`: a refusal comes back with its reason
and nothing changed; an acceptance changes the state, appends to the trail and returns the side
effects (notices, publication) for the workflow to carry out through activities.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from yuqing.chain import approval_refusal, chain_complete
from yuqing.grading import fired_criteria, grade_for
from yuqing.models import (
    SIGNAL_PAYLOADS,
    Approval,
    Assessment,
    CloseIncident,
    Decision,
    DraftSubmission,
    Grade,
    LegalOpinion,
    MetricsUpdate,
    Review,
    UpwardReport,
)
from yuqing.policy import APPROVAL_SIGNALS, Policy
from yuqing.roles import Role
from yuqing.roster import Roster
from yuqing.state import (
    ApprovalRecord,
    Deadline,
    DeadlineStatus,
    Draft,
    DraftStatus,
    FixedEvidence,
    GradeChange,
    IncidentState,
    Notification,
    Publication,
    Stage,
    TrailEntry,
)


@dataclass(frozen=True)
class Notify:
    """A notice to everyone holding `roles` for the incident's unit; `key` is its step."""

    key: str
    kind: str
    subject: str
    body: str
    roles: list[Role]
    summary: str


@dataclass(frozen=True)
class Publish:
    draft_version: int


Effect = Notify | Publish


@dataclass
class Outcome:
    refusal: str | None = None
    effects: list[Effect] = field(default_factory=list)


class Refused(Exception):
    """Raised inside a decision to refuse the signal; the state is left as it was."""


AFTER_PUBLICATION = (Stage.published, Stage.monitoring, Stage.closed, Stage.reviewed)
# Who may send the upward report: the Office, or the responsible unit and its head.
REPORTERS = (Role.office, Role.unit, Role.unit_head)
DRAFTERS = (Role.unit, Role.unit_head)


class Incident:
    """The decisions of one incident over its state, its policy and its roster."""

    def __init__(self, state: IncidentState, policy: Policy, roster: Roster) -> None:
        self.state = state
        self.policy = policy
        self.roster = roster
        # The signal being decided: every trail entry it causes names it.
        self._signal: str | None = None
        decide: dict[str, Callable[[Any, datetime], Outcome]] = {
            "submit_report": self._submit_report,
            "submit_assessment": self._submit_assessment,
            "update_metrics": self._update_metrics,
            "submit_draft": self._submit_draft,
            "legal_opinion": self._legal_opinion,
            "close_incident": self._close_incident,
            "submit_review": self._submit_review,
        }
        for signal in APPROVAL_SIGNALS:
            decide[signal] = self._approval_for(signal)
        self._decide = {name: (SIGNAL_PAYLOADS[name], fn) for name, fn in decide.items()}

    # -- entry point -------------------------------------------------------------------------

    def apply(self, signal: str, raw: Any, at: datetime) -> Outcome:
        if signal not in self._decide:
            return self._refuse(signal, raw, at, f"{signal} is not a signal this incident takes")
        model, decide = self._decide[signal]
        try:
            payload = model.model_validate(raw)
        except ValidationError as err:
            return self._refuse(signal, raw, at, f"malformed {signal}: {describe(err)}")
        snapshot = self.state.model_copy(deep=True)
        self._signal = signal
        try:
            return decide(payload, at)
        except Refused as refusal:
            # A refused signal changes nothing: put back anything a decision began to change.
            self.state = snapshot
            return self._refuse(signal, raw, at, str(refusal))
        finally:
            self._signal = None

    # -- deadlines ---------------------------------------------------------------------------

    def deadline_breached(self, key: str, at: datetime) -> Outcome:
        deadline = self.state.deadline(key)
        if deadline is None or deadline.status is not DeadlineStatus.pending:
            return Outcome()
        deadline.status = DeadlineStatus.breached
        deadline.breached_at = at
        who = deadline.responsible_person or deadline.responsible_unit
        self._record(
            at,
            "deadline_breached",
            f"{deadline.title} missed (due {_t(deadline.due_at)}; "
            f"responsible: {deadline.responsible_unit}, {who})",
        )
        return Outcome(
            effects=[
                Notify(
                    key=f"deadline/{key}/escalation",
                    kind="escalation",
                    subject=self._subject(f"missed: {deadline.title}"),
                    body=f"{self.state.title}: {deadline.title} was due {_t(deadline.due_at)} "
                    f"and is not met. Responsible unit: {deadline.responsible_unit}.",
                    roles=deadline.escalate_to,
                    summary=f"escalate: {deadline.title} missed",
                )
            ]
        )

    def deadline_reminder(self, key: str, index: int) -> Outcome:
        deadline = self.state.deadline(key)
        if deadline is None or deadline.status is not DeadlineStatus.pending:
            return Outcome()
        return Outcome(
            effects=[
                Notify(
                    key=f"deadline/{key}/reminder-{index}",
                    kind="reminder",
                    subject=self._subject(f"due {_t(deadline.due_at)}: {deadline.title}"),
                    body=f"{self.state.title}: {deadline.title} falls due {_t(deadline.due_at)}.",
                    roles=deadline.remind,
                    summary=f"remind: {deadline.title}",
                )
            ]
        )

    def published(self, version: int, publications: list[Publication], at: datetime) -> None:
        self.state.publications.extend(publications)
        self._draft(version).status = DraftStatus.published
        channels = ", ".join(p.channel for p in publications)
        self._record(at, "published", f"draft version {version} published on {channels}")
        self._meet("publication", at)
        self._stage(Stage.published, at)
        self._stage(Stage.monitoring, at)

    # -- what intake and the activities report back ---------------------------------------------

    def record_discovery(self) -> None:
        state = self.state
        self._record(
            state.discovered_at,
            "discovered",
            f"{state.title} (via {state.channel}; sensitivity {state.sensitivity}; "
            f"unit {state.unit}; policy {state.policy_version}; roster {state.roster_version})",
            actor=state.reporter_id,
        )

    def record_evidence(self, items: list[FixedEvidence], at: datetime) -> None:
        self.state.evidence.extend(items)
        for item in items:
            self._record(
                at,
                "evidence",
                f"{item.evidence_id} {item.kind} captured {_t(item.captured_at)} "
                f"sha256 {item.sha256}",
            )

    def record_deadlines(self, deadlines: list[Deadline], at: datetime) -> None:
        self.state.deadlines = deadlines
        for d in deadlines:
            self._record(at, "deadline_planned", f"{d.title}: due {_t(d.due_at)}")

    def record_notification(self, notification: Notification) -> None:
        self.state.notifications.append(notification)
        self._record(
            notification.sent_at,
            "notified",
            f"{notification.kind} to {', '.join(notification.recipients)}: "
            f"{notification.subject} ({notification.result})",
        )

    # -- the signals -------------------------------------------------------------------------

    def _submit_report(self, report: UpwardReport, at: datetime) -> Outcome:
        if self.state.stage is not Stage.discovered:
            raise Refused(f"the incident was already reported at {_t(self.state.reported_at)}")
        role = self._require_any(report.reporter_id, REPORTERS)
        self.state.report = report
        self.state.reported_at = at
        self._record(
            at,
            "reported",
            f"upward report via {report.medium}: {report.facts.course}",
            actor=report.reporter_id,
            role=role,
            signal="submit_report",
        )
        self._meet("report", at)
        self._stage(Stage.reported, at)
        facts = report.facts
        return Outcome(
            effects=[
                Notify(
                    key="report/upward",
                    kind="report",
                    subject=self._subject(f"舆情报告: {self.state.title}"),
                    body=(
                        f"Medium: {report.medium}\nTime: {facts.time}\nPlace: {facts.place}\n"
                        f"Units involved: {', '.join(facts.units_involved)}\n"
                        f"Course: {facts.course}\n"
                        f"Outcome: {facts.outcome}\nTendency of comments: {report.comment_tendency}"
                    ),
                    roles=self.policy.report_recipients,
                    summary="report to leaders and the Office",
                )
            ]
        )

    def _submit_assessment(self, assessment: Assessment, at: datetime) -> Outcome:
        if self.state.stage is Stage.discovered:
            raise Refused("the incident must be reported before it is assessed")
        if self.state.grade is not None:
            raise Refused("the incident is already assessed; new figures go through update_metrics")
        self._require(assessment.assessor_id, Role.office)
        self.state.assessment = assessment
        criteria = fired_criteria(self.policy.grading, assessment, self.state.metrics)
        effects = self._set_grade(
            grade_for(criteria),
            criteria,
            assessment.assessor_id,
            assessment.comment or "assessment",
            at,
        )
        self._stage(Stage.assessed, at)
        return Outcome(effects=effects)

    def _update_metrics(self, update: MetricsUpdate, at: datetime) -> Outcome:
        if self.state.stage in (Stage.closed, Stage.reviewed):
            raise Refused(f"the incident is {self.state.stage}")
        self.state.metrics = self.state.metrics.merged(update)
        self._record(
            at,
            "metrics",
            f"figures from {update.source}: "
            f"{self.state.metrics.model_dump_json(exclude_defaults=True)}",
            actor=update.source,
            signal="update_metrics",
        )
        if self.state.grade is not Grade.general:
            return Outcome()
        criteria = fired_criteria(self.policy.grading, self.state.assessment, self.state.metrics)
        if not criteria:
            return Outcome()
        return Outcome(
            effects=self._set_grade(
                Grade.major, criteria, "automatic", f"new figures from {update.source}", at
            )
        )

    def _submit_draft(self, submission: DraftSubmission, at: datetime) -> Outcome:
        if self.state.grade is None:
            raise Refused("the incident is not assessed yet: drafts follow the assessment")
        if self.state.stage in AFTER_PUBLICATION:
            raise Refused(f"the incident is {self.state.stage}: its statement is already out")
        role = self._require_any(submission.author_id, DRAFTERS)
        previous = self.state.current_draft
        if previous is not None and previous.status is DraftStatus.approved:
            raise Refused(f"draft version {previous.version} is approved and being published")
        version = len(self.state.drafts) + 1
        if previous is not None and previous.status is DraftStatus.in_review:
            previous.status = DraftStatus.superseded
        for approval in self.state.approvals:
            if approval.draft_version < version and not approval.void:
                approval.void = True
                approval.void_reason = f"superseded by draft version {version}"
        self.state.drafts.append(
            Draft(
                version=version,
                author_id=submission.author_id,
                text=submission.text,
                channels=submission.channels or list(self.policy.publication_channels),
                submitted_at=at,
            )
        )
        self._record(
            at,
            "draft",
            f"draft version {version} submitted",
            actor=submission.author_id,
            role=role,
            signal="submit_draft",
        )
        self._stage(Stage.approving, at)
        return Outcome()

    def _legal_opinion(self, opinion: LegalOpinion, at: datetime) -> Outcome:
        if self.state.stage in (Stage.closed, Stage.reviewed):
            raise Refused(f"the incident is {self.state.stage}")
        self._require(opinion.author_id, Role.legal)
        self.state.legal_opinions.append(opinion)
        self._record(
            at,
            "legal_opinion",
            opinion.opinion,
            actor=opinion.author_id,
            role=Role.legal,
            signal="legal_opinion",
        )
        return Outcome()

    def _approval_for(self, signal: str) -> Callable[[Any, datetime], Outcome]:
        def decide(approval: Approval, at: datetime) -> Outcome:
            return self._approval(signal, approval, at)

        return decide

    def _approval(self, signal: str, approval: Approval, at: datetime) -> Outcome:
        refusal, step = approval_refusal(self.state, self.policy, self.roster, signal, approval)
        if refusal is not None or step is None:
            raise Refused(refusal or f"{signal} cannot be placed in the chain")
        assert self.state.grade is not None  # approval_refusal refuses an ungraded incident
        self.state.approvals.append(
            ApprovalRecord(
                signal=signal,
                role=step.role,
                approver_id=approval.approver_id,
                decision=approval.decision,
                draft_version=approval.draft_version,
                comment=approval.comment,
                at=at,
            )
        )
        draft = self._draft(approval.draft_version)
        verb = "approved" if approval.decision is Decision.approve else "rejected"
        self._record(
            at,
            "approval",
            f"{step.title}: {verb} draft version {draft.version}"
            + (f" ({approval.comment})" if approval.comment else ""),
            actor=approval.approver_id,
            role=step.role,
            signal=signal,
        )
        if approval.decision is Decision.reject:
            draft.status = DraftStatus.returned
            draft.returned_reason = approval.comment
            self._stage(Stage.handling, at)
            return Outcome(
                effects=[
                    Notify(
                        key=f"draft/{draft.version}/returned",
                        kind="draft_returned",
                        subject=self._subject(f"draft version {draft.version} returned"),
                        body=f"{step.title} returned the draft: {approval.comment}",
                        roles=[Role.unit, Role.unit_head],
                        summary=f"return draft v{draft.version} to the unit",
                    )
                ]
            )
        if not chain_complete(self.policy, self.state.grade, self.state.approvals, draft.version):
            return Outcome()
        draft.status = DraftStatus.approved
        self._record(
            at,
            "chain_complete",
            f"the {self.state.grade} chain approved draft version {draft.version}",
        )
        return Outcome(effects=[Publish(draft_version=draft.version)])

    def _close_incident(self, close: CloseIncident, at: datetime) -> Outcome:
        if self.state.stage not in (Stage.published, Stage.monitoring):
            raise Refused(
                f"the incident is {self.state.stage}: it closes after its statement "
                "is published and monitored"
            )
        closers = [Role.leadership_group]
        if self.state.grade is Grade.general:
            closers.append(Role.office)  # the Office closes a general incident (SPEC §2.8)
        role = self._require_any(close.closed_by, tuple(closers))
        self.state.closed_at = at
        self.state.close_reason = close.reason
        self._record(
            at, "closed", close.reason, actor=close.closed_by, role=role, signal="close_incident"
        )
        self._stage(Stage.closed, at)
        return Outcome()

    def _submit_review(self, review: Review, at: datetime) -> Outcome:
        if self.state.stage is not Stage.closed:
            raise Refused(f"the incident is {self.state.stage}: a review follows its closure")
        if self.roster.person(review.author_id) is None:
            raise Refused(f"{review.author_id!r} is not in the roster")
        self.state.review = review
        self._record(
            at, "reviewed", review.what_to_change, actor=review.author_id, signal="submit_review"
        )
        self._stage(Stage.reviewed, at)
        return Outcome()

    # -- helpers -----------------------------------------------------------------------------

    def _set_grade(
        self, grade: Grade, criteria: list[str], by: str, reason: str, at: datetime
    ) -> list[Effect]:
        upgrade = self.state.grade is Grade.general and grade is Grade.major
        self.state.grade = grade
        self.state.grade_criteria = criteria
        self.state.grade_history.append(
            GradeChange(grade=grade, criteria=criteria, by=by, reason=reason, at=at)
        )
        because = "; ".join(criteria) or "no major-incident criterion holds"
        self._record(
            at,
            "upgraded" if upgrade else "graded",
            f"{grade}: {because}",
            actor=by,
            role=Role.office if by != "automatic" else None,
        )
        if grade is not Grade.major:
            return []
        return [
            Notify(
                key="notice/major",
                kind="major_notice",
                subject=self._subject(f"重大敏感负面舆情通报: {self.state.title}"),
                body=f"{self.state.title}: a major incident ({because}). Unit: {self.state.unit}.",
                roles=self.policy.major_notice_recipients,
                summary="notify propaganda department and public security",
            )
        ]

    def _meet(self, met_by: str, at: datetime) -> None:
        for key, rule in self.policy.deadlines.items():
            deadline = self.state.deadline(key)
            if rule.met_by != met_by or deadline is None or deadline.met_at is not None:
                continue
            deadline.met_at = at
            if deadline.status is DeadlineStatus.pending:
                deadline.status = DeadlineStatus.met
                self._record(at, "deadline_met", f"{deadline.title} met")
            else:
                self._record(
                    at, "deadline_met_late", f"{deadline.title} met late, by {at - deadline.due_at}"
                )

    def _require(self, person_id: str, role: Role) -> Role:
        refusal = self.roster.role_refusal(person_id, role, self.state.unit)
        if refusal is not None:
            raise Refused(refusal)
        return role

    def _require_any(self, person_id: str, roles: tuple[Role, ...]) -> Role:
        for role in roles:
            if self.roster.holds(person_id, role, self.state.unit):
                return role
        if self.roster.person(person_id) is None:
            raise Refused(f"{person_id!r} is not in the roster")
        wanted = " or ".join(roles)
        raise Refused(f"{person_id} is not {wanted} for {self.state.unit}")

    def _subject(self, text: str) -> str:
        return f"[{self.state.incident_id}] {text}"

    def _draft(self, version: int) -> Draft:
        return next(d for d in self.state.drafts if d.version == version)

    def _stage(self, stage: Stage, at: datetime) -> None:
        if self.state.stage is not stage:
            self.state.stage = stage
            self._record(at, "stage", f"stage: {stage}")

    def _record(
        self,
        at: datetime,
        kind: str,
        detail: str,
        *,
        actor: str | None = None,
        role: str | None = None,
        signal: str | None = None,
    ) -> None:
        self.state.trail.append(
            TrailEntry(
                at=at,
                kind=kind,
                actor=actor,
                role=role,
                detail=detail,
                signal=signal or self._signal,
            )
        )

    def _refuse(self, signal: str, raw: Any, at: datetime, reason: str) -> Outcome:
        self.state.trail.append(
            TrailEntry(
                at=at,
                kind="refused",
                actor=_sender(raw),
                detail=reason,
                signal=signal,
                refused=True,
            )
        )
        return Outcome(refusal=reason)


def describe(err: ValidationError) -> str:
    """Each problem with the field it concerns, e.g. `facts.place: Field required`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'payload'}: {e['msg']}" for e in err.errors()
    )


def _sender(raw: Any) -> str | None:
    if isinstance(raw, dict):
        for key in (
            "approver_id",
            "author_id",
            "reporter_id",
            "assessor_id",
            "closed_by",
            "source",
        ):
            if isinstance(raw.get(key), str):
                return str(raw[key])
    return None


def _t(moment: datetime | None) -> str:
    return moment.isoformat(timespec="minutes") if moment else "(unknown)"
