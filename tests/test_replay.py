"""Replay every saved history through today's workflow code: a non-deterministic change fails.

The histories under tests/histories/ come from the scenario tests; to record them afresh run
`YUQING_RECORD_HISTORIES=1 ./dev test` and commit the files. Re-record only for a change that
is meant to be compatible and is guarded by `workflow.patched`: old histories must keep passing.
One history alone is recorded by its own test, e.g. the incident started by update-with-start:
`YUQING_RECORD_HISTORIES=1 ./dev test tests/test_general_incident.py -k intake_reports_it`
(a run that selects other recording tests writes their histories afresh too).
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from workflows.incident import IncidentWorkflow
from workflows.post import NetizenPostWorkflow
from yuqing.audit.history import REPLAY_CLOCK_SLACK as REPLAY_SLACK
from yuqing.client import data_converter
from yuqing.codec import KeyRing
from yuqing.sandbox import lean_runner


def workflow_id(history: dict[str, Any]) -> str:
    """The id the workflow ran under, from its recorded input (an incident's or a post's)."""
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]
    payload = json.loads(base64.b64decode(started["input"]["payloads"][0]["data"]))
    if "post" in payload:
        return str(payload["post"]["workflow_id"])
    if "state" in payload and "configuration" in payload:  # a run continued as new
        return str(payload["state"]["workflow_id"])
    return f"incident-{payload['incident_id']}"


HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_histories_are_saved() -> None:
    names = {path.stem for path in HISTORIES}
    assert {
        "general_published_in_time",
        "major_three_step_chain",
        "missed_report_important",
        "missed_report_especially_major",
        "missed_publish_statement",
        "rejection_and_new_drafts",
        "upgrade_by_reposts",
        "refused_signals",
        "post_initial_response_in_time",
        "post_missed_across_weekend",
        "post_formal_reply_across_holiday",
        "post_calendar_replan",
        "post_extension_met_day_nine",
        "post_extensions_refused",
        "post_closing_with_open_post",
        "post_closing_with_open_post.p1",
        "post_extension_met_day_nine.p1",
        "reported_through_two_channels",
        "audit_major_rejection_upgrade_posts",
        "audit_major_rejection_upgrade_posts.p1",
        "signed_approvals_forgeries_refused",
        "signed_post_forgeries_refused",
        "signed_post_forgeries_refused.p1",
        # Recorded with the `decide` update and posts that nudge (patch core-decision-path).
        "general_published_in_time-decide",
        "refused_signals-decide",
        "reported_through_two_channels-decide",
        "audit_major_rejection_upgrade_posts-decide",
        "audit_major_rejection_upgrade_posts-decide.p1",
        "post_closing_with_open_post-decide",
        "post_closing_with_open_post-decide.p1",
        # Recorded with the bounds, lean inputs and continue-as-new (patch core-bounded).
        "general_published_in_time-bounded",
        "refused_signals-bounded",
        "reported_through_two_channels-bounded",
        "audit_major_rejection_upgrade_posts-bounded",
        "audit_major_rejection_upgrade_posts-bounded.p1",
        "post_closing_with_open_post-bounded",
        "post_closing_with_open_post-bounded.p1",
        # Each run of an incident that continued as new twice: the first ends in
        # continue-as-new, the others begin from what the one before carried.
        "continued_as_new-bounded.run1",
        "continued_as_new-bounded.run2",
        "continued_as_new-bounded.run3",
        # Deliveries in rounds (the patch delivery-bounded-rounds): the ordinary path, and
        # notices and statements kept waiting by a channel that is down or slow.
        "delivery_rounds_general_published_in_time",
        "delivery_rounds_major_three_step_chain",
        "delivery_rounds_post_missed_across_weekend",
        "delivery_rounds_post_missed_across_weekend.p1",
        "delivery_email_down_then_sent",
        "delivery_gateway_down_then_published",
        "delivery_trickling_robot",
        # Notices as data, rendered in the reader's language, and the approvers asked in turn
        # (the patch console-notice-text).
        "console_notices_in_chinese",
        "console_notices_post",
        "console_notices_post.p1",
        # The memo's patch asked at the top of run (console-memo-at-start).
        "console_memo_general-at-start",
        # Every patch asked in the run's first task (patch core-patches-first).
        "general_published_in_time-patches-first",
        "post_closing_with_open_post-patches-first",
        "post_closing_with_open_post-patches-first.p1",
        "continued_as_new-patches-first.run1",
        "continued_as_new-patches-first.run2",
        "continued_as_new-patches-first.run3",
        # Lean histories (patch hist-lean-history): deadlines copied to the trail's table only
        # when they changed, the configuration without the API's routes.
        "general_published_in_time-lean",
        "post_closing_with_open_post-lean",
        "post_closing_with_open_post-lean.p1",
        "continued_as_new-lean.run1",
        "continued_as_new-lean.run2",
        # Leaner (patch hist-leaner-history): no summaries, the memo's times to the second.
        "general_published_in_time-leaner",
        "console_memo_general-leaner",
        "post_closing_with_open_post-leaner",
        "post_closing_with_open_post-leaner.p1",
        "continued_as_new-leaner.run1",
        "continued_as_new-leaner.run2",
        # Started as production starts an incident, by update-with-start (the `decide` update
        # of the report's `add_evidence` sent with the start: starter.report_incident), under
        # every patch of its day, then the general lifecycle through `decide`
        # (tests/test_general_incident.py records it).
        "general_reported_with_start",
    } <= names


@pytest.mark.parametrize(
    "path",
    [
        p
        for p in HISTORIES
        if "-patches-first" in p.stem or "-lean" in p.stem or "_with_start" in p.stem
    ],
    ids=lambda p: p.stem,
)
def test_every_patch_marker_is_in_the_first_workflow_task(path: Path) -> None:
    """Where a replay meets each marker then does not depend on how its tasks fall."""
    events = json.loads(path.read_text())["events"]
    tasks = [
        int(e["eventId"]) for e in events if e["eventType"] == "EVENT_TYPE_WORKFLOW_TASK_COMPLETED"
    ]
    markers = [
        int(e["eventId"])
        for e in events
        if e.get("markerRecordedEventAttributes", {}).get("markerName") == "core_patch"
    ]
    # The commands of a task follow its completion, up to the next task's completion.
    assert len(markers) >= 5 and all(tasks[0] < m < tasks[1] for m in markers), (tasks, markers)


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_replay(path: Path) -> None:
    text = path.read_text()  # noqa: ASYNC240 - a small local file, read once
    history = WorkflowHistory.from_json(workflow_id(json.loads(text)), text)
    # The service's converter: the recorded histories hold plain payloads, which its codec
    # passes through, as it does for histories begun before payloads were encrypted.
    # And the worker's own runner (yuqing.sandbox: the workflow modules passed through).
    replayer = Replayer(
        workflows=[IncidentWorkflow, NetizenPostWorkflow],
        workflow_runner=lean_runner(),
        data_converter=data_converter(KeyRing.from_environ()),
    )
    await replayer.replay_workflow(history)


# (tools) A run from before the patch tools-projector-yields, recorded on the dev server by a
# flood of `decide` updates (three callers at once, as the bench's tools section but faster):
# in the task where its continue-as-new fell due, an update was refused (nothing of it is in
# the history) and the run continued at once, carrying a trail line its projection had not
# copied. A plain replay makes the copy first: "Activity machine does not handle this event:
# WorkflowExecutionContinuedAsNew". Kept gzipped (2.8 MB of JSON, 4,006 events).
RACED = Path(__file__).parent / "histories" / "continued_as_new-refused-update-race.run1.json.gz"


async def test_a_run_that_met_the_continue_as_new_race_replays_as_it_ran() -> None:
    import gzip

    from yuqing.audit.history import TrailLine, compare, recorded_trail, replay

    text = gzip.decompress(RACED.read_bytes()).decode()
    history = WorkflowHistory.from_json(workflow_id(json.loads(text)), text)
    replayed = await replay(history)
    assert replayed.error is None
    recorded = recorded_trail(history)
    # The line the run carried to the next is decided by the replay, never recorded here.
    carried = [line for line in replayed.trail if line.seq >= len(recorded)]
    assert len(carried) == 1 and carried[0].kind == "metrics"
    kept: list[TrailLine] = [line for line in replayed.trail if line.seq < len(recorded)]
    assert compare(recorded, kept, clock_slack=REPLAY_SLACK) == []


async def test_the_audit_replay_still_says_when_todays_code_cannot_follow_a_history() -> None:
    # yuqing audit --replay skips the SDK's payload walks for its plain converter (they change
    # nothing without a codec): the commands are still matched to the history's events.
    from yuqing.audit.history import replay

    path = Path(__file__).parent / "histories" / "general_published_in_time-patches-first.json"
    text = path.read_text()
    history = WorkflowHistory.from_json(workflow_id(json.loads(text)), text)
    assert (await replay(history)).error is None
    scheduled = next(
        e for e in history.events if e.HasField("activity_task_scheduled_event_attributes")
    )
    scheduled.activity_task_scheduled_event_attributes.activity_type.name = "not_what_runs"
    assert (await replay(history)).error is not None


async def test_a_replay_under_another_id_than_the_history_records_is_refused_naming_both() -> None:
    # The dev server records the workflow id in the start (the time-skipping server, which
    # recorded tests/histories, does not): under another id the incident would refuse its input
    # and the SDK say only "Non-deprecated patch marker ... plan-audit-lines".
    from yuqing.audit.history import OtherWorkflowId, replay

    path = Path(__file__).parent / "histories" / "general_published_in_time-patches-first.json"
    text = path.read_text()
    own = workflow_id(json.loads(text))
    history = WorkflowHistory.from_json(own, text)
    history.events[0].workflow_execution_started_event_attributes.workflow_id = own
    assert (await replay(history)).error is None
    with pytest.raises(OtherWorkflowId) as refused:
        await replay(WorkflowHistory("incident-someone-else", history.events))
    said = refused.value.args[0]
    assert str(refused.value) == (
        f"the history's first event records workflow id {own}, but the replay was given"
        " incident-someone-else: replay it under its own id"
    )
    assert own in said.in_("zh") and "incident-someone-else" in said.in_("zh")
    assert said.in_("zh").startswith("历史记录的首个事件")


# `yuqing audit --replay` forks its replayer before anything starts a thread: a process of its
# own for it, so this test (whose process has the SDK's runtime) runs it in a fresh one.
FORKED_REPLAY = """
import asyncio, json, sys
from yuqing.audit.forked import ReplayProcess
from yuqing.client import plain_data_converter

