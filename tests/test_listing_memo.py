"""The incident's `console` memo, kept current for the lists (yuqing.listing), and its lights."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

from tests.driver import PATIENCE, UPWARD_REPORT, IncidentDriver, approval, report
from tests.plan_support import POLICY, incident_state
from yuqing.listing import (
    MEMO_KEY,
    ClockMemo,
    IncidentMemo,
    Light,
    incident_memo,
    memo_inputs,
    memo_of,
    memo_parts,
    read_memo,
)
from yuqing.models import Decision, Grade, PublicationChannel, Sensitivity
from yuqing.roles import Role
from yuqing.state import (
    ApprovalRecord,
    Deadline,
    DeadlineStatus,
    Draft,
    DraftStatus,
    PostState,
    PostStatus,
    Stage,
    TrailEntry,
)


async def memo_until(
    driver: IncidentDriver, condition: Callable[[IncidentMemo], bool]
) -> IncidentMemo:
    assert driver.handle is not None
    loop = asyncio.get_running_loop()
    give_up = loop.time() + PATIENCE
    memo = None
    while loop.time() < give_up:
        description = await driver.handle.describe()
        memo = memo_of(await description.memo())
        if memo is not None and condition(memo):
            return memo
        await asyncio.sleep(0.05)
    raise AssertionError(f"the memo never got there: {memo}")


async def test_the_memo_follows_the_incident_and_names_no_person(driver: IncidentDriver) -> None:
    await driver.start(report())
    memo = await memo_until(driver, lambda m: m.stage == "discovered")
    assert memo.title == "网传西乡塘某超市销售过期食品" and memo.unit == "xixiangtang-branch"
    assert {c.key for c in memo.clocks} == {"report_important", "publish_statement"}
    assert all(c.remind_from is not None and c.remind_from < c.due_at for c in memo.clocks)

    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "情况通报"})
    memo = await memo_until(driver, lambda m: m.stage == "approving")
    assert memo.grade == "general" and memo.draft_version == 1 and memo.awaiting == ["unit_head"]
    report_clock = next(c for c in memo.clocks if c.key == "report_important")
    assert report_clock.status is DeadlineStatus.met

    await driver.accepted("unit_head_approval", approval("huang.wei", 1, "reject", "请补充"))
    memo = await memo_until(driver, lambda m: m.draft_status == "returned")
    assert memo.returned_reason == "请补充" and memo.awaiting == [] and memo.stage == "handling"

    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "情况通报（修改）"})
    await driver.accepted("unit_head_approval", approval("huang.wei", 2))
    memo = await memo_until(driver, lambda m: m.awaiting == ["publicity_lead"])
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 2))
    memo = await memo_until(driver, lambda m: m.stage == "monitoring")
    assert all(c.status is DeadlineStatus.met for c in memo.clocks)

    # Roles, units, versions and times only: no person's id is in the memo.
    text = memo.model_dump_json()
    for person in ("chen.jing", "huang.wei", "zhou.min", "li.ming"):
        assert person not in text
    await driver.save_history("console_memo_general")


def test_lights_of_a_clock() -> None:
    due = datetime(2026, 12, 1, 12, tzinfo=UTC)
    clock = ClockMemo(
        key="report_important",
        title="report deadline 4 h (important)",
        clock="calendar_hours",
        due_at=due,
        remind_from=due - timedelta(hours=2),
        status=DeadlineStatus.pending,
    )
    assert clock.light(due - timedelta(hours=3)) is Light.green
    assert clock.light(due - timedelta(hours=2)) is Light.yellow
    assert clock.light(due) is Light.red
    breached = clock.model_copy(update={"status": DeadlineStatus.breached})
    assert breached.light(due - timedelta(hours=3)) is Light.red
    met = clock.model_copy(update={"status": DeadlineStatus.met, "met_at": due})
    assert met.light(due + timedelta(days=1)) is Light.done
    late = clock.model_copy(update={"status": DeadlineStatus.met, "met_at": due + timedelta(1)})
    assert late.light(due) is Light.red
    waived = clock.model_copy(update={"status": DeadlineStatus.waived})
    assert waived.light(due) is Light.waived


def test_an_incident_without_the_memo_lists_without_it() -> None:
    assert read_memo(None) is None
    assert read_memo({"v": 99}) is None
    assert read_memo({"v": 1, "title": "missing fields"}) is None
    assert memo_of({}) is None
    assert memo_of({MEMO_KEY: {"v": 2, "title": "parts missing"}}) is None


def test_the_memo_reads_the_same_whole_or_in_parts() -> None:
    whole = IncidentMemo(
        title="网传某超市销售过期食品",
        stage="approving",
        grade="general",
        unit="xixiangtang-branch",
        sensitivity="important",
        discovered_at=datetime(2026, 12, 1, 9, 5, tzinfo=UTC),
        draft_version=1,
        draft_status="in_review",
        awaiting=["unit_head"],
        posts_open=0,
    ).model_dump(mode="json")
    parts = memo_parts(whole)
    assert parts[MEMO_KEY]["v"] == 2 and "stage" not in parts[MEMO_KEY]
    assert memo_of(parts) == memo_of({MEMO_KEY: whole}) == read_memo(whole)


T0 = datetime(2026, 12, 7, 1, 0, 0, 250_000, tzinfo=UTC)


def _clock(key: str, due: datetime) -> Deadline:
    return Deadline(
        key=key,
        title=key,
        clock="calendar_hours",
        starts_at=T0,
        due_at=due,
        reminders_at=[due - timedelta(hours=1)],
        remind=[Role.unit],
        escalate_to=[Role.unit_head],
        responsible_unit="xixiangtang-branch",
        responsible_person="huang.wei",
        policy_version="p",
    )


def _post(post_id: str) -> PostState:
    return PostState(
        post_id=post_id,
        workflow_id=f"incident-x-post-{post_id}",
        incident_id="x",
        unit="xixiangtang-branch",
        platform="forum",
        author="网民",
        content="?",
        url=None,
        learnt_at=T0,
        received_by="chen.jing",
        deadlines=[_clock("initial_response", T0 + timedelta(hours=3))],
    )


def _approval(signal: str, role: Role, version: int) -> ApprovalRecord:
    return ApprovalRecord(
        signal=signal,
        role=role,
        approver_id="huang.wei",
        decision=Decision.approve,
        draft_version=version,
        comment="",
        at=T0,
    )


def test_the_memo_changes_only_with_its_inputs() -> None:
    """The workflow builds the memo and search attributes only when `memo_inputs` changed
    (workflows.incident `_publish_search_attributes`): every change of the state that changes
    the memo (or a search attribute) must change them, or the lists would show a stale memo."""
    policy = POLICY
    state = incident_state(reporter_id="li.ming", summary="?", discovered_at=T0)

    def report_clock() -> Deadline:
        return state.deadlines[0]

    def post_clock() -> Deadline:
        return state.posts[0].deadlines[0]

    def draft() -> Draft:
        assert state.current_draft is not None
        return state.current_draft

    # Each a change of the state, in turn (each from where the one before left it).
    changes: list[tuple[str, Callable[[], object]]] = [
        ("a clock", lambda: state.deadlines.append(_clock("report", T0 + timedelta(hours=4)))),
        ("a second clock", lambda: state.deadlines.append(_clock("pub", T0 + timedelta(1)))),
        ("the stage", lambda: setattr(state, "stage", Stage.handling)),
        ("the grade", lambda: setattr(state, "grade", Grade.general)),
        ("the title", lambda: setattr(state, "title", "网传西乡塘某超市销售过期食品（续）")),
        ("the unit", lambda: setattr(state, "unit", "another-branch")),
        ("the sensitivity", lambda: setattr(state, "sensitivity", Sensitivity.especially_major)),
        ("the discovery", lambda: setattr(state, "discovered_at", T0 - timedelta(hours=1))),
        ("a due time", lambda: setattr(report_clock(), "due_at", T0 + timedelta(hours=5))),
        ("a reminder", lambda: report_clock().reminders_at.insert(0, T0)),
        ("a clock's title", lambda: setattr(report_clock(), "title", "报告")),
        ("a clock's kind", lambda: setattr(report_clock(), "clock", "working_days")),
        ("a clock met", lambda: setattr(report_clock(), "status", DeadlineStatus.met)),
        ("when it was met", lambda: setattr(report_clock(), "met_at", T0)),
        ("met late", lambda: setattr(report_clock(), "met_at", T0 + timedelta(hours=6))),
        (
            "a draft",
            lambda: state.drafts.append(
                Draft(
                    version=1,
                    author_id="chen.jing",
                    text="情况通报",
                    channels=[PublicationChannel.website],
                    submitted_at=T0,
                )
            ),
        ),
        (
            "an approval",
            lambda: state.approvals.append(_approval("unit_head_approval", Role.unit_head, 1)),
        ),
        ("it void", lambda: setattr(state.approvals[0], "void", True)),
        ("it not void", lambda: setattr(state.approvals[0], "void", False)),
        ("it a rejection", lambda: setattr(state.approvals[0], "decision", Decision.reject)),
        ("it an approval", lambda: setattr(state.approvals[0], "decision", Decision.approve)),
        ("another version's", lambda: setattr(state.approvals[0], "draft_version", 2)),
        ("for this one", lambda: setattr(state.approvals[0], "draft_version", 1)),
        (
            "another step's",
            lambda: setattr(state.approvals[0], "signal", "publicity_lead_approval"),
        ),
        ("the draft returned", lambda: setattr(draft(), "status", DraftStatus.returned)),
        ("why", lambda: setattr(draft(), "returned_reason", "请补充")),
        ("its version", lambda: setattr(draft(), "version", 2)),
        ("a post", lambda: state.posts.append(_post("p1"))),
        ("its clock", lambda: setattr(post_clock(), "due_at", T0 + timedelta(hours=2))),
        ("its clock met", lambda: setattr(post_clock(), "status", DeadlineStatus.met)),
        ("its status", lambda: setattr(state.posts[0], "status", PostStatus.awaiting_reply)),
        ("it closed", lambda: setattr(state.posts[0], "status", PostStatus.answered)),
        ("a breach", lambda: setattr(state.deadlines[1], "status", DeadlineStatus.breached)),
    ]
    unshown: list[tuple[str, Callable[[], object]]] = [
        (
            "a trail line",
            lambda: state.trail.append(TrailEntry(at=T0, kind="metrics", detail="reposts: 6")),
        ),
        ("the reporter", lambda: setattr(state, "reporter_id", "zhou.min")),
        ("a submission", lambda: state.submissions.append("s-2")),
        ("a reminder sent", lambda: report_clock().reminders_sent.append(0)),
        ("an approval's comment", lambda: setattr(state.approvals[0], "comment", "同意")),
    ]

    def shown() -> tuple[object, ...]:
        memos = tuple(incident_memo(state, policy, whole_seconds=w) for w in (False, True))
        attributes = (
            state.stage,
            state.sensitivity,
            state.unit,
            state.grade,
            any(d.status is DeadlineStatus.breached for d in state.deadlines),
        )
        return (*memos, attributes)

    before, inputs = shown(), memo_inputs(state, policy)
    for name, change in [*changes, *unshown]:
        change()
        after, now = shown(), memo_inputs(state, policy)
        if after != before:
            assert now != inputs, f"{name}: the memo changed, its inputs did not"
        if (name, change) in unshown:
            assert after == before and now == inputs, f"{name}: shown nowhere, yet built again"
        else:
            assert after != before, f"{name}: not a change of the memo (the test is wrong)"
        before, inputs = after, now
