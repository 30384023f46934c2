"""NetizenPostWorkflow: one netizen post, a child of its incident (SPEC §4).

Its clocks run on working time: due times come from an activity over the working calendar
and are kept in the history; a new calendar moves pending ones only on `calendar_changed`.
Every change is passed to the incident, whose `state` lists its posts.
"""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.exceptions import FailureError

with workflow.unsafe.imports_passed_through():
    from workflows.activity_types import (
        ConfigurationActivities,
        NotificationActivities,
        PostDeadlineActivities,
    )
    from workflows.common import (
        AUDIT_PROJECTION_PATCH,
        BOUNDED_PATCH,
        CONFIG_RETRY,
        DECISION_PATH_PATCH,
        DELIVERY_RETRY,
        NOTICE_TEXT_PATCH,
        QUICK,
        TRAIL_MESSAGES_PATCH,
        Inbound,
        Inboxed,
        Pacer,
        Projector,
        archive_when_closed,
        contract_signals,
        lean_from_start,
        page_request,
        patches_first,
        settled_by,
        swept_from_start,
    )
    from workflows.delivery import (
        DELIVERY_HEARTBEAT,
        DELIVERY_PATCH,
        DELIVERY_TIMEOUT,
        deliver,
        forget,
        pending_notice,
        waiting_lines,
        with_wait,
    )
    from workflows.keys import keys_for
    from workflows.plan_effects import drill_notice
    from yuqing import NETIZEN_POST_WORKFLOW
    from yuqing.decider import said
    from yuqing.decisions import POST_CHANGED_SIGNAL, POST_STATUS_SIGNAL
    from yuqing.effects import LoadSnapshot, PlanPostDeadline, PostStart, SendNotification
    from yuqing.models import POST_SIGNAL_PAYLOADS
    from yuqing.outcomes import Notify, Outcome, PlanDeadline
    from yuqing.post_decisions import Post
    from yuqing.shared_configuration import share_fields
    from yuqing.state import DeadlineStatus, Notification, PostState, TrailPage, Waiting, put


