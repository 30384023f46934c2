"""What each signal to a netizen post decides (SPEC §4), as pure functions of its state.

received → initial response (3 working hours) → where formal handling is needed, a reply
approved by the department leader within 5 working days, or an extension with its reason to
at most 10 → answered. Every step names who acted and when.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from typing import Any

from yuqing import incident_workflow_id
from yuqing.decider import moment
from yuqing.effects import PostStart
from yuqing.models import (
    POST_SIGNAL_PAYLOADS,
    CalendarChanged,
    ExtensionRequest,
    FormalReply,
    InitialResponse,
    Withdrawal,
)
from yuqing.outcomes import Effect, Outcome, PlanDeadline, Refused
from yuqing.policy import Policy
from yuqing.roster import Roster
from yuqing.rules.base import AUDIT_LINES
from yuqing.rules.drill import DrillMarking
from yuqing.state import Deadline, DeadlineStatus, PostAction, PostState, PostStatus, Replan

INITIAL = "netizen_initial_response"
FORMAL = "netizen_formal_reply"


class Post(DrillMarking[PostState]):
    noun = "post"
    workflow = "post"

    def __init__(self, start: PostStart, policy: Policy, roster: Roster) -> None:
        """`policy` and `roster`: the incident's, from the start input or its snapshot."""
        post = start.post
        # The incident's authorization and keys come with the start; none: an incident from
        # before signed decisions, whose posts decide as they always did.
        super().__init__(
            post,
            roster,
            post.unit,
            f"{post.incident_id} post {post.post_id}",
            authorization=start.authorization,
            keys=start.keys,
            keys_loaded_at=start.keys_loaded_at,
            parent_workflow_id=incident_workflow_id(post.incident_id),
        )
        self.policy: Policy = policy
        self.rules = policy.posts
        self.features = frozenset(start.features)
        if start.drill:
            self.mark_drill()
        decisions: dict[str, Callable[[Any, datetime], Outcome]] = {
            "initial_response": self._initial_response,
            "formal_reply": self._formal_reply,
            "request_extension": self._request_extension,
            "calendar_changed": self._calendar_changed,
            "withdraw": self._withdraw,
        }
        for signal, decision in decisions.items():
            self.decides(signal, POST_SIGNAL_PAYLOADS[signal], decision)

    @property
    def finished(self) -> bool:
        return not self.state.open

    def notice_text(self, kind: str, **params: Any) -> dict[str, Any]:
        """console (i18n): a post's notices (`post_reminder`, `post_escalation`) quote the post."""
        post = self.state
        return super().notice_text(
            f"post_{kind}",
            post=post.post_id,
            platform=post.platform,
            author=post.author,
            content=post.content,
            **params,
        )

    def title(self, key: str) -> str:
        if key == INITIAL:
            return f"initial response {self.rules.initial_response_working_hours:g} working hours"
        days = self.state.extended_to_days or self.rules.formal_reply_working_days
        return f"formal reply {days} working days"

    def first_deadline(self) -> PlanDeadline:
        return PlanDeadline(key=INITIAL, reason="post received")

    # -- what the planning activity reports back ---------------------------------------------

    def deadline_planned(
        self, planned: Deadline, note: str | None, reason: str, at: datetime
    ) -> None:
        current = self.state.deadline(planned.key)
        if current is None:
            self.state.deadlines.append(planned)
            self.record(at, "deadline_planned", f"{planned.title}: due {moment(planned.due_at)}")
            self._settle_if_finished(planned, at)
        elif self._reopens(current, planned):
            # The extension was granted before the old due time, but its plan came back after
            # the watcher had passed that time: the breach was premature.
            current.status = DeadlineStatus.pending
            current.breached_at = None
            self.record(at, "deadline_reopened", f"{planned.title}: the extension stands")
            self.deadline_planned(planned, None, reason, at)
            return
        elif current.status is DeadlineStatus.pending:
            if planned.due_at != current.due_at:
                self.state.replans.append(
                    Replan(
                        key=planned.key,
                        old_due_at=current.due_at,
                        new_due_at=planned.due_at,
                        reason=reason,
                        calendar_version=planned.calendar_version,
                        at=at,
                    )
                )
                self.record(
                    at,
                    "deadline_replanned",
                    f"{planned.title}: due {moment(current.due_at)} → {moment(planned.due_at)} "
                    f"({reason})",
                )
            current.title = planned.title
            current.due_at = planned.due_at
            current.reminders_at = planned.reminders_at
            current.calendar_version = planned.calendar_version
        if note:
            self.record(at, "deadline_provisional", f"{planned.title}: {note}")

    def _reopens(self, current: Deadline, planned: Deadline) -> bool:
        extension = self.state.extension
        return (
            current.key == FORMAL
            and current.status is DeadlineStatus.breached
            and extension is not None
            and extension.at < current.due_at
            and planned.due_at > current.due_at
        )

    def _settle_if_finished(self, deadline: Deadline, at: datetime) -> None:
        """A plan that lands after the post was answered or withdrawn is settled at once."""
        if self.state.open:
            return
        if deadline.key == FORMAL and self.state.formal_reply is not None:
            self.meet(FORMAL, self.state.formal_reply.at)
        elif deadline.status is DeadlineStatus.pending:
            deadline.status = DeadlineStatus.waived
            self.record(at, "deadline_waived", f"{deadline.title}: the post is {self.state.status}")

    def plan_request(self, plan: PlanDeadline) -> tuple[float | None, int | None]:
        """(working hours, working days) of the deadline `plan` names."""
        if plan.key == INITIAL:
            return self.rules.initial_response_working_hours, None
        return None, plan.working_days or self.state.extended_to_days or (
            self.rules.formal_reply_working_days
        )

    # -- the signals -------------------------------------------------------------------------

    def _initial_response(self, response: InitialResponse, at: datetime) -> Outcome:
        if self.state.initial_response is not None:
            raise Refused(
                f"the initial response was given at {moment(self.state.initial_response.at)}"
            )
        self._require_open()
        role = self.authorized("initial_response", response.responder_id)
        self.state.initial_response = PostAction(
            by=response.responder_id, at=at, text=response.text
        )
        self.state.needs_formal_handling = response.needs_formal_handling
        self.record(at, "initial_response", response.text, actor=response.responder_id, role=role)
        self.meet(INITIAL, at)
        effects: list[Effect] = []
        if response.needs_formal_handling:
            self.state.status = PostStatus.awaiting_reply
            effects.append(PlanDeadline(key=FORMAL, reason="formal handling needed"))
        else:
            self._answered(at)
        return Outcome(effects=effects)

    def _formal_reply(self, reply: FormalReply, at: datetime) -> Outcome:
        self._require_open()
        if self.state.status is not PostStatus.awaiting_reply:
            raise Refused(
                "no formal reply is due: the initial response comes first and must ask for it"
            )
        role = self.require(reply.approver_id, self.rules.reply_approver)
        self.state.formal_reply = PostAction(by=reply.approver_id, at=at, text=reply.text)
        self.record(at, "formal_reply", reply.text, actor=reply.approver_id, role=role)
        self.meet(FORMAL, at)
        self._answered(at)
        return Outcome()

    def _request_extension(self, request: ExtensionRequest, at: datetime) -> Outcome:
        self._require_open()
        if self.state.status is not PostStatus.awaiting_reply:
            raise Refused("no formal reply is due, so there is nothing to extend")
        role = self.authorized("request_extension", request.requested_by)
        if not request.reason.strip():
            raise Refused("an extension needs a stated reason")
        if self.state.extension is not None:
            raise Refused(f"the reply was already extended to {self.state.extended_to_days} days")
        deadline = self.state.deadline(FORMAL)
        if deadline is None:
            raise Refused("the formal reply's deadline is still being planned; ask again shortly")
        if deadline.status is not DeadlineStatus.pending or at >= deadline.due_at:
            raise Refused(
                f"the {self.rules.formal_reply_working_days}-working-day deadline passed at "
                f"{moment(deadline.due_at)}; an extension must be asked before it passes"
            )
        most, least = self.rules.max_working_days, self.rules.formal_reply_working_days
        if request.total_working_days > most:
            raise Refused(
                f"{request.total_working_days} working days is beyond the {most} allowed in all"
            )
        if request.total_working_days <= least:
            raise Refused(
                f"an extension must allow more than the {least} working days already given"
            )
        self.state.extension = PostAction(by=request.requested_by, at=at, text=request.reason)
        self.state.extended_to_days = request.total_working_days
        self.record(
            at,
            "extension",
            f"extended to {request.total_working_days} working days: {request.reason}",
            actor=request.requested_by,
            role=role,
        )
        plan = PlanDeadline(
            key=FORMAL,
            working_days=request.total_working_days,
            reason=f"extension: {request.reason}",
        )
        return Outcome(effects=[plan])

    def _calendar_changed(self, change: CalendarChanged, at: datetime) -> Outcome:
        acting = self.authorized("calendar_changed", change.changed_by)
        pending = [d for d in self.state.deadlines if d.status is DeadlineStatus.pending]
        keys = ", ".join(d.key for d in pending) or "none"
        role = acting if AUDIT_LINES in self.features else None
        self.record(
            at,
            "calendar_changed",
            f"{change.reason}; pending: {keys}",
            actor=change.changed_by,
            role=role,
        )
        reason = f"calendar changed: {change.reason}"
        return Outcome(effects=[PlanDeadline(key=d.key, reason=reason) for d in pending])

    def _withdraw(self, withdrawal: Withdrawal, at: datetime) -> Outcome:
        self._require_open()
        role = self.authorized("withdraw", withdrawal.closed_by)
        self.state.status = PostStatus.closed_unanswered
        self.state.closed_reason = withdrawal.reason
        for deadline in self.state.deadlines:
            if deadline.status is DeadlineStatus.pending:
                deadline.status = DeadlineStatus.waived
        self.record(
            at,
            "closed_unanswered",
            f"left unanswered when the incident closed: {withdrawal.reason}",
            actor=withdrawal.closed_by,
            role=role,
        )
        return Outcome()

    # -- helpers -----------------------------------------------------------------------------

    def derived(self, signal: str, origin: dict[str, Any], payload: dict[str, Any]) -> bool:
        if signal == "withdraw":
            # The incident's close names this post, with why it is left open.
            reasons = origin.get("open_posts")
            return (
                payload.get("closed_by") == origin.get("closed_by")
                and isinstance(reasons, dict)
                and payload.get("reason") == reasons.get(self.state.post_id)
            )
        return super().derived(signal, origin, payload)

    def _require_open(self) -> None:
        if not self.state.open:
            raise Refused(f"the post is {self.state.status}")

    def _answered(self, at: datetime) -> None:
        self.state.status = PostStatus.answered
        self.record(at, "answered", f"post {self.state.post_id} answered")
