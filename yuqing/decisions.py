"""What each signal to an incident decides (SPEC §2), as pure functions of its state.

The workflow feeds every signal through `Incident.apply` (see `yuqing.decider`): a refusal
comes back with its reason and nothing changed; an acceptance changes the state, appends to
the trail and returns the side effects (notices, publication, posts) for the workflow to carry
out through activities and child workflows.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime
from typing import Any

from yuqing.authorization import Authorization
from yuqing.chain import approval_step, chain_complete, missing_steps
from yuqing.decider import FORWARDED, describe, moment, said
from yuqing.grading import fired_criteria, grade_for
from yuqing.limits import (
    DRAFTS_MAX,
    EVIDENCE_MAX,
    LIST_ITEMS,
    OPINIONS_MAX,
    POSTS_MAX,
    REPORTS_MAX,
    instant_problem,
)
from yuqing.models import (
    SIGNAL_PAYLOADS,
    AdditionalReport,
    Approval,
    Assessment,
    CalendarChanged,
    CloseIncident,
    Decision,
    DraftSubmission,
    EffectFailure,
    Grade,
    LegalOpinion,
    MetricsUpdate,
    NetizenPost,
    Review,
    UpwardReport,
    evidence_time_problem,
)
from yuqing.outcomes import (
    Effect,
    FixMoreEvidence,
    Notify,
    Outcome,
    Publish,
    RefusalKind,
    Refused,
    SignalPosts,
    StartPost,
)
from yuqing.policy import APPROVAL_SIGNALS, Policy
from yuqing.roles import Role
from yuqing.roster import Roster
from yuqing.rules import AUDIT_LINES, PlanRules
from yuqing.signing import Keyring
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
    PostState,
    PostStatus,
    Publication,
    Stage,
    TrailEntry,
    put,
)

__all__ = [
    "EFFECT_FAILED_SIGNAL",
    "POST_CHANGED_SIGNAL",
    "POST_STATUS_SIGNAL",
    "Incident",
    "describe",
]

# A post's state as the incident takes it in: read from the child (or, from workflows older than
# the nudge, sent by it). Never taken from outside.
POST_STATUS_SIGNAL = "post_status"
# Sent by a NetizenPostWorkflow to its incident whenever the post changes: a nudge that says
# nothing but which post; the incident reads the post's state from the child itself.
POST_CHANGED_SIGNAL = "post_changed"
# What the incident's workflow tells itself when an effect has failed for good.
EFFECT_FAILED_SIGNAL = "effect_failed"
AFTER_PUBLICATION = (Stage.published, Stage.monitoring, Stage.closed, Stage.reviewed)
ENDED = (Stage.closed, Stage.reviewed)


class Incident(PlanRules):
    """The decisions of one incident over its state, its policy and its roster.

    `features` are the patch ids (`yuqing.rules.PLAN_FEATURES`) the workflow found on: the
    rules that came later apply only to incidents that began under them.
    """

    noun = "incident"

    def __init__(
        self,
        state: IncidentState,
        policy: Policy,
        roster: Roster,
        features: Iterable[str] = (),
        *,
        authorization: Authorization | None = None,
        keys: Keyring | None = None,
        keys_loaded_at: datetime | None = None,
    ) -> None:
        # Who may send what (config/authorization.toml) and the keys that prove it: both as the
        # incident loaded them; without them, the rules of old and no proofs (old histories).
        super().__init__(
            state,
            roster,
            state.unit,
            state.incident_id,
            authorization=authorization,
            keys=keys,
            keys_loaded_at=keys_loaded_at,
        )
        self.policy = policy
        decisions: dict[str, Callable[[Any, datetime], Outcome]] = {
            "submit_report": self._submit_report,
            "submit_assessment": self._submit_assessment,
            "update_metrics": self._update_metrics,
            "submit_draft": self._submit_draft,
            "legal_opinion": self._legal_opinion,
            "add_evidence": self._add_evidence,
            "netizen_post": self._netizen_post,
            "calendar_changed": self._calendar_changed,
            "close_incident": self._close_incident,
            "submit_review": self._submit_review,
        }
        for signal in APPROVAL_SIGNALS:
            decisions[signal] = self._approval_for(signal)
        for signal, decision in decisions.items():
            self.decides(signal, SIGNAL_PAYLOADS[signal], decision)
        self.decides(POST_STATUS_SIGNAL, PostState, self._post_status, internal=True)
        self.decides(EFFECT_FAILED_SIGNAL, EffectFailure, self._effect_failed, internal=True)
        self.init_plan_rules(features)

    # -- what intake, the activities and the children report back ---------------------------

    def record_discovery(self, source: str | None = None) -> None:
        """The first line of the trail; `source`: the system the report came through."""
        state = self.state
        detail = (
            f"{state.title} (via {state.channel}; sensitivity {state.sensitivity}; "
            f"unit {state.unit}; policy {state.policy_version}; roster {state.roster_version})"
        )
        params: dict[str, Any] = {
            "title": state.title,
            "intake": state.channel,
            "sensitivity": state.sensitivity,
            "unit": state.unit,
            "policy": state.policy_version,
            "roster": state.roster_version,
        }
        key, role = "msg.discovered", None
        if AUDIT_LINES in self.features:
            detail = f"{detail[:-1]}; calendar {state.calendar_version})"
            key, params["calendar"] = "msg.discovered_calendar", state.calendar_version
            role = self.acting_role(state.reporter_id)
        self.record(
            state.discovered_at,
            "discovered",
            detail,
            actor=state.reporter_id,
            role=role,
            source=source,
            message=said(key, **params),
        )

    def record_submission(self, submission_id: str | None, evidence_items: int) -> None:
        """The first report: its submission id, and the evidence numbers it takes."""
        if submission_id:
            self.state.submissions.append(submission_id)
        self.state.evidence_numbered = evidence_items

    def start_echo(self, raw: Any) -> TrailEntry | None:
        """The report that started this incident, arriving as the update sent with its start
        (update-with-start), or that same delivery repeated: its answer is the discovery, and
        nothing is recorded again."""
        state = self.state
        if not state.submissions or not isinstance(raw, dict):
            return None
        if raw.get("submission_id") != state.submissions[0]:
            return None
        return next((e for e in state.trail if e.kind == "discovered"), None)

    def record_evidence(self, items: list[FixedEvidence], at: datetime) -> None:
        self.state.evidence.extend(items)
        for item in items:
            self.record(
                at,
                "evidence",
                f"{item.evidence_id} {item.kind} captured {moment(item.captured_at)} "
                f"sha256 {item.sha256}",
                message=said(
                    "msg.evidence",
                    id=item.evidence_id,
                    evidence_kind=item.kind,
                    captured_at=item.captured_at.isoformat(),
                    sha256=item.sha256,
                ),
            )

    def record_deadlines(self, deadlines: list[Deadline], at: datetime) -> None:
        self.state.deadlines = deadlines
        for d in deadlines:
            self.record(
                at,
                "deadline_planned",
                f"{d.title}: due {moment(d.due_at)}",
                message=said(
                    "msg.deadline_planned",
                    deadline=d.key,
                    deadline_title=d.title,
                    due=d.due_at.isoformat(),
                ),
            )

    def record_notification(self, notification: Notification) -> None:
        assert notification.sent_at is not None, "only a notice that went out is recorded"
        # In place of its pending entry, if a channel kept it waiting (workflows/delivery.py).
        put(self.state.notifications, notification)
        self.record(
            notification.sent_at,
            "notified",
            f"{notification.kind} to {', '.join(notification.recipients)}: "
            f"{notification.subject} ({notification.result})",
            message=said(
                "msg.notified" if notification.channel != "outbox" else "msg.notified_nowhere",
                kind=notification.kind,
                people=notification.recipients,
                subject=notification.subject,
            ),
        )

    def published_on(self, publication: Publication, at: datetime) -> None:
        """One channel's publication; the first meets the statement deadline."""
        version = publication.draft_version
        first = not any(p.draft_version == version for p in self._published())
        put(self.state.publications, publication)
        detail = (
            f"draft version {version} published on {publication.channel}: {publication.address}"
        )
        params: dict[str, Any] = {
            "version": version,
            "channel": publication.channel,
            "address": publication.address,
        }
        key = "msg.published"
        if AUDIT_LINES in self.features:
            detail += f" (sha256 {publication.content_sha256})"
            key, params["sha256"] = "msg.published_hashed", publication.content_sha256
        self.record(at, "published", detail, message=said(key, **params))
        draft = self._draft(version)
        if first:
            self._meet("publication", at)
            self._stage(Stage.published, at)
            self._stage(Stage.monitoring, at)
        done = {p.channel for p in self._published() if p.draft_version == version}
        if done >= set(draft.channels):
            draft.status = DraftStatus.published

    def _published(self) -> list[Publication]:
        """Publications that went out: not those still waiting for their gateway."""
        return [p for p in self.state.publications if p.published]

    # -- the signals -------------------------------------------------------------------------

    def _submit_report(self, report: UpwardReport, at: datetime) -> Outcome:
        if self.state.stage is not Stage.discovered:
            raise Refused(f"the incident was already reported at {moment(self.state.reported_at)}")
        role = self.authorized("submit_report", report.reporter_id)
        self.state.report = report
        self.state.reported_at = at
        self.record(
            at,
            "reported",
            f"upward report via {report.medium}: {report.facts.course}",
            actor=report.reporter_id,
            role=role,
            message=said("msg.reported", medium=report.medium, course=report.facts.course),
        )
        self._meet("report", at)
        self._stage(Stage.reported, at)
        facts = report.facts
        body = (
            f"Medium: {report.medium}\nTime: {facts.time}\nPlace: {facts.place}\n"
            f"Units involved: {', '.join(facts.units_involved)}\nCourse: {facts.course}\n"
            f"Outcome: {facts.outcome}\nTendency of comments: {report.comment_tendency}"
        )
        notice = Notify(
            key="report/upward",
            kind="report",
            subject=self.subject(f"舆情报告: {self.state.title}"),
            body=body,
            roles=self.policy.report_recipients,
            summary="report to leaders and the Office",
            text=self._text(
                "report",
                medium=report.medium,
                time=facts.time,
                place=facts.place,
                units_involved=list(facts.units_involved),
                course=facts.course,
                outcome=facts.outcome,
                tendency=report.comment_tendency,
                reporter_person=report.reporter_id,
            ),
        )
        return Outcome(effects=[notice])

    def _submit_assessment(self, assessment: Assessment, at: datetime) -> Outcome:
        if self.state.stage is Stage.discovered:
            raise Refused("the incident must be reported before it is assessed")
        if self.state.grade is not None:
            raise Refused("the incident is already assessed; new figures go through update_metrics")
        self.authorized("submit_assessment", assessment.assessor_id)
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
        # The unit now handles it at the source and drafts the reply (SPEC §2.4).
        self._stage(Stage.handling, at)
        effects += self.response_assessed(assessment, at)
        return Outcome(effects=effects)

    def _update_metrics(self, update: MetricsUpdate, at: datetime) -> Outcome:
        if self.state.stage in ENDED:
            raise Refused(f"the incident is {self.state.stage}")
        if self.bounded and self.state.metrics.merged_size(update) > LIST_ITEMS:
            raise Refused(
                f"the incident would then list more than {LIST_ITEMS} districts or media",
                RefusalKind.malformed,
            )
        if self.checks("update_metrics"):
            # The person whose token sent the figures acts; the system they came from is its
            # source, recorded beside them.
            if update.reported_by is None:
                raise Refused(
                    "malformed update_metrics: reported_by: the person who sends the figures "
                    "is required",
                    RefusalKind.malformed,
                )
            actor: str = update.reported_by
            role: Role | None = self.authorized("update_metrics", actor)
        else:
            actor, role = update.source, None
        self.state.metrics = self.state.metrics.merged(update)
        figures = self.state.metrics.model_dump_json(exclude_defaults=True)
        source = update.source if update.source != actor else None
        self.record(
            at,
            "metrics",
            f"figures from {update.source}: {figures}",
            actor=actor,
            role=role,
            source=source,
        )
        if self.state.grade is not Grade.general:
            return Outcome()
        criteria = self.standing_criteria(
            fired_criteria(self.policy.grading, self.state.assessment, self.state.metrics)
        )
        if not criteria:
            return Outcome()
        reason = f"new figures from {update.source}"
        return Outcome(effects=self._set_grade(Grade.major, criteria, "automatic", reason, at))

    def _submit_draft(self, submission: DraftSubmission, at: datetime) -> Outcome:
        if self.state.grade is None:
            raise Refused("the incident is not assessed yet: drafts follow the assessment")
        if self.state.stage in AFTER_PUBLICATION:
            raise Refused(f"the incident is {self.state.stage}: its statement is already out")
        role = self.authorized("submit_draft", submission.author_id)
        if self.bounded and len(self.state.drafts) >= DRAFTS_MAX:
            raise Refused(f"an incident takes at most {DRAFTS_MAX} draft versions")
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
        detail = f"draft version {version} submitted"
        self.record(
            at,
            "draft",
            detail,
            actor=submission.author_id,
            role=role,
            message=said("msg.draft", version=version),
        )
        self._stage(Stage.approving, at)
        return Outcome(effects=self._ask_next_approver(version))

    def _legal_opinion(self, opinion: LegalOpinion, at: datetime) -> Outcome:
        if self.state.stage in ENDED:
            raise Refused(f"the incident is {self.state.stage}")
        role = self.authorized("legal_opinion", opinion.author_id)
        if self.bounded and len(self.state.legal_opinions) >= OPINIONS_MAX:
            raise Refused(f"an incident takes at most {OPINIONS_MAX} legal opinions")
        self.state.legal_opinions.append(opinion)
        self.record(at, "legal_opinion", opinion.opinion, actor=opinion.author_id, role=role)
        return Outcome()

    def _approval_for(self, signal: str) -> Callable[[Any, datetime], Outcome]:
        def decide(approval: Approval, at: datetime) -> Outcome:
            return self._approval(signal, approval, at)

        return decide

    def _approval(self, signal: str, approval: Approval, at: datetime) -> Outcome:
        step = approval_step(self.state, self.policy, self.roster, signal, approval)
        assert self.state.grade is not None  # approval_step refuses an ungraded incident
        if step.role is Role.leadership_group:
            # The group decides as the policy says; until it has, the draft waits.
            decided = self.group_approval(approval, at)
            if decided is None:
                return Outcome()
            approval = decided
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
        comment = f" ({approval.comment})" if approval.comment else ""
        self.record(
            at,
            "approval",
            f"{step.title}: {verb} draft version {draft.version}{comment}",
            actor=approval.approver_id,
            role=step.role,
            message=said(
                "msg.rejected"
                if approval.decision is Decision.reject
                else "msg.approved_comment"
                if approval.comment
                else "msg.approved",
                step=step.role,
                version=draft.version,
                comment=approval.comment,
            ),
        )
        if approval.decision is Decision.reject:
            draft.status = DraftStatus.returned
            draft.returned_reason = approval.comment
            self._stage(Stage.handling, at)
            notice = Notify(
                key=f"draft/{draft.version}/returned",
                kind="draft_returned",
                subject=self.subject(f"draft version {draft.version} returned"),
                body=f"{step.title} returned the draft: {approval.comment}",
                roles=[Role.unit, Role.unit_head],
                summary=f"return draft v{draft.version} to the unit",
                text=self._text(
                    "draft_returned",
                    version=draft.version,
                    step=step.role,
                    approver_person=approval.approver_id,
                    comment=approval.comment,
                ),
            )
            return Outcome(effects=[notice])
        if not chain_complete(self.policy, self.state.grade, self.state.approvals, draft.version):
            return Outcome(effects=self._ask_next_approver(draft.version))
        draft.status = DraftStatus.approved
        self.record(
            at,
            "chain_complete",
            f"the {self.state.grade} chain approved draft version {draft.version}",
            message=said("msg.chain_complete", grade=self.state.grade, version=draft.version),
        )
        return Outcome(effects=[Publish(draft_version=draft.version)])

    def _add_evidence(self, report: AdditionalReport, at: datetime) -> Outcome:
        if report.submission_id in self.state.submissions:
            # The same delivery again (signal-with-start repeats the first report's): no-op.
            self.record(at, "duplicate_submission", f"submission {report.submission_id} again")
            return Outcome()
        if self.state.stage in ENDED:
            raise Refused(f"the incident is {self.state.stage}: it takes no more evidence")
        if self.bounded:
            self._check_report(report, at)
        self.state.submissions.append(report.submission_id)
        first = self.state.evidence_numbered
        self.state.evidence_numbered += len(report.evidence)
        self.record(
            at,
            "reported_again",
            f"via {report.channel}: {report.summary or report.source_url or 'more evidence'} "
            f"({len(report.evidence)} evidence item(s))",
            actor=report.reporter_id,
            role=self.acting_role(report.reporter_id) if AUDIT_LINES in self.features else None,
            source=report.source,
        )
        if not report.evidence:
            return Outcome()
        items = [item.model_dump(mode="json") for item in report.evidence]
        return Outcome(effects=[FixMoreEvidence(first_index=first, items=items)])

    def _check_report(self, report: AdditionalReport, at: datetime) -> None:
        if len(self.state.submissions) >= REPORTS_MAX:
            raise Refused(f"an incident takes at most {REPORTS_MAX} reports")
        if self.state.evidence_numbered + len(report.evidence) > EVIDENCE_MAX:
            raise Refused(
                f"an incident keeps at most {EVIDENCE_MAX} evidence items"
                f" ({self.state.evidence_numbered} so far)"
            )
        problem = evidence_time_problem(report.evidence, at)
        if problem is not None:
            raise Refused(problem, RefusalKind.malformed)

    def _netizen_post(self, post: NetizenPost, at: datetime) -> Outcome:
        if self.state.stage in ENDED:
            raise Refused(f"the incident is {self.state.stage}: posts go to a new incident")
        existing = self.state.post(post.post_id)
        if existing is not None:
            raise Refused(
                f"post {post.post_id} was already received by {existing.received_by} "
                f"(learnt {moment(existing.learnt_at)}): nothing new is started"
            )
        role = self.authorized("netizen_post", post.received_by)
        if self.bounded and len(self.state.posts) >= POSTS_MAX:
            raise Refused(f"an incident takes at most {POSTS_MAX} netizen posts")
        learnt_at = post.learnt_at or at
        if learnt_at > at:
            raise Refused(f"learnt_at {moment(learnt_at)} is in the future")
        if self.bounded and (problem := instant_problem(learnt_at, at)) is not None:
            raise Refused(f"learnt_at: {problem}", RefusalKind.malformed)
        self.state.posts.append(
            PostState(
                post_id=post.post_id,
                workflow_id=f"{self.state.workflow_id}-post-{post.post_id}",
                incident_id=self.state.incident_id,
                unit=self.state.unit,
                platform=post.platform,
                author=post.author,
                content=post.content,
                url=post.url,
                learnt_at=learnt_at,
                received_by=post.received_by,
            )
        )
        self.record(
            at,
            "netizen_post",
            f"post {post.post_id} on {post.platform} by {post.author}: {post.content}",
            actor=post.received_by,
            role=role,
        )
        return Outcome(effects=[StartPost(post_id=post.post_id)])

    def _post_status(self, status: PostState, at: datetime) -> Outcome:
        current = self.state.post(status.post_id)
        if current is None or current.workflow_id != status.workflow_id:
            raise Refused(f"post {status.post_id} is not one of this incident's posts")
        if status.revision < current.revision:
            # Snapshots sent by separate commands may arrive out of order; keep the newest.
            return Outcome()
        self.state.posts[self.state.posts.index(current)] = status
        if status.status != current.status:
            self.record(at, "post_status", f"post {status.post_id}: {status.status}")
        return Outcome()

    def _effect_failed(self, failure: EffectFailure, at: datetime) -> Outcome:
        self.record(at, "effect_failed", f"{failure.what} failed: {failure.error}")
        if failure.draft_version is not None:
            draft = self._draft(failure.draft_version)
            published = any(p.draft_version == draft.version for p in self._published())
            if draft.status is DraftStatus.approved and not published:
                # Nothing went out: give the draft back, so the unit can try again.
                draft.status = DraftStatus.returned
                draft.returned_reason = f"{failure.what} failed: {failure.error}"
                self._stage(Stage.handling, at)
        if failure.post_id is not None:
            post = self.state.post(failure.post_id)
            if post is not None and post.open:
                post.status = PostStatus.closed_unanswered
                post.closed_reason = f"its workflow ended: {failure.error}"
        return Outcome()

    def _calendar_changed(self, change: CalendarChanged, at: datetime) -> Outcome:
        role = self.authorized("calendar_changed", change.changed_by)
        open_posts = [p.post_id for p in self.state.posts if p.open]
        # The incident's own deadlines run on calendar hours; only posts use working time.
        where = ", ".join(open_posts) if open_posts else "no open post"
        self.record(
            at,
            "calendar_changed",
            f"{change.reason}: re-planning pending working-time deadlines of {where}",
            actor=change.changed_by,
            role=role,
        )
        if not open_posts:
            return Outcome()
        payload = self._passed_on(change.model_dump(mode="json"))
        return Outcome(effects=[SignalPosts(open_posts, "calendar_changed", payload)])

    def _close_incident(self, close: CloseIncident, at: datetime) -> Outcome:
        if self.state.stage not in (Stage.published, Stage.monitoring):
            raise Refused(
                f"the incident is {self.state.stage}: it closes after its statement "
                "is published and monitored"
            )
        open_posts = {p.post_id for p in self.state.posts if p.open}
        unnamed = sorted(open_posts - set(close.open_posts))
        if unnamed:
            raise Refused(
                f"post(s) {', '.join(unnamed)} are unanswered: a closing may leave a post open "
                "only by naming it in open_posts with the reason (the leading group decides)"
            )
        not_open = sorted(set(close.open_posts) - open_posts)
        if not_open:
            raise Refused(f"open_posts names {', '.join(not_open)}, which are not open posts")
        if open_posts:
            closers = self.authorization.action("leave_posts_open")
            role = self.require_any(close.closed_by, tuple(closers))
        else:
            # The Office closes a general incident (SPEC §2.8): by_grade in the authorization.
            role = self.authorized("close_incident", close.closed_by, self.state.grade)
        self.state.closed_at = at
        self.state.close_reason = close.reason
        self.record(at, "closed", close.reason, actor=close.closed_by, role=role)
        effects: list[Effect] = []
        for post_id, why in sorted(close.open_posts.items()):
            self.record(at, "post_left_open", f"post {post_id} left unanswered: {why}")
            withdrawal = self._passed_on({"closed_by": close.closed_by, "reason": why})
            effects.append(SignalPosts([post_id], "withdraw", withdrawal))
        self._stage(Stage.closed, at)
        return Outcome(effects=effects)

    def _submit_review(self, review: Review, at: datetime) -> Outcome:
        if self.state.stage is not Stage.closed:
            raise Refused(f"the incident is {self.state.stage}: a review follows its closure")
        role: Role | None = None
        if self.checks("submit_review"):
            role = self.authorized("submit_review", review.author_id)
        elif self.roster.person(review.author_id) is None:
            raise Refused(f"{review.author_id!r} is not in the roster")
        self.state.review = review
        if role is None and AUDIT_LINES in self.features:
            role = self.acting_role(review.author_id)
        self.record(at, "reviewed", review.what_to_change, actor=review.author_id, role=role)
        self._stage(Stage.reviewed, at)
        return Outcome()

    # -- helpers -----------------------------------------------------------------------------

    def _passed_on(self, payload: dict[str, Any]) -> dict[str, Any]:
        """A payload for the posts, carrying the decision as its author signed it, so each
        post checks the person's own proof (yuqing.decider.FORWARDED)."""
        forwarded = self.forwarding()
        return {**payload, FORWARDED: forwarded} if forwarded is not None else payload

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
        role = Role.office if by != "automatic" else None
        kind = "upgraded" if upgrade else "graded"
        named = [c.split(":", 1)[0] for c in criteria]
        self.record(
            at,
            kind,
            f"{grade}: {because}",
            actor=by,
            role=role,
            message=said(
                f"msg.{kind}" if named else f"msg.{kind}_plain", grade=grade, criteria=named
            ),
        )
        if grade is not Grade.major:
            return []
        notice = Notify(
            key="notice/major",
            kind="major_notice",
            subject=self.subject(f"重大敏感负面舆情通报: {self.state.title}"),
            body=f"{self.state.title}: a major incident ({because}). Unit: {self.state.unit}.",
            roles=self.policy.major_notice_recipients,
            summary="notify propaganda department and public security",
            text=self._text(
                "major_notice",
                criteria=[c.split(":", 1)[0] for c in criteria],
                discovered_at=self.state.discovered_at.isoformat(),
            ),
        )
        return [notice]

    # -- notices as data (console, i18n) -------------------------------------------------------

    def _text(self, kind: str, **params: Any) -> dict[str, Any] | None:
        """The notice of `kind` as data, about this incident; None for workflows older than
        notices as data (they send the English subject and body)."""
        if not self.notice_texts:
            return None
        state = self.state
        return self.notice_text(kind, title=state.title, unit=state.unit, **params)

    def _ask_next_approver(self, version: int) -> list[Effect]:
        """Ask ("第 N 稿待您审定") whoever holds the next step of the chain for draft `version`."""
        grade = self.state.grade
        if not self.notice_texts or grade is None:
            return []
        missing = missing_steps(self.policy, grade, self.state.approvals, version)
        if not missing:
            return []
        step = missing[0]
        draft = self._draft(version)
        notice = Notify(
            key=f"draft/{version}/awaits/{step.signal}",
            kind="approval_requested",
            subject=self.subject(f"draft version {version} awaits your approval ({step.title})"),
            body=f"Draft version {version} of {self.state.title} has reached {step.title}.",
            roles=[step.role],
            summary=f"ask {step.role} to approve draft v{version}",
            text=self._text(
                "approval_requested",
                version=version,
                step=step.role,
                author_person=draft.author_id,
            ),
        )
        return [notice]

    def _meet(self, met_by: str, at: datetime) -> None:
        for key, rule in self.policy.deadlines.items():
            if rule.met_by == met_by:
                # The deadline, and any that came back after it was waived (key#2 …).
                for deadline in self.state.deadlines:
                    same = deadline.key == key or deadline.key.startswith(f"{key}#")
                    if same and deadline.status is not DeadlineStatus.waived:
                        self.meet(deadline.key, at)

    def _draft(self, version: int) -> Draft:
        return next(d for d in self.state.drafts if d.version == version)

    def _stage(self, stage: Stage, at: datetime) -> None:
        if self.state.stage is not stage:
            self.state.stage = stage
            self.record(at, "stage", f"stage: {stage}", message=said("msg.stage", stage=stage))