replayer = ReplayProcess.start(plain_data_converter)
assert replayer is not None, "no fork"

from temporalio.client import WorkflowHistory
from yuqing.audit.history import replay

async def main():
    given = json.loads(sys.argv[1])
    histories = {
        wf: [WorkflowHistory.from_json(wf, open(path).read()) for path in paths]
        for wf, paths in given["histories"].items()
    }
    tampered = histories[given["tampered"]][0]
    scheduled = next(
        e for e in tampered.events if e.HasField("activity_task_scheduled_event_attributes")
    )
    scheduled.activity_task_scheduled_event_attributes.activity_type.name = "not_what_runs"
    forked = await replayer.replay(histories)
    said = {}
    for wf, runs in histories.items():
        events = [event for run in runs for event in run.events]
        here = await replay(WorkflowHistory(wf, events), plain_data_converter())
        said[wf] = {
            "error": forked[wf].error is not None,
            "error_here": here.error is not None,
            "same_trail": forked[wf].trail == here.trail,
            "lines": len(forked[wf].trail),
            "same_grade": forked[wf].grade == here.grade,
        }
    print(json.dumps(said))

asyncio.run(main())
"""


def test_the_forked_audit_replay_reaches_what_the_replay_in_process_reaches() -> None:
    here = Path(__file__).parent / "histories"
    given: dict[str, list[Path]] = {
        "continued": [here / f"continued_as_new-patches-first.run{n}.json" for n in (1, 2, 3)],
        "general": [here / "general_published_in_time-patches-first.json"],
        "tampered": [here / "post_closing_with_open_post-patches-first.json"],
    }
    ids = {name: workflow_id(json.loads(paths[0].read_text())) for name, paths in given.items()}
    histories = {ids[name]: [str(path) for path in paths] for name, paths in given.items()}
    argument = {"histories": histories, "tampered": ids["tampered"]}
    said = _said_by(FORKED_REPLAY, json.dumps(argument))
    for wf in (ids["continued"], ids["general"]):
        assert said[wf] == {
            "error": False,
            "error_here": False,
            "same_trail": True,
            "lines": said[wf]["lines"],
            "same_grade": True,
        }
        assert said[wf]["lines"] > 0
    # A history today's code cannot follow is still said to be one.
    assert said[ids["tampered"]]["error"] and said[ids["tampered"]]["error_here"]


# A replaying process that dies, or is no longer wanted, ends the audit's wait at once: said
# as the replay's failure, and reaped (no process left behind).
REPLAYER_ENDS = """
import asyncio, json, os, signal
from yuqing.audit.forked import ReplayFailed, ReplayProcess
from yuqing.client import plain_data_converter