@workflow.defn(name=NETIZEN_POST_WORKFLOW)
@contract_signals(POST_SIGNAL_PAYLOADS)
class NetizenPostWorkflow(Inboxed):
    noun = "post"

    @workflow.init
    def __init__(self, start: PostStart) -> None:
        share_fields(start)  # mem: the incident's rules, one copy per worker
        self._start = start
        # Older inputs carry the rules; newer ones their digests, read in `run`.
        self._decider: Post | None = None
        if start.policy is not None and start.roster is not None:
            self._decider = Post(start, start.policy, start.roster)
        self._open_inbox()
        self._current = False
        self._bounded = False
        self._lean = False
        self._projector: Projector | None = None
        # What the incident was last told of the post (it lists the post without its trail).
        self._told: str | None = None
        self._effects: set[asyncio.Task[None]] = set()
        self._watched: set[str] = set()
        # Plans are computed one at a time, in the order they were decided, so that the last
        # one asked for is the one that stands (an extension after a calendar change, say).
        self._plans: list[PlanDeadline] = []
        self._finished = False
        self._ending = False

    @property
    def _post(self) -> Post:
        assert self._decider is not None, "the post's rules are read first thing in run"
        return self._decider

    @workflow.query(name="state")
    def state(self) -> PostState:
        """The post; its trail the latest lines only (the `trail` query pages the rest)."""
        state = self._decider.state if self._decider is not None else self._start.post
        return state.view() if self._bounded else state

    @workflow.query(name="trail")
    def trail(self, page: Any = None) -> TrailPage:
        """`{"offset": n, "limit": m}`: trail lines from position n (at most 100)."""
        offset, limit = page_request(page)
        state = self._decider.state if self._decider is not None else self._start.post
        return state.page(offset, limit)

    def full_state(self) -> PostState:
        """The state as the workflow holds it (for replays)."""
        return self._decider.state if self._decider is not None else self._start.post

    @workflow.run
    async def run(self, start: PostStart) -> PostState:
        self._current = workflow.patched(DECISION_PATH_PATCH)
        self._bounded = self._current and workflow.patched(BOUNDED_PATCH)
        # record: archived by the sweeper alone, decided before any activity.
        self._swept = swept_from_start()
        self._lean = lean_from_start()
        # console's patches, asked before any activity (workflows/incident.py says why).
        notice_texts = self._bounded and workflow.patched(NOTICE_TEXT_PATCH)
        trail_messages = self._bounded and workflow.patched(TRAIL_MESSAGES_PATCH)
        patches_first(DELIVERY_PATCH)
        if self._decider is None:
            assert start.policy_sha256 is not None and start.roster_sha256 is not None
            config = await ConfigurationActivities.load_snapshot.run_local(
                LoadSnapshot(policy_sha256=start.policy_sha256, roster_sha256=start.roster_sha256),
                start_to_close_timeout=QUICK,
                retry_policy=CONFIG_RETRY,
                summary="read the incident's policy and roster",
            )
            share_fields(config)
            self._decider = Post(start, config.policy, config.roster)
        post = self._post
        post.clip_trail = self._current
        post.bounded = self._bounded
        post.notice_texts = notice_texts
        post.trail_messages = trail_messages
        projector = None
        if self._bounded or workflow.patched(AUDIT_PROJECTION_PATCH):
            self._projector = Projector(
                post.state,
                post.state.post_id,
                lambda: self._ending,
                batched=self._bounded,
                lean=self._lean,
            )
            projector = asyncio.get_running_loop().create_task(self._projector.run())
        self._plans.append(post.first_deadline())
        self._spawn(self._planner())
        if not self._current:
            await self._run_as_before(projector)
            # record (#11): the whole history archived in PostgreSQL once this run has closed.
            await archive_when_closed(post.state.incident_id, post.state.post_id, swept=self._swept)
            return post.state
        # Whatever arrives until the very end is decided: after the answer, it is refused.
        pacer = Pacer(self._bounded)
        while True:
            await workflow.wait_condition(
                lambda: bool(self._inbox) or (post.finished and not self._plans)
            )
            if not self._inbox:
                break
            self._decide(await self._next())
            await self._tell_incident()
            await pacer.decided(bool(self._inbox))
        self._finished = True
        await workflow.wait_condition(lambda: bool(self._inbox) or not self._effects)
        while self._inbox or self._effects:
            if self._inbox:
                self._decide(await self._next())
                await pacer.decided(bool(self._inbox))
            await workflow.wait_condition(lambda: bool(self._inbox) or not self._effects)
        self._closed = f"post {post.state.post_id} is {post.state.status}: it takes no more signals"
        self._ending = True
        if projector is not None:
            await projector
        # record (#11): the whole history archived in PostgreSQL once this run has closed.
        await archive_when_closed(post.state.incident_id, post.state.post_id, swept=self._swept)
        await workflow.wait_condition(workflow.all_handlers_finished)
        if self._bounded:
            # An incident that continued as new is no parent any more: it reads the end.
            await self._tell_incident()
        # The incident has this state as the child's result; it keeps no copy of the trail.
        return post.state.listed() if self._bounded else post.state.model_copy(update={"trail": []})

    async def _next(self) -> Inbound:
        """The next inbox item, once the keys it is signed with are known (workflows.keys)."""
        item = self._take()
        await keys_for(self._post, self._post.state.incident_id, item.signal, item.payload)
        return item

    def _decide(self, item: Inbound) -> None:
        post = self._post
        before = post.state.trail_total
        if item.refusal is not None:
            post.refuse(item.signal, item.payload, item.received_at, item.refusal)
        else:
            self._carry_out(post.apply(item.signal, item.payload, item.received_at, item.problem))
        self._file_answer(item, post.state, before)

    async def _run_as_before(self, projector: asyncio.Task[None] | None) -> None:
        """The post's life as workflows begun before `DECISION_PATH_PATCH` lived it."""
        post = self._post
        while not post.finished:
            await workflow.wait_condition(lambda: bool(self._inbox))
            inbound = self._take()
            self._carry_out(
                post.apply(inbound.signal, inbound.payload, inbound.received_at, inbound.problem)
            )
            await self._tell_incident()
        # Plans already asked for still land (a late one settles at once), then the rest ends.
        await workflow.wait_condition(lambda: not self._plans)
        self._finished = True
        await workflow.wait_condition(lambda: not self._effects)
        self._ending = True
        if projector is not None:
            await projector
        await self._tell_incident()

    # -- deadlines ---------------------------------------------------------------------------

    async def _planner(self) -> None:
        while not self._finished:
            await workflow.wait_condition(lambda: bool(self._plans) or self._finished)
            if self._plans:
                await self._plan(self._plans[0])
                # Taken off the queue only once done: a watcher waits for it before breaching.
                self._plans.pop(0)
                await self._tell_incident()

    async def _plan(self, plan: PlanDeadline) -> None:
        post = self._post
        hours, days = post.plan_request(plan)
        state = post.state
        planned = await PostDeadlineActivities.plan_post_deadline.run(
            PlanPostDeadline(
                incident_id=state.incident_id,
                post_id=state.post_id,
                key=plan.key,
                title=post.title(plan.key),
                starts_at=state.learnt_at,
                working_hours=hours,
                working_days=days,
                remind=post.rules.remind,
                escalate_to=post.rules.escalate_to,
                unit=state.unit,
                responsible_person=self._start.responsible_person,
                **self._plan_rules(),
            ),
            start_to_close_timeout=QUICK,
            retry_policy=CONFIG_RETRY,
            summary=f"plan {post.title(plan.key)} ({plan.reason})",
        )
        post.deadline_planned(
            planned.deadline, planned.provisional_note, plan.reason, workflow.now()
        )
        if plan.key not in self._watched:
            self._watched.add(plan.key)
            self._spawn(self._watch(plan.key))

    def _plan_rules(self) -> dict[str, Any]:
        """What the planning activity reads of the policy (or, in older runs, all of it)."""
        policy = self._post.policy
        if self._bounded:
            lean: dict[str, Any] = {"policy_version": policy.version, "reminders": policy.reminders}
            if policy.posts.drill_speed is not None:
                lean["drill_speed"] = policy.posts.drill_speed
            return lean
        return {"policy": policy}

    async def _watch(self, key: str) -> None:
        """Remind before the deadline, escalate when it passes; follow it when it moves."""
        post = self._post
        reminded: set[datetime] = set()
        while True:
            deadline = post.state.deadline(key)
            if deadline is None or deadline.status is not DeadlineStatus.pending:
                return
            due = deadline.due_at
            upcoming = [
                m for m in deadline.reminders_at if m not in reminded and m > workflow.now()
            ]
            moment = upcoming[0] if upcoming else due

            def changed(due: datetime = due) -> bool:
                current = post.state.deadline(key)
                return (
                    current is None
                    or current.status is not DeadlineStatus.pending
                    or current.due_at != due
                )

            if await settled_by(moment, changed, f"{deadline.title}"):
                continue
            if moment != due:
                reminded.add(moment)
                index = len(deadline.reminders_sent) + 1 if self._bounded else len(reminded)
                self._carry_out(post.deadline_reminder(key, index))
                continue
            if any(plan.key == key for plan in self._plans):
                # A re-plan of this deadline is under way; it may move the due time.
                await workflow.wait_condition(lambda: all(p.key != key for p in self._plans))
                continue
            self._carry_out(post.deadline_breached(key, workflow.now()))
            await self._tell_incident()
            return

    # -- side effects ------------------------------------------------------------------------

    def _carry_out(self, outcome: Outcome) -> None:
        for effect in outcome.effects:
            if isinstance(effect, Notify):
                self._spawn(self._notify(effect))
            elif isinstance(effect, PlanDeadline):
                self._plans.append(effect)

    def _spawn(self, work: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(self._guarded(work))
        self._effects.add(task)
        task.add_done_callback(self._effects.discard)

    async def _guarded(self, work: Coroutine[Any, Any, None]) -> None:
        try:
            await work
        except FailureError as err:  # recorded on the post, not lost in a task
            self._post.record(workflow.now(), "effect_failed", str(err.cause or err))
            await self._tell_incident()

    async def _notify(self, notice: Notify) -> None:
        state = self._post.state
        request = SendNotification(
            idempotency_key=f"{state.workflow_id}/{notice.key}",
            incident_id=state.incident_id,
            kind=notice.kind,
            subject=notice.subject,
            # hist (lean): a notice kept as data is rendered by the activity, body and all.
            body=""
            if self._lean and notice.text is not None
            else f"{notice.body}\n\n{state.platform} · {state.author}: {state.content}",
            recipients=self._post.roster.recipients(notice.roles, state.unit),
            text=notice.text,
        )
        if self._start.drill:
            sent = await drill_notice(request, notice.summary)
        elif workflow.patched(DELIVERY_PATCH):
            sent = await self._notify_in_rounds(notice, request)
        else:
            sent = await NotificationActivities.send_notification.run(
                request,
                start_to_close_timeout=QUICK,
                retry_policy=DELIVERY_RETRY,
                summary=notice.summary,
            )
        assert sent.sent_at is not None
        self._post.record(
            sent.sent_at,
            "notified",
            f"{sent.kind} to {', '.join(sent.recipients)}",
            message=said(
                "msg.notified" if sent.channel != "outbox" else "msg.notified_nowhere",
                kind=sent.kind,
                people=sent.recipients,
                subject=sent.subject,
            ),
        )
        await self._tell_incident()

    async def _notify_in_rounds(self, notice: Notify, request: SendNotification) -> Notification:
        """The notice sent; while a channel keeps it waiting, the post lists it as pending (and
        so does its incident's state, which lists the post)."""
        pending = self._post.state.pending_notifications
        key = request.idempotency_key

        async def waiting(waited: Waiting, channel: str | None) -> None:
            names = [r.name for r in request.recipients]
            put(pending, pending_notice(key, request.kind, request.subject, names, waited, channel))
            self._show_waiting()
            await self._tell_incident()

        def given_up() -> None:
            forget(pending, key)
            self._show_waiting()

        sent, waited = await deliver(
            lambda policy, summary: NotificationActivities.send_notification.run(
                request,
                start_to_close_timeout=DELIVERY_TIMEOUT,
                heartbeat_timeout=DELIVERY_HEARTBEAT,
                retry_policy=policy,
                summary=summary,
            ),
            summary=notice.summary,
            on_wait=waiting,
            on_give_up=given_up,
        )
        if waited is not None:
            forget(pending, key)
            self._show_waiting()
        return with_wait(sent, waited)

    def _show_waiting(self) -> None:
        """The Temporal UI's current details: the post's notices still waiting, if any."""
        state = self._post.state
        lines = waiting_lines(state.pending_notifications, [])
        head = f"**Post {state.post_id}** on {state.platform}: {state.status}"
        workflow.set_current_details("\n".join([head, *lines]) if lines else head)

    async def _tell_incident(self) -> None:
        parent = workflow.info().parent
        if parent is None:
            return
        handle = workflow.get_external_workflow_handle(parent.workflow_id)
        if self._bounded:
            # The incident lists the post without its trail: a refusal changes nothing there.
            told = self._post.state.listed().model_dump_json(
                exclude={"trail_offset", "refused_total", "revision", "omitted"}
            )
            if told == self._told:
                return
            self._told = told
        self._post.state.revision += 1
        try:
            if self._current:
                await handle.signal(POST_CHANGED_SIGNAL, {"post_id": self._post.state.post_id})
            else:
                await handle.signal(POST_STATUS_SIGNAL, self._post.state)
        except FailureError:  # the incident may have ended; the post goes on regardless
            workflow.logger.warning(
                "could not pass the post's state to its incident",
                extra={"post_id": self._post.state.post_id},
            )
