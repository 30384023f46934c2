"""IncidentWorkflow: one public-opinion incident carried through the plan (SPEC §2).

Signals land in an inbox and are decided one by one, in arrival order, by `yuqing.decisions`;
deadlines run as durable timers beside them; notices and publications go out through
activities. The workflow holds no clock of its own: due times come from an activity and are
kept in the history, and `workflow.now()` only stamps what happens.

An incident lives as long as its story: when its history grows long it continues as new
(`Continued`), carrying its whole state but the trail lines already in the audit table, the
effects under way (done again, idempotently), and its posts, which run on by themselves.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Callable, Coroutine
from datetime import datetime
from typing import Any

from temporalio import workflow
from temporalio.common import SearchAttributeUpdate
from temporalio.exceptions import ApplicationError, FailureError
from temporalio.workflow import ChildWorkflowHandle, ParentClosePolicy

with workflow.unsafe.imports_passed_through():
    from pydantic import ValidationError

    from workflows.activity_types import (
        ConfigurationActivities,
        EvidenceActivities,
        NotificationActivities,
        PostReadingActivities,
        PublicationActivities,
        plan_deadlines,
    )
    from workflows.common import (
        AUDIT_PROJECTION_PATCH,
        BOUNDED_PATCH,
        CONFIG_RETRY,
        DECISION_PATH_PATCH,
        DELIVERY_RETRY,
        INTERNAL,
        NOTICE_TEXT_PATCH,
        PLAN_MESSAGES_PATCH,
        QUICK,
        SPEED_PATCH,
        TRAIL_MESSAGES_PATCH,
        UPDATE,
        Inbound,
        Inboxed,
        Pacer,
        Projector,
        Settling,
        archive_when_closed,
        contract_signals,
        lean_from_start,
        leaner_from_start,
        page_request,
        patches_first,
        said,
        settled_by,
        swept_from_start,
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
        plan_features_carried,
        planned_clock,
        recipients,
    )
    from workflows.post import NetizenPostWorkflow
    from yuqing import INCIDENT_WORKFLOW, incident_workflow_id, search_attributes
    from yuqing.decider import clip, contains_nul, describe
    from yuqing.decisions import (
        EFFECT_FAILED_SIGNAL,
        POST_CHANGED_SIGNAL,
        POST_STATUS_SIGNAL,
        Incident,
    )
    from yuqing.effects import (
        CarriedEffect,
        Configuration,
        Continued,
        FixEvidence,
        LoadConfiguration,
        PlanDeadlines,
        PostStart,
        PublishStatement,
        ReadPost,
        SendNotification,
    )
    from yuqing.limits import NAME_CHARS, TEXT_CHARS, UNBOUNDED
    from yuqing.listing import MEMO_KEY, incident_memo, memo_inputs, memo_parts
    from yuqing.models import (
        SIGNAL_PAYLOADS,
        DrillMark,
        EvidenceItem,
        IncidentReport,
        PublicationChannel,
        report_time_problem,
    )
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
    from yuqing.shared_configuration import share_fields
    from yuqing.state import (
        Deadline,
        DeadlineStatus,
        Draft,
        DrillInfo,
        IncidentState,
        IncidentSummary,
        Notification,
        PostState,
        Publication,
        TrailPage,
        Waiting,
        put,
    )


# Incidents that began before the console's memo existed replay without it.
LIST_MEMO_PATCH = "console-list-memo"
# The same asked at the top of `run`, before any activity. Asked first after the intake's local
# activity, a replay could miss its marker: sdk-core merges a workflow task that recorded only
# the local activity's marker into the next, and the patch lookahead of that activation does not
# see the marker (REQUESTS.md, record's NDE report). Histories with the old marker keep it.
MEMO_AT_START_PATCH = "console-memo-at-start"
# (tools) Runs that begin now copy no trail lines once their continue-as-new is ready: the lines
# not copied go with it (IncidentWorkflow._yielding). Those before it copied them first, or not,
# as their tasks happened to fall.
PROJECTOR_YIELDS_PATCH = "tools-projector-yields"
# (replay) Runs that begin now continue as new past 2,000 events (CONTINUE_AFTER_EVENTS_SHORTER),
# those before it past 4,000 (CONTINUE_AFTER_EVENTS_BEFORE): see CONTINUE_AFTER_EVENTS for why.
SHORTER_RUNS_PATCH = "replay-shorter-runs"
# (replay) And runs that begin now past 1,000 (CONTINUE_AFTER_EVENTS).
RUNS_OF_1000_PATCH = "replay-runs-of-1000"


@workflow.defn(name=INCIDENT_WORKFLOW)
@contract_signals(SIGNAL_PAYLOADS)
class IncidentWorkflow(Inboxed):
    noun = "incident"
    # Set by `yuqing audit --replay` (yuqing.audit.history) on the instance it replays, to
    # replay a run from before PROJECTOR_YIELDS_PATCH as it ran when its last task met the
    # race that patch removes: never set in a worker.
    _replayed_yielding = False

    @workflow.init
    def __init__(self, report: Any) -> None:
        self._open_inbox()
        # (replay) The run's Info, taken once: the SDK hands the same object to every
        # workflow.info() of a run, and its history length, size and continue-as-new
        # suggestion are read live through it (`_continue_due` asks them at each condition
        # check: a lookup of the runtime and the interceptors' chain for each, saved).
        self._info = workflow.info()
        # Posts whose child said it changed, to be read from the child.
        self._stale_posts: list[str] = []
        self._reading_post = False
        self._watched: set[str] = set()
        # Set in `run` from the patches: which decision path this incident runs.
        self._current = False
        self._bounded = False
        self._lean = False
        self._trail_messages = False
        self._plan_messages = False
        self._notice_texts = False
        self._memo_at_start = False
        self._settling = Settling(False)
        # (speed) Clocks being planned by a local activity: the run continues as new only
        # once none is (as with a post being read), so no local activity is left behind.
        self._planning = 0
        # Past how many events of history a run continues as new (set in `run`).
        self._events_bound = CONTINUE_AFTER_EVENTS_BEFORE
        # hist: set in `run` (workflows/common.said reads it).
        self._unsaid = False
        self._effects: set[asyncio.Task[None]] = set()
        # Effects under way, which the next run would do again (continue-as-new).
        self._pending: dict[int, _UnderWay] = {}
        self._spawned = 0
        self._incident: Incident | None = None
        self._config: Configuration | None = None
        self._search: dict[str, object] = {}
        self._memo: dict[str, Any] | None = None
        self._memo_parts: dict[str, Any] = {}
        # What the memo and the search attributes were last built from (listing.memo_inputs).
        self._shown: tuple[Any, ...] | None = None
        self._posts: dict[str, ChildWorkflowHandle[NetizenPostWorkflow, PostState]] = {}
        # Posts whose workflow is known to have started (by this run or an earlier one).
        self._started_posts: set[str] = set()
        self._responsible: str | None = None
        self._ending = False
        self._projector: Projector | None = None
        self._runs = 0
        # Inbox items decided by this run.
        self._decided = 0
        # The plan's later rules this incident runs under (workflows.plan_effects).
        self._features: list[str] = []
        self._input_error: str | None = None
        self._report: IncidentReport | None = None
        self._state: IncidentState | None = None

    # -- the wire contract: signals (one per payload table entry), `decide`, the queries ------

    @workflow.query(name="state")
    def state(self) -> IncidentState:
        """The incident; small however long it lives (README "The state")."""
        state = self.full_state()
        return state.view() if self._bounded else state

    @workflow.query(name="trail")
    def trail(self, page: Any = None) -> TrailPage:
        """`{"offset": n, "limit": m}`: trail lines from position n (at most 100)."""
        offset, limit = page_request(page)
        return self.full_state().page(offset, limit)

    @workflow.query(name="draft")
    def draft(self, version: Any = None) -> Draft:
        """A draft version with its whole text."""
        found = self.full_state().draft(version) if isinstance(version, int) else None
        if found is None:
            raise ApplicationError(f"the incident has no draft version {version!r}")
        return found

    def full_state(self) -> IncidentState:
        """The state as the workflow holds it (for replays and the queries above)."""
        if self._incident is not None:
            return self._incident.state
        if self._state is None:
            raise ApplicationError(self._input_error or "the incident has no state yet")
        return self._state

    def _receive(self, signal: str, payload: Any) -> None:
        self._put(Inbound(signal, payload, workflow.now(), origin=INTERNAL))

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
        self._current = workflow.patched(DECISION_PATH_PATCH)
        self._bounded = self._current and workflow.patched(BOUNDED_PATCH)
        # console's patches, all asked here, before the intake's activities (see
        # MEMO_AT_START_PATCH for why); the intake records the first trail lines.
        self._memo_at_start = workflow.patched(MEMO_AT_START_PATCH)
        self._trail_messages = self._bounded and workflow.patched(TRAIL_MESSAGES_PATCH)
        self._notice_texts = self._bounded and workflow.patched(NOTICE_TEXT_PATCH)
        # i18n: the plan's own lines with their message too (asked here, like console's).
        self._plan_messages = self._trail_messages and workflow.patched(PLAN_MESSAGES_PATCH)
        # record: archived by the sweeper alone, decided before any activity.
        self._swept = swept_from_start()
        # hist: lean histories (workflows/common.LEAN_HISTORY_PATCH), and leaner (no
        # summaries, the memo's times to the second: LEANER_HISTORY_PATCH).
        self._lean = lean_from_start()
        self._unsaid = self._lean and leaner_from_start()
        # core: every other patch asked here too (workflows/common.patches_first).
        patches_first(SIGNED_DECISIONS_PATCH, DELIVERY_PATCH)
        # tools: the projection yields to a continue-as-new that is ready (see _yielding).
        self._projector_yields = self._bounded and (
            workflow.patched(PROJECTOR_YIELDS_PATCH) or self._replayed_yielding
        )
        # speed: one trail copy per decision and what it sent; clocks planned locally.
        self._settling = Settling(self._projector_yields and workflow.patched(SPEED_PATCH))
        # replay: shorter runs (CONTINUE_AFTER_EVENTS).
        if self._settling.enabled and workflow.patched(SHORTER_RUNS_PATCH):
            self._events_bound = CONTINUE_AFTER_EVENTS_SHORTER
            if workflow.patched(RUNS_OF_1000_PATCH):
                self._events_bound = CONTINUE_AFTER_EVENTS
        continued = _continued(report)
        if continued is not None:
            incident = self._resume(continued)
        else:
            state = self._take_report(report)
            self._features = plan_features()
            incident = await self._intake(state)
        incident.clip_trail = self._current
        incident.bounded = self._bounded
        incident.notice_texts = self._notice_texts
        incident.trail_messages = self._trail_messages
        incident.plan_messages = self._plan_messages
        self._incident = incident
        self._publish_search_attributes()
        projector = None
        if self._bounded or workflow.patched(AUDIT_PROJECTION_PATCH):
            self._projector = Projector(
                incident.state,
                None,
                lambda: self._ending,
                batched=self._bounded,
                lean=self._lean,
                yielding=self._yielding if self._projector_yields else None,
                settling=self._settling,
            )
            projector = asyncio.get_running_loop().create_task(self._projector.run())
        self._arm_deadlines()
        # Posts of this incident's own children say they changed (or, in workflows older than
        # this, send their state); the reader reads each from the child.
        reader = asyncio.get_running_loop().create_task(self._read_posts())
        if continued is not None:
            self._redo(continued.effects)
        # Reviewed is the end; notices and posts still under way finish first, and whatever
        # they or anyone send meanwhile is decided (or refused) like any other signal.
        pacer = Pacer(self._bounded)
        while True:
            await workflow.wait_condition(
                lambda: bool(self._inbox) or self._done(incident) or self._continue_due()
            )
            if self._done(incident):
                break
            if self._continue_due() and self._carryable():
                await self._continue_as_new(incident)  # unless an update came meanwhile
                continue
            if self._inbox:
                item = self._take()
                # A key the incident has not seen (or an old copy): read the keys first.
                await keys_for(incident, incident.state.incident_id, item.signal, item.payload)
                self._decide(incident, item)
                self._decided += 1
                await pacer.decided(bool(self._inbox))
        self._ending = True
        self._closed = f"incident {incident.state.incident_id} has ended: it takes no more signals"
        reader.cancel()
        if projector is not None:
            await projector
        # record (#11): the whole history archived in PostgreSQL once this run has closed.
        await archive_when_closed(incident.state.incident_id, None, swept=self._swept)
        if self._current:
            await workflow.wait_condition(workflow.all_handlers_finished)
        return self._summary(incident)

    def _done(self, incident: Incident) -> bool:
        state = incident.state
        if state.stage != "reviewed" or self._effects or self._stale_posts or self._reading_post:
            return False
        # A post begun by an earlier run is no child of this one: its end is read from it.
        return not self._bounded or not any(p.open for p in state.posts)

    def _take_report(self, report: Any) -> IncidentState:
        """The incident as reported, or the workflow fails saying what is wrong (SPEC §2.2)."""
        info = workflow.info()
        try:
            self._report = _read_report(report, self._bounded)
        except ValueError as err:
            self._input_error = f"the IncidentReport is malformed: {err}"
            raise ApplicationError(
                self._input_error, type="InvalidReport", non_retryable=True
            ) from err
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
        expected_id = incident_workflow_id(self._state.incident_id)
        if self._state.workflow_id != expected_id:
            # Keys of notices and publications derive from the id: keep it the contract's.
            raise ApplicationError(
                f"workflow id {self._state.workflow_id!r} does not match the incident: "
                f"start it as {expected_id!r}",
                type="InvalidReport",
                non_retryable=True,
            )
        return self._state

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
            outcome = incident.apply(
                item.signal, item.payload, item.received_at, item.problem, internal=internal
            )
            # A refusal changes nothing but the trail: nothing to carry out or show anew.
            if outcome.refusal is None:
                self._carry_out(outcome)
                self._publish_search_attributes()
        self._file_answer(item, incident.state, before)

    def _drill_asked(self) -> DrillMark | None:
        """The drill the input asks for, if this incident knows drills (§5.3)."""
        report = self._report
        if report is None or PLAN_RULES not in self._features:
            return None
        return report.drill

    async def _intake(self, state: IncidentState) -> Incident:
        """Load the rules in force, fix the evidence, and plan the deadlines."""
        config = await ConfigurationActivities.load_configuration.run(
            LoadConfiguration(
                incident_id=state.incident_id,
                drill_speed=drill.speed if (drill := self._drill_asked()) else None,
                for_workflow=self._lean,
            ),
            start_to_close_timeout=QUICK,
            retry_policy=CONFIG_RETRY,
            summary=said("load the policy and the roster"),
        )
        # mem: one copy of each policy, roster, authorization and keyring per worker, not one
        # per incident (same content, so the same decisions; yuqing.shared_configuration).
        share_fields(config)
        self._config = config
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
        if (drill := self._drill_asked()) is not None:
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
        incident.trail_messages = self._trail_messages
        incident.plan_messages = self._plan_messages
        report = self._report
        assert report is not None
        incident.record_discovery(report.source)
        incident.record_submission(report.submission_id, len(report.evidence))
        if report.evidence:
            fix = FixEvidence(incident_id=state.incident_id, items=report.evidence)
            summary = f"fix {len(report.evidence)} evidence item(s)"
            if state.drill is not None:
                fixed = await drill_evidence(fix, summary)
            else:
                fixed = await EvidenceActivities.fix_evidence.run(
                    fix,
                    start_to_close_timeout=QUICK,
                    summary=said(summary),
                )
            incident.record_evidence(fixed.items, workflow.now())
        request = PlanDeadlines(
            incident_id=state.incident_id,
            discovered_at=state.discovered_at,
            sensitivity=state.sensitivity,
            unit=state.unit,
            responsible_person=heads[0].id,
            policy=policy,
        )
        if self._bounded:
            # A computation, not I/O: a local activity keeps only its result in the history.
            plan = await plan_deadlines.run_local(
                request,
                start_to_close_timeout=QUICK,
                summary=said("plan the report and statement deadlines"),
            )
        else:
            plan = await plan_deadlines.run(
                request,
                start_to_close_timeout=QUICK,
                summary=said("plan the report and statement deadlines"),
            )
        incident.record_deadlines(plan.deadlines, workflow.now())
        return incident

    # -- continuing as new -------------------------------------------------------------------

    def _continuing(self) -> bool:
        return self._continue_due()

    def _continue_due(self) -> bool:
        if not self._bounded or self._ending:
            return False
        info = self._info
        return (
            info.is_continue_as_new_suggested()
            or info.get_current_history_length() > self._events_bound
            or info.get_current_history_size() > CONTINUE_AFTER_BYTES
            # Servers that do not tell the history's length (the time-skipping test server):
            # each item decided took at least one event, an update two.
            or self._decided > self._continue_after()
        )

    def _continue_after(self) -> int:
        """The bound this incident began under (kept in its history with its configuration)."""
        config = self._config
        found = config.continue_after_decisions if config is not None else None
        return found or CONTINUE_AFTER_DECISIONS

    def _yielding(self) -> bool:
        """(tools) Ready to continue as new but for the lines not copied yet, which go with it.

        Without it, in the task where the run's continue-as-new first falls due as a copy ends,
        the outcome hung on which resumed first: the projection (a new copy, then continue) or
        the run (continue at once, carrying the lines). That order can differ between the run
        and its replay: an update the validator refused in that task leaves nothing in the
        history, yet it made the SDK check the run's conditions once more before the copy's
        end was applied ("Activity machine does not handle this event:
        WorkflowExecutionContinuedAsNew" on replay). Decided by the state alone, it cannot.
        """
        projector = self._projector
        return (
            projector is not None
            and self._continue_due()
            and self._carryable()
            and projector.unprojected() <= CARRIED_TRAIL_LINES
        )

    def _carryable(self) -> bool:
        """Whether the inbox can go to the next run: no update waiting for its answer here,
        and its signals small enough to carry (else they are decided first)."""
        return not self._updates_waiting and self._inbox_bytes <= CARRIED_INBOX_BYTES

    async def _continue_as_new(self, incident: Incident) -> None:
        """Continue as new once nothing is in hand; returns if an update came meanwhile.

        The projection copies the lines it can first (the next run carries only what it has
        not copied), and reads of posts under way finish; signals received meanwhile go with.
        """
        projector = self._projector
        assert projector is not None and self._config is not None
        # record (#11): this run is archived once it has closed, like a final one. Asked before
        # waiting, so no update can arrive between the ask and the continue; asking again (when
        # an update came meanwhile) names the same archiver.
        await archive_when_closed(incident.state.incident_id, None, swept=self._swept)
        while True:
            await workflow.wait_condition(
                lambda: (
                    not self._carryable()
                    or (
                        not projector.busy
                        and not self._reading_post
                        and not self._planning
                        and workflow.all_handlers_finished()
                        and projector.unprojected() <= CARRIED_TRAIL_LINES
                    )
                )
            )
            if not self._carryable():
                return
            # Tasks woken with this one may have begun a copy or a read: check again, now.
            if (
                not projector.busy
                and not self._reading_post
                and not self._planning
                and workflow.all_handlers_finished()
            ):
                break
        projector.hold = True  # no copy may begin in this run any more
        state = incident.state
        held = state.trail[projector.position - state.trail_offset :]
        carried = state.carried().model_copy(
            update={"trail": held, "trail_offset": projector.position}
        )
        workflow.continue_as_new(
            Continued(
                state=carried,
                configuration=self._config,
                responsible_person=self._responsible,
                effects=[under_way.carried() for under_way in self._pending.values()],
                runs=self._runs + 1,
                extras=incident.carried(),
                stale_posts=self._stale_posts,
                inbox=[item.carried() for item in self._inbox],
            )
        )

    def _resume(self, continued: Continued) -> Incident:
        """Take up the incident where the previous run left it."""
        self._runs = continued.runs
        # Signals the previous run received and had not decided: first in line here.
        for item in reversed(continued.inbox):
            self._put(Inbound.of(item), first=True)
        share_fields(continued.configuration)  # mem: as at intake
        self._config = continued.configuration
        self._responsible = continued.responsible_person
        self._state = state = continued.state
        config = self._config
        # The plan's later rules as the incident began under them (not as this run would find).
        self._features = plan_features_carried(continued.extras)
        incident = Incident(
            state,
            config.policy,
            config.roster,
            self._features,
            authorization=config.authorization,
            keys=config.keys,
            keys_loaded_at=workflow.now() if config.keys is not None else None,
        )
        incident.restore(continued.extras)
        unstarted = {e.data.get("post_id") for e in continued.effects if e.kind == "StartPost"}
        self._started_posts = {p.post_id for p in state.posts if p.post_id not in unstarted}
        # What changed in a post while the runs changed over: read every open one once.
        for post_id in [*continued.stale_posts, *(p.post_id for p in state.posts if p.open)]:
            if post_id in self._started_posts and post_id not in self._stale_posts:
                self._stale_posts.append(post_id)
        return incident

    def _redo(self, effects: list[CarriedEffect]) -> None:
        """The effects the previous run had under way; their keys make them happen once."""
        for carried in effects:
            effect = _effect(carried)
            channel = carried.data.get("channel")
            if isinstance(effect, Publish) and channel is not None:
                self._start_publication(effect, PublicationChannel(channel))
            else:
                self._carry_out(Outcome(effects=[effect]))

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
            carried = _UnderWay(effect) if self._bounded else None
            if isinstance(effect, Notify):
                self._spawn(self._notify(effect), effect.summary, carried)
            elif isinstance(effect, Publish):
                draft = self._incident.state.drafts[effect.draft_version - 1]  # type: ignore[union-attr]
                for channel in draft.channels:
                    self._start_publication(effect, channel)
            elif isinstance(effect, StartPost):
                self._spawn(
                    self._run_post(effect), "post workflow", carried, post_id=effect.post_id
                )
            elif isinstance(effect, SignalPosts):
                work = self._signal_posts(effect, carried)
                self._spawn(work, f"{effect.signal} to posts", carried)
            elif isinstance(effect, FixMoreEvidence):
                self._spawn(self._fix_more_evidence(effect), "fix more evidence", carried)
            elif isinstance(effect, PlanClock):
                self._spawn(self._plan_clock(effect), effect.summary, carried)
        self._arm_deadlines()
        workflow.set_current_details(self._details())

    async def _plan_clock(self, effect: PlanClock) -> None:
        """A deadline that starts mid-incident (yuqing.rules.clocks), its due time from an
        activity."""
        incident = self._incident
        assert incident is not None
        local = self._settling.enabled
        with self._settling.first_try():
            self._planning += local
            try:
                deadline = await planned_clock(
                    incident.state.incident_id, effect, incident.policy, local=local
                )
            finally:
                self._planning -= local
            self._carry_out(Outcome(effects=incident.clock_planned(deadline, workflow.now())))
            self._publish_search_attributes()

    def _start_publication(self, effect: Publish, channel: PublicationChannel) -> None:
        carried = None
        if self._bounded:
            carried = _UnderWay(effect, {"channel": channel})
        self._spawn(
            self._publish_on(effect, channel),
            f"publish on {channel}",
            carried,
            draft_version=effect.draft_version,
        )

    def _spawn(
        self,
        work: Coroutine[Any, Any, None],
        what: str,
        carried: _UnderWay | None = None,
        **about: str | int,
    ) -> None:
        self._spawned += 1
        if carried is not None:
            self._pending[self._spawned] = carried
        task = asyncio.get_running_loop().create_task(
            self._guarded(work, what, about, self._spawned)
        )
        self._effects.add(task)
        task.add_done_callback(self._effects.discard)

    async def _guarded(
        self, work: Coroutine[Any, Any, None], what: str, about: dict[str, str | int], number: int
    ) -> None:
        """Run an effect; its failure is decided and recorded like any signal, not lost."""
        try:
            await work
        except FailureError as err:
            error = clip(str(err.cause or err), TEXT_CHARS)
            failure = {"what": clip(what, NAME_CHARS), "error": error, **about}
            self._receive(EFFECT_FAILED_SIGNAL, failure)
        finally:
            self._pending.pop(number, None)

    async def _notify(self, notice: Notify) -> None:
        with self._settling.first_try() as settled:
            incident = self._incident
            assert incident is not None
            state = incident.state
            request = SendNotification(
                idempotency_key=f"{state.workflow_id}/{notice.key}",
                incident_id=state.incident_id,
                kind=notice.kind,
                subject=notice.subject,
                # hist (lean): a notice kept as data is rendered by the activity, body and all.
                body="" if self._lean and notice.text is not None else notice.body,
                recipients=recipients(incident.roster, notice, state.unit),
                text=notice.text,
            )
            if state.drill is not None:
                incident.record_notification(await drill_notice(request, notice.summary))
                return
            if workflow.patched(DELIVERY_PATCH):
                incident.record_notification(await self._notify_in_rounds(notice, request, settled))
                workflow.set_current_details(self._details())
                return
            sent = await NotificationActivities.send_notification.run(
                request,
                start_to_close_timeout=QUICK,
                retry_policy=DELIVERY_RETRY,
                summary=notice.summary,
            )
            incident.record_notification(sent)

    async def _notify_in_rounds(
        self, notice: Notify, request: SendNotification, settled: Callable[[], None]
    ) -> Notification:
        """The notice sent, shown `pending` in the state meanwhile (workflows/delivery.py)."""
        state = self._incident.state  # type: ignore[union-attr]
        key = request.idempotency_key

        async def waiting(waited: Waiting, channel: str | None) -> None:
            names = [r.name for r in request.recipients]
            entry = pending_notice(key, request.kind, request.subject, names, waited, channel)
            put(state.notifications, entry)
            workflow.set_current_details(self._details())
            settled()  # its first try is over: the copy need not wait for the channel

        sent, waited = await deliver(
            lambda policy, summary: NotificationActivities.send_notification.run(
                request,
                start_to_close_timeout=DELIVERY_TIMEOUT,
                heartbeat_timeout=DELIVERY_HEARTBEAT,
                retry_policy=policy,
                summary=said(summary),
            ),
            summary=notice.summary,
            on_wait=waiting,
            on_give_up=lambda: forget(state.notifications, key),
        )
        return with_wait(sent, waited)

    async def _publish_on(self, publish: Publish, channel: PublicationChannel) -> None:
        """Publish on one channel; each is recorded as it goes out, the first meets the 24 h."""
        with self._settling.first_try() as settled:
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
                **self._policy_by_digest(incident),
            )
            summary = f"publish statement v{draft.version} on {channel}"
            if state.drill is not None:
                publication = await drill_statement(request, summary)
            elif workflow.patched(DELIVERY_PATCH):
                publication = await self._publish_in_rounds(request, summary, settled)
            else:
                publication = await PublicationActivities.publish_statement.run(
                    request,
                    start_to_close_timeout=QUICK,
                    retry_policy=DELIVERY_RETRY,
                    summary=summary,
                )
            incident.published_on(publication, workflow.now())
            self._publish_search_attributes()
            workflow.set_current_details(self._details())

    def _policy_by_digest(self, incident: Incident) -> dict[str, Any]:
        """The policy for an activity to check against: its digest, or (older runs) itself."""
        config = self._config
        if self._bounded and config is not None and config.policy_sha256 is not None:
            return {"policy_sha256": config.policy_sha256}
        return {"policy": incident.policy}

    async def _publish_in_rounds(
        self, request: PublishStatement, summary: str, settled: Callable[[], None]
    ) -> Publication:
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
            settled()

        publication, waited = await deliver(
            lambda policy, label: PublicationActivities.publish_statement.run(
                request,
                start_to_close_timeout=DELIVERY_TIMEOUT,
                heartbeat_timeout=DELIVERY_HEARTBEAT,
                retry_policy=policy,
                summary=said(label),
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
        config = self._config
        if self._bounded and config is not None and config.roster_sha256 is not None:
            rules: dict[str, Any] = {
                "policy_sha256": config.policy_sha256,
                "roster_sha256": config.roster_sha256,
            }
        else:
            rules = {"policy": incident.policy, "roster": incident.roster}
        options: dict[str, Any] = {}
        if self._bounded:
            # The post runs on when the incident continues as new (or ends with it open).
            options["parent_close_policy"] = ParentClosePolicy.ABANDON
        handle = await workflow.start_child_workflow(
            NetizenPostWorkflow.run,
            PostStart(
                post=post,
                responsible_person=self._responsible,
                **rules,
                features=self._features,
                drill=incident.state.drill is not None,
                **self._post_proofs(incident),
            ),
            id=post.workflow_id,
            static_summary=f"post {post.post_id} on {post.platform} by {post.author}",
            **options,
        )
        self._posts[start.post_id] = handle
        self._started_posts.add(start.post_id)
        self._drop_pending("StartPost", start.post_id)
        final = await handle
        if self._current:
            final = final.listed()  # the post keeps its own trail
        self._receive(POST_STATUS_SIGNAL, final.model_dump(mode="json"))

    def _drop_pending(self, kind: str, post_id: str) -> None:
        for number, under_way in list(self._pending.items()):
            if under_way.kind == kind and under_way.get("post_id") == post_id:
                del self._pending[number]

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
                read = await PostReadingActivities.read_post.run_local(
                    ReadPost(workflow_id=post.workflow_id),
                    start_to_close_timeout=QUICK,
                    summary=said(f"read post {post_id}"),
                )
                self._receive(POST_STATUS_SIGNAL, read.listed().model_dump(mode="json"))
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
        with self._settling.first_try():
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
                fixed = await EvidenceActivities.fix_evidence.run(
                    request,
                    start_to_close_timeout=QUICK,
                    summary=said(summary),
                )
            incident.record_evidence(fixed.items, workflow.now())

    async def _signal_posts(self, effect: SignalPosts, carried: _UnderWay | None) -> None:
        for number, post_id in enumerate(effect.post_ids):
            # The child may still be starting when the signal for it is decided.
            await workflow.wait_condition(
                lambda: (
                    post_id in self._started_posts  # noqa: B023
                    or post_id in self._posts  # noqa: B023
                    or not self._post_open(post_id)  # noqa: B023
                )
            )
            post = self._incident.state.post(post_id) if self._incident else None
            target: Any = self._posts.get(post_id)
            if target is None and post is not None and post_id in self._started_posts:
                # Started by an earlier run: no child of this one, the same workflow all the same.
                target = workflow.get_external_workflow_handle(post.workflow_id)
            if target is not None:
                try:
                    await target.signal(effect.signal, effect.payload)
                except FailureError:  # the post finished meanwhile; nothing is left to change
                    workflow.logger.info(
                        "post already finished",
                        extra={"post_id": post_id, "signal": effect.signal},
                    )
            if carried is not None:
                carried.changed["post_ids"] = effect.post_ids[number + 1 :]

    # -- what the Temporal UI shows --------------------------------------------------------------

    def _publish_search_attributes(self) -> None:
        assert self._incident is not None
        state = self._incident.state
        # (replay) Both are built from these inputs alone: unchanged since the last call, both
        # would come out the same and upsert nothing (most decisions change neither).
        shown = memo_inputs(state, self._incident.policy)
        if shown == self._shown:
            return
        self._shown = shown
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
        if not (self._memo_at_start or workflow.patched(LIST_MEMO_PATCH)):
            return
        memo = incident_memo(
            self._incident.state, self._incident.policy, whole_seconds=self._unsaid
        )
        if memo == self._memo:
            return
        self._memo = memo
        if not self._unsaid:
            workflow.upsert_memo({MEMO_KEY: memo})
            return
        # hist: in parts, only those that changed (yuqing.listing.memo_parts).
        parts = memo_parts(memo)
        changed = {k: v for k, v in parts.items() if self._memo_parts.get(k) != v}
        if changed:
            workflow.upsert_memo(changed)
            self._memo_parts.update(changed)

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
        # (tools) Every refusal of a run on the decision path is counted as it is made (and
        # carried on), so the count needs no pass over the trail at each decision.
        refused = state.refused_total if self._current else state.refusal_count
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
            notifications=state.count("notifications"),
            refused_signals=state.refusal_count,
        )


# Continue as new past this many events or bytes of history (or when Temporal suggests it):
# every run stays far under Temporal's limits of 51,200 events and 50 MB.
#
# (replay, issue 9) 1,000 events: a run's replay costs more per event the longer the run
# (measured: the first 2,000 events of a 4,010-event run replayed at 0.23 ms each, its last
# 1,000 at 0.4 ms), and every replay of a run pays it: `yuqing audit --replay`, and a worker
# taking up an incident no longer in its cache. Shorter runs also share better among the cores
# `yuqing audit --replay` replays them on (whole runs to each, so one core may have a whole run
# more to replay than the other): with 2,000, the bench's 1,000-line incident was five runs and
# a short one, three of them on one core. A run costs a continue-as-new: the state and
# configuration copied into its last event and the next run's first (33 KB for an incident of
# figures, more as it uses signatures: 89 KB after 800 decisions).
CONTINUE_AFTER_EVENTS = 1000
# Runs that began between SHORTER_RUNS_PATCH and RUNS_OF_1000_PATCH.
CONTINUE_AFTER_EVENTS_SHORTER = 2000
# Runs that began before SHORTER_RUNS_PATCH.
CONTINUE_AFTER_EVENTS_BEFORE = 4000
CONTINUE_AFTER_BYTES = 4 * 1024 * 1024
CONTINUE_AFTER_DECISIONS = 2000
# ... but not while more than this many trail lines (each at most ~4 KB) wait for the audit
# table (PostgreSQL down): the next run's input stays small, and the history has room to wait.
CARRIED_TRAIL_LINES = 50
# ... and with at most this much of the signals received and not decided yet.
CARRIED_INBOX_BYTES = 256 * 1024


def _continued(report: Any) -> Continued | None:
    if isinstance(report, dict) and "configuration" in report and "state" in report:
        return Continued.model_validate(report)
    return None


def _read_report(report: Any, bounded: bool) -> IncidentReport:
    """The report, checked as this run checks it; ValueError says what is wrong."""
    if contains_nul(report):
        raise ValueError("text contains a NUL character")
    try:
        read = IncidentReport.model_validate(report, context=None if bounded else UNBOUNDED)
    except ValidationError as err:
        raise ValueError(describe(err)) from err
    if bounded and (problem := report_time_problem(read, workflow.now())) is not None:
        raise ValueError(problem)
    return read


_EFFECTS: dict[str, type[Any]] = {
    "Notify": Notify,
    "Publish": Publish,
    "StartPost": StartPost,
    "SignalPosts": SignalPosts,
    "FixMoreEvidence": FixMoreEvidence,
    "PlanClock": PlanClock,
}


class _UnderWay:
    """An effect under way, and what changed of it since (the posts a signal has still to
    reach; a publication's channel): a `CarriedEffect` only if the run continues as new.

    perf (issue 9): it was made a `CarriedEffect` when it began (`dataclasses.asdict` and the
    model, ~0.13 ms an effect, in the workflow task that decided it) though most runs never
    continue as new; the effect is kept as it is instead (effects are frozen dataclasses, their
    lists and dicts made for them and not changed afterwards), and turned into the same data
    only at continue-as-new."""

    __slots__ = ("changed", "effect")

    def __init__(self, effect: Any, changed: dict[str, Any] | None = None) -> None:
        self.effect = effect
        self.changed: dict[str, Any] = changed or {}

    @property
    def kind(self) -> str:
        return type(self.effect).__name__

    def get(self, name: str) -> Any:
        if name in self.changed:
            return self.changed[name]
        return getattr(self.effect, name, None)

    def carried(self) -> CarriedEffect:
        data = dataclasses.asdict(self.effect)
        data.update(self.changed)  # a field changed keeps its place; the channel comes last
        return CarriedEffect(kind=self.kind, data=data)


def _effect(carried: CarriedEffect) -> Any:
    kind = _EFFECTS[carried.kind]
    fields = {f.name for f in dataclasses.fields(kind)}
    data = {k: v for k, v in carried.data.items() if k in fields}
    if kind is Notify:
        data["roles"] = [Role(r) for r in data["roles"]]
        data["people"] = tuple(data.get("people", ()))
    if kind is PlanClock:
        data.update(_clock_fields(data))
    return kind(**data)


def _clock_fields(data: dict[str, Any]) -> dict[str, Any]:
    """A step clock being planned, as it came through the next run's JSON input."""
    starts_at = data["starts_at"]
    remind_after = data.get("remind_after")
    return {
        "starts_at": starts_at
        if isinstance(starts_at, datetime)
        else datetime.fromisoformat(starts_at),
        "remind_after": tuple(remind_after) if remind_after is not None else None,
        "remind": tuple(Role(r) for r in data["remind"]),
        "escalate_to": tuple(Role(r) for r in data["escalate_to"]),
    }