said = {}
unused = ReplayProcess.start(plain_data_converter)
unused.close()
said["closed_reaped"] = False
try:
    os.waitpid(unused._pid, os.WNOHANG)
except ChildProcessError:
    said["closed_reaped"] = True

died = ReplayProcess.start(plain_data_converter)
os.kill(died._pid, signal.SIGKILL)

async def main():
    try:
        await died.replay({})
    except ReplayFailed as error:
        said["died"] = str(error)
    try:
        os.waitpid(died._pid, os.WNOHANG)
    except ChildProcessError:
        said["died_reaped"] = True

asyncio.run(main())
print(json.dumps(said))
"""


def test_a_replayer_that_dies_or_is_not_needed_ends_at_once_and_is_reaped() -> None:
    said = _said_by(REPLAYER_ENDS)
    assert said == {
        "closed_reaped": True,
        "died": "the replaying process ended without an answer",
        "died_reaped": True,
    }


def _said_by(script: str, *args: str) -> Any:
    """The last line `script` printed, as JSON, run by a fresh interpreter (one with no thread
    yet: the forked replay needs one)."""
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-c", script, *args],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_replaying_processes_keep_to_a_core_each_only_when_they_take_every_core(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import os

    from yuqing.audit import forked

    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 1})
    # As many processes as cores: one each, in the order the processes are numbered.
    assert forked._places(2) == [1, 3]
    # Fewer (cores to spare: the system places them), or one alone: none.
    assert forked._places(1) == []
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {0, 1, 2, 3})
    assert forked._places(2) == []
    pinned: list[set[int]] = []
    monkeypatch.setattr(os, "sched_setaffinity", lambda pid, cores: pinned.append(set(cores)))
    forked._settle_on([5, 7], 1)
    forked._settle_on([5, 7], 2)  # a process beyond the places: left where it is
    forked._settle_on([], 0)
    assert pinned == [{7}]
