"""IncidentWorkflow: one public-opinion incident carried through the plan (SPEC §2).

Signals land in an inbox and are decided one by one, in arrival order, by `yuqing.decisions`;
deadlines run as durable timers beside them; notices and publications go out through
activities. The workflow holds no clock of its own: due times come from an activity and are
kept in the history, and `workflow.now()` only stamps what happens.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.workflow import ChildWorkflowHandle

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from activities.configuration import ConfigurationActivities
    from activities.deadlines import plan_deadlines
    from activities.evidence import EvidenceActivities
    from activities.notifications import NotificationActivities
    from activities.post_reading import PostReadingActivities
    from activities.publications import PublicationActivities
    from workflows.common import (
        AUDIT_PROJECTION_PATCH,
        CONFIG_RETRY,
        DECISION_PATH_PATCH,
        DELIVERY_RETRY,
        INTERNAL,
        QUICK,
        UPDATE,
        Inbound,
        Inboxed,
        contract_signals,
        project_trail,
        settled_by,
    )
    from workflows.delivery import (
        DELIVERY_HEARTBEAT,
        DELIVERY_PATCH,
        DELIVERY_TIMEOUT,
        deliver,
        forget,
        incident_waiting_lines,
        pending_notice,
        with_wait,
    )
    from workflows.keys import SIGNED_DECISIONS_PATCH, keys_for
    from workflows.plan_effects import (
        drill_evidence,
        drill_notice,
        drill_statement,
        plan_features,
        planned_clock,
        recipients,
    )
    from workflows.post import NetizenPostWorkflow
    from yuqing import INCIDENT_WORKFLOW, incident_workflow_id, search_attributes
    from yuqing.decider import contains_nul, describe
    from yuqing.decisions import (
        EFFECT_FAILED_SIGNAL,
        POST_CHANGED_SIGNAL,
        POST_STATUS_SIGNAL,
        Incident,
    )
    from yuqing.effects import (
        FixEvidence,
        LoadConfiguration,
        PlanDeadlines,
        PostStart,
        PublishStatement,
        ReadPost,
        SendNotification,
    )
    from yuqing.listing import MEMO_KEY, incident_memo
    from yuqing.models import SIGNAL_PAYLOADS, EvidenceItem, IncidentReport, PublicationChannel
    from yuqing.outcomes import (
        FixMoreEvidence,
        Notify,
        Outcome,
        PlanClock,
        Publish,
        SignalPosts,
        StartPost,
    )
    from yuqing.roles import Role
    from yuqing.rules import AUDIT_LINES, PLAN_RULES
    from yuqing.state import (
        Deadline,
        DeadlineStatus,
        DrillInfo,
        IncidentState,
        IncidentSummary,
        Notification,
        PostState,
        Publication,
        Waiting,
        put,
    )


# Incidents that began before the console's memo existed replay without it.
LIST_MEMO_PATCH = "console-list-memo"


@workflow.defn(name=INCIDENT_WORKFLOW)
@contract_signals(SIGNAL_PAYLOADS)
class IncidentWorkflow(Inboxed):
    noun = "incident"

    @workflow.init
    def __init__(self, report: Any) -> None:
        info = workflow.info()
        self._open_inbox()
        # Posts whose child said it changed, to be read from the child.
        self._stale_posts: list[str] = []
        self._reading_post = False
        self._watched: set[str] = set()
        # Set in `run` from the patch: whether this incident runs the current decision path.
        self._current = False
        self._effects: set[asyncio.Task[None]] = set()
        self._incident: Incident | None = None
        self._search: dict[str, object] = {}
        self._memo: dict[str, Any] | None = None
        self._posts: dict[str, ChildWorkflowHandle[NetizenPostWorkflow, PostState]] = {}
        self._responsible: str | None = None
        self._ending = False
        self._features: list[str] = []
        self._input_error: str | None = None
        self._state: IncidentState | None = None
        if contains_nul(report):
            self._input_error = "the IncidentReport is malformed: text contains a NUL character"
            return
        try:
            self._report = IncidentReport.model_validate(report)
        except ValidationError as err:
            self._input_error = f"the IncidentReport is malformed: {describe(err)}"
            return
        self._state = IncidentState(
            incident_id=self._report.incident_id,
            workflow_id=info.workflow_id,
            title=self._report.title,
            channel=self._report.channel,
            unit=self._report.unit,
            reporter_id=self._report.reporter_id,
            summary=self._report.summary,
            source_url=self._report.source_url,
            sensitivity=self._report.sensitivity,
            discovered_at=self._report.discovered_at or info.start_time,
            metrics=self._report.metrics,
        )

    # -- the wire contract: signals (one per payload table entry), `decide`, `state` -------

    @workflow.query(name="state")
    def state(self) -> IncidentState:
        if self._state is None:
            raise ApplicationError(self._input_error or "the incident has no state")
        return self._incident.state if self._incident else self._state

    def _receive(self, signal: str, payload: Any) -> None:
        self._inbox.append(Inbound(signal, payload, workflow.now(), origin=INTERNAL))

    @workflow.signal(name=POST_CHANGED_SIGNAL)
    def post_changed(self, *args: Any) -> None:
        """A child's nudge: its state is read from the child itself, so nobody can forge it."""
        post_id = args[0].get("post_id") if len(args) == 1 and isinstance(args[0], dict) else None
        state = self._incident.state if self._incident else None
        if not isinstance(post_id, str) or state is None or state.post(post_id) is None:
            return  # not one of this incident's posts: there is nothing to read
        if post_id not in self._stale_posts:
            self._stale_posts.append(post_id)

    # -- the incident's life ------------------------------------------------------------------

    @workflow.run
    async def run(self, report: Any) -> IncidentSummary:
        if self._state is None:
            raise ApplicationError(
                self._input_error or "malformed input", type="InvalidReport", non_retryable=True
            )
        expected_id = incident_workflow_id(self._state.incident_id)
        if self._state.workflow_id != expected_id:
            # Keys of notices and publications derive from the id: keep it the contract's.
            raise ApplicationError(
                f"workflow id {self._state.workflow_id!r} does not match the incident: "
                f"start it as {expected_id!r}",
                type="InvalidReport",
                non_retryable=True,
            )
        self._current = workflow.patched(DECISION_PATH_PATCH)
        self._features = plan_features()
        incident = await self._intake(self._state)
        incident.bounded = self._current
        self._incident = incident
        self._publish_search_attributes()
        projector = None
        if workflow.patched(AUDIT_PROJECTION_PATCH):
            projector = asyncio.get_running_loop().create_task(
                project_trail(incident.state, None, lambda: self._ending)
            )
        self._arm_deadlines()
        # Posts of this incident's own children say they changed (or, in workflows older than
        # this, send their state); the reader reads each from the child.
        reader = asyncio.get_running_loop().create_task(self._read_posts())
        # Reviewed is the end; notices and posts still under way finish first, and whatever
        # they or anyone send meanwhile is decided (or refused) like any other signal.
        while True:
            await workflow.wait_condition(
                lambda: (
                    bool(self._inbox)
                    or (
                        incident.state.stage == "reviewed"
                        and not self._effects
                        and not self._stale_posts
                        and not self._reading_post
                    )
                )
            )
            if not self._inbox:
                break
            item = self._inbox.pop(0)
            # A key the incident has not seen (or an old copy): read the keys first.
            await keys_for(incident, incident.state.incident_id, item.signal, item.payload)
            self._decide(incident, item)
            self._publish_search_attributes()
        self._ending = True
        self._closed = f"incident {incident.state.incident_id} has ended: it takes no more signals"
        reader.cancel()
        if projector is not None:
            await projector
        if self._current:
            await workflow.wait_condition(workflow.all_handlers_finished)
        return self._summary(incident)

    def _decide(self, incident: Incident, item: Inbound) -> None:
        """Decide one inbox item; an update's answer is the first trail entry it added."""
        before = incident.state.trail_total
        if item.refusal is not None:
            incident.refuse(item.signal, item.payload, item.received_at, item.refusal)
        elif (
            item.origin == UPDATE
            and item.signal == "add_evidence"
            and (echo := incident.start_echo(item.payload))
        ):
            if item.ticket is not None:
                self._answers[item.ticket] = echo
            return
        else:
            # Before this decision path, every name was taken from anyone: kept for replay.
            internal = item.origin == INTERNAL or not self._current
            self._carry_out(
                incident.apply(
                    item.signal, item.payload, item.received_at, item.problem, internal=internal
                )
            )
        self._file_answer(item, incident.state, before)

    @property
    def _drill_report(self) -> bool:
        """The input asks for a drill, and this run knows drills (§5.3)."""
        return self._report.drill is not None and PLAN_RULES in self._features

    async def _intake(self, state: IncidentState) -> Incident:
        """Load the rules in force, fix the evidence, and plan the deadlines."""
        config = await workflow.execute_activity_method(
            ConfigurationActivities.load_configuration,
            LoadConfiguration(
                incident_id=state.incident_id,
                drill_speed=(
                    self._report.drill.speed
                    if self._drill_report and self._report.drill is not None
                    else None
                ),
            ),
            start_to_close_timeout=QUICK,
            retry_policy=CONFIG_RETRY,
            summary="load the policy and the roster",
        )
        policy, roster = config.policy, config.roster
        heads = roster.recipients([Role.unit_head], state.unit)
        if not heads:
            raise ApplicationError(
                f"unit {state.unit!r} has no unit head in roster {roster.version}: "
                "nobody could sign its statement",
                type="UnknownUnit",
                non_retryable=True,
            )
        self._responsible = heads[0].id
        state.policy_version = policy.version
        state.roster_version = roster.version
        if AUDIT_LINES in self._features:
            state.calendar_version = config.calendar_version
        if self._drill_report and self._report.drill is not None:
            drill = self._report.drill
            state.drill = DrillInfo(
                scenario=drill.scenario, speed=drill.speed, started_by=drill.started_by
            )
        if workflow.patched(SIGNED_DECISIONS_PATCH):
            incident = Incident(
                state,
                policy,
                roster,
                self._features,
                authorization=config.authorization,
                keys=config.keys,
                keys_loaded_at=workflow.now(),
            )
        else:
            incident = Incident(state, policy, roster, self._features)
        incident.record_discovery(self._report.source)
        incident.record_submission(self._report.submission_id, len(self._report.evidence))
        if self._report.evidence:
            request = FixEvidence(incident_id=state.incident_id, items=self._report.evidence)
            summary = f"fix {len(self._report.evidence)} evidence item(s)"
            if state.drill is not None:
                fixed = await drill_evidence(request, summary)
            else:
                fixed = await workflow.execute_activity_method(
                    EvidenceActivities.fix_evidence,
                    request,
                    start_to_close_timeout=QUICK,
                    summary=summary,
                )
            incident.record_evidence(fixed.items, workflow.now())
        plan = await workflow.execute_activity(
            plan_deadlines,
            PlanDeadlines(
                incident_id=state.incident_id,
                discovered_at=state.discovered_at,
                sensitivity=state.sensitivity,
                unit=state.unit,
                responsible_person=heads[0].id,
                policy=policy,
            ),
            start_to_close_timeout=QUICK,
            summary="plan the report and statement deadlines",
        )
        incident.record_deadlines(plan.deadlines, workflow.now())
        return incident

    def _arm_deadlines(self) -> None:
        """Every pending deadline gets its timers, whenever a decision added it (SPEC §3)."""
        assert self._incident is not None
        for deadline in self._incident.state.deadlines:
            if deadline.status is DeadlineStatus.pending and deadline.key not in self._watched:
                self._watched.add(deadline.key)
                self._spawn(self._watch(deadline.key), f"watch {deadline.key}")

    async def _watch(self, key: str) -> None:
        """Remind before a deadline and escalate when it passes unmet; follow it if it moves."""
        incident = self._incident
        assert incident is not None
        while True:
            deadline = incident.state.deadline(key)
            if deadline is None or deadline.status is not DeadlineStatus.pending:
                self._watched.discard(key)
                return

            def changed(due: datetime = deadline.due_at) -> bool:
                current = incident.state.deadline(key)
                return (
                    current is None
                    or current.status is not DeadlineStatus.pending
                    or current.due_at != due
                )

            if await self._remind(incident, deadline, changed):
                continue
            if await settled_by(deadline.due_at, changed, deadline.title):
                continue
            self._carry_out(incident.deadline_breached(key, workflow.now()))
            self._publish_search_attributes()

    async def _remind(
        self, incident: Incident, deadline: Deadline, changed: Callable[[], bool]
    ) -> bool:
        """Send the reminders still to come; True if the deadline changed meanwhile."""
        for index, moment in enumerate(deadline.reminders_at, start=1):
            if index in deadline.reminders_sent or moment <= workflow.now():
                continue  # sent already, or for a time already past, which would only confuse
            if await settled_by(moment, changed, f"reminder {index}: {deadline.title}"):
                return True
            self._carry_out(incident.deadline_reminder(deadline.key, index))
        return False

    # -- side effects ---------------------------------------------------------------------------

    def _carry_out(self, outcome: Outcome) -> None:
        for effect in outcome.effects:
            if isinstance(effect, Notify):
                self._spawn(self._notify(effect), effect.summary)
            elif isinstance(effect, Publish):
                draft = self._incident.state.drafts[effect.draft_version - 1]  # type: ignore[union-attr]
                for channel in draft.channels:
                    self._spawn(
                        self._publish_on(effect, channel),
                        f"publish on {channel}",
                        draft_version=effect.draft_version,
                    )
            elif isinstance(effect, StartPost):
                self._spawn(self._run_post(effect), "post workflow", post_id=effect.post_id)
            elif isinstance(effect, SignalPosts):
                self._spawn(self._signal_posts(effect), f"{effect.signal} to posts")
            elif isinstance(effect, FixMoreEvidence):
                self._spawn(self._fix_more_evidence(effect), "fix more evidence")
            elif isinstance(effect, PlanClock):
                self._spawn(self._plan_clock(effect), effect.summary)
        self._arm_deadlines()
        workflow.set_current_details(self._details())

    async def _plan_clock(self, effect: PlanClock) -> None:
        """A deadline that starts mid-incident (yuqing.rules.clocks), its due time from an
        activity."""
        incident = self._incident
        assert incident is not None
        deadline = await planned_clock(incident.state.incident_id, effect, incident.policy)
        self._carry_out(Outcome(effects=incident.clock_planned(deadline, workflow.now())))
        self._publish_search_attributes()

    def _spawn(self, work: Coroutine[Any, Any, None], what: str, **about: str | int) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(work, what, about))
        self._effects.add(task)
        task.add_done_callback(self._effects.discard)

    async def _guarded(
        self, work: Coroutine[Any, Any, None], what: str, about: dict[str, str | int]
    ) -> None:
        """Run an effect; its failure is decided and recorded like any signal, not lost."""
        try:
            await work
        except FailureError as err:
            failure = {"what": what, "error": str(err.cause or err), **about}
            self._receive(EFFECT_FAILED_SIGNAL, failure)

    async def _notify(self, notice: Notify) -> None:
        incident = self._incident
        assert incident is not None
        state = incident.state
        request = SendNotification(
            idempotency_key=f"{state.workflow_id}/{notice.key}",
            incident_id=state.incident_id,
            kind=notice.kind,
            subject=notice.subject,
            body=notice.body,
            recipients=recipients(incident.roster, notice, state.unit),
        )
        if state.drill is not None:
            incident.record_notification(await drill_notice(request, notice.summary))
            return
        if workflow.patched(DELIVERY_PATCH):
            incident.record_notification(await self._notify_in_rounds(notice, request))
            workflow.set_current_details(self._details())
            return
        sent = await workflow.execute_activity_method(
            NotificationActivities.send_notification,
            request,
            start_to_close_timeout=QUICK,
            retry_policy=DELIVERY_RETRY,
            summary=notice.summary,
        )
        incident.record_notification(sent)

    async def _notify_in_rounds(self, notice: Notify, request: SendNotification) -> Notification:
        """The notice sent, shown `pending` in the state meanwhile (workflows/delivery.py)."""
        state = self._incident.state  # type: ignore[union-attr]
        key = request.idempotency_key

        async def waiting(waited: Waiting, channel: str | None) -> None:
            names = [r.name for r in request.recipients]
            entry = pending_notice(key, request.kind, request.subject, names, waited, channel)
            put(state.notifications, entry)
            workflow.set_current_details(self._details())

        sent, waited = await deliver(
            lambda policy, summary: workflow.execute_activity_method(
                NotificationActivities.send_notification,
                request,
                start_to_close_timeout=DELIVERY_TIMEOUT,
                heartbeat_timeout=DELIVERY_HEARTBEAT,
                retry_policy=policy,
                summary=summary,
            ),
            summary=notice.summary,
            on_wait=waiting,
            on_give_up=lambda: forget(state.notifications, key),
        )
        return with_wait(sent, waited)

    async def _publish_on(self, publish: Publish, channel: PublicationChannel) -> None:
        """Publish on one channel; each is recorded as it goes out, the first meets the 24 h."""
        incident = self._incident
        assert incident is not None and incident.state.grade is not None
        state = incident.state
        draft = next(d for d in state.drafts if d.version == publish.draft_version)
        request = PublishStatement(
            idempotency_key=f"{state.workflow_id}/draft-{draft.version}/{channel}",
            incident_id=state.incident_id,
            channel=channel,
            draft_version=draft.version,
            text=draft.text,
            grade=state.grade,
            approvals=state.approvals,
            policy=incident.policy,
        )
        summary = f"publish statement v{draft.version} on {channel}"
        if state.drill is not None:
            publication = await drill_statement(request, summary)
        elif workflow.patched(DELIVERY_PATCH):
            publication = await self._publish_in_rounds(request, summary)
        else:
            publication = await workflow.execute_activity_method(
                PublicationActivities.publish_statement,
                request,
                start_to_close_timeout=QUICK,
                retry_policy=DELIVERY_RETRY,
                summary=summary,
            )
        incident.published_on(publication, workflow.now())
        self._publish_search_attributes()
        workflow.set_current_details(self._details())

    async def _publish_in_rounds(self, request: PublishStatement, summary: str) -> Publication:
        """The statement published, shown `pending` in the state meanwhile."""
        state = self._incident.state  # type: ignore[union-attr]
        key = request.idempotency_key

        async def waiting(waited: Waiting, channel: str | None) -> None:
            entry = Publication(
                channel=request.channel,
                draft_version=request.draft_version,
                idempotency_key=key,
                status="pending",
                **waited.model_dump(),
            )
            put(state.publications, entry)
            workflow.set_current_details(self._details())

        publication, waited = await deliver(
            lambda policy, label: workflow.execute_activity_method(
                PublicationActivities.publish_statement,
                request,
                start_to_close_timeout=DELIVERY_TIMEOUT,
                heartbeat_timeout=DELIVERY_HEARTBEAT,
                retry_policy=policy,
                summary=label,
            ),
            summary=summary,
            on_wait=waiting,
            on_give_up=lambda: forget(state.publications, key),
        )
        return with_wait(publication, waited)

    async def _run_post(self, start: StartPost) -> None:
        incident = self._incident
        assert incident is not None
        post = incident.state.post(start.post_id)
        assert post is not None
        handle = await workflow.start_child_workflow(
            NetizenPostWorkflow.run,
            PostStart(
                post=post,
                policy=incident.policy,
                roster=incident.roster,
                responsible_person=self._responsible,
                features=self._features,
                drill=incident.state.drill is not None,
                **self._post_proofs(incident),
            ),
            id=post.workflow_id,
            static_summary=f"post {post.post_id} on {post.platform} by {post.author}",
        )
        self._posts[start.post_id] = handle
        final = await handle
        if self._current:
            final.trail = []  # the post keeps its own trail
        self._receive(POST_STATUS_SIGNAL, final.model_dump(mode="json"))

    @staticmethod
    def _post_proofs(incident: Incident) -> dict[str, Any]:
        """What a post needs to check its decisions as the incident does (nothing for an
        incident from before signed decisions, whose posts take them unsigned)."""
        if incident.keys is None:
            return {}
        return {
            "authorization": incident.authorization,
            "keys": incident.keys,
            "keys_loaded_at": incident.keys_loaded_at,
        }

    async def _read_posts(self) -> None:
        """Read the state of each post that said it changed, one read per nudge burst."""
        assert self._incident is not None
        while True:
            await workflow.wait_condition(lambda: bool(self._stale_posts))
            post_id = self._stale_posts.pop(0)
            post = self._incident.state.post(post_id)
            if post is None:
                continue
            self._reading_post = True
            try:
                read = await workflow.execute_local_activity_method(
                    PostReadingActivities.read_post,
                    ReadPost(workflow_id=post.workflow_id),
                    start_to_close_timeout=QUICK,
                    summary=f"read post {post_id}",
                )
                self._receive(POST_STATUS_SIGNAL, read.model_dump(mode="json"))
            except FailureError as err:  # the post cannot be read now; its end result will come
                workflow.logger.warning(
                    "could not read a post", extra={"post_id": post_id, "error": str(err)}
                )
            finally:
                self._reading_post = False

    def _post_open(self, post_id: str) -> bool:
        assert self._incident is not None
        post = self._incident.state.post(post_id)
        return post is not None and post.open

    async def _fix_more_evidence(self, effect: FixMoreEvidence) -> None:
        incident = self._incident
        assert incident is not None
        request = FixEvidence(
            incident_id=incident.state.incident_id,
            items=[EvidenceItem.model_validate(item) for item in effect.items],
            first_index=effect.first_index,
        )
        summary = f"fix {len(effect.items)} more evidence item(s)"
        if incident.state.drill is not None:
            fixed = await drill_evidence(request, summary)
        else:
            fixed = await workflow.execute_activity_method(
                EvidenceActivities.fix_evidence,
                request,
                start_to_close_timeout=QUICK,
                summary=summary,
            )
        incident.record_evidence(fixed.items, workflow.now())

    async def _signal_posts(self, effect: SignalPosts) -> None:
        for post_id in effect.post_ids:
            # The child may still be starting when the signal for it is decided.
            await workflow.wait_condition(
                lambda: post_id in self._posts or not self._post_open(post_id)  # noqa: B023
            )
            if post_id not in self._posts:
                continue
            try:
                await self._posts[post_id].signal(effect.signal, effect.payload)
            except FailureError:  # the post finished meanwhile; nothing is left to change
                workflow.logger.info(
                    "post already finished", extra={"post_id": post_id, "signal": effect.signal}
                )

    # -- what the Temporal UI shows --------------------------------------------------------------

    def _publish_search_attributes(self) -> None:
        assert self._incident is not None
        state = self._incident.state
        wanted: dict[str, object] = {
            search_attributes.STAGE.name: state.stage.value,
            search_attributes.SENSITIVITY.name: state.sensitivity.value,
            search_attributes.UNIT.name: state.unit,
            search_attributes.BREACHED.name: any(
                d.status is DeadlineStatus.breached for d in state.deadlines
            ),
        }
        if state.grade is not None:
            wanted[search_attributes.GRADE.name] = state.grade.value
        updates: list[SearchAttributeUpdate[Any]] = []
        for key in search_attributes.ALL:
            if key.name in wanted and self._search.get(key.name) != wanted[key.name]:
                updates.append(key.value_set(wanted[key.name]))  # type: ignore[arg-type]
        if updates:
            workflow.upsert_search_attributes(updates)
            self._search.update(wanted)
        self._publish_memo()

    def _publish_memo(self) -> None:
        # The console's lists read this memo (yuqing.listing) instead of querying each incident.
        assert self._incident is not None
        if not workflow.patched(LIST_MEMO_PATCH):
            return
        memo = incident_memo(self._incident.state, self._incident.policy)
        if memo != self._memo:
            workflow.upsert_memo({MEMO_KEY: memo})
            self._memo = memo

    def _details(self) -> str:
        assert self._incident is not None
        state = self._incident.state
        lines = [
            f"**{state.title}**: stage **{state.stage}**, "
            f"grade **{state.grade or 'not yet assessed'}**",
            f"Unit: {state.unit}; sensitivity: {state.sensitivity}; policy {state.policy_version}",
        ]
        for d in state.deadlines:
            lines.append(f"- {d.title}: {d.status} (due {d.due_at.isoformat(timespec='minutes')})")
        draft = state.current_draft
        if draft is not None:
            lines.append(f"Draft version {draft.version}: {draft.status}")
        refused = state.refusal_count
        if refused:
            lines.append(f"Refused signals: {refused} (see the state query's trail)")
        lines.extend(incident_waiting_lines(state))
        return "\n".join(lines)

    @staticmethod
    def _summary(incident: Incident) -> IncidentSummary:
        state = incident.state
        return IncidentSummary(
            incident_id=state.incident_id,
            grade=state.grade,
            grade_criteria=state.grade_criteria,
            policy_version=state.policy_version,
            discovered_at=state.discovered_at,
            closed_at=state.closed_at,
            close_reason=state.close_reason,
            deadlines={d.key: d.status for d in state.deadlines},
            publications=len(state.publications),
            notifications=len(state.notifications),
            refused_signals=state.refusal_count,
        )
