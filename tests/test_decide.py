"""The decision path: the `decide` update beside the signals of the wire contract, with the
`temporal` CLI as any other language's client would drive it, and the internal names nobody
outside may send."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from types import SimpleNamespace
from typing import Any

import pytest

from api import create_app
from api.errors import ApiError
from api.server import serving
from api.signals import Workflows
from starter import report_incident
from tests import keys
from tests.conftest import installed_binary
from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from yuqing.settings import Settings
from yuqing.state import TrailEntry


def same_decision(a: TrailEntry, b: TrailEntry) -> bool:
    """Equal in all but when it was decided."""
    return a.model_dump(exclude={"at"}) == b.model_dump(exclude={"at"})


async def test_refusals_through_the_update_are_recorded_as_through_a_signal(
    driver: IncidentDriver,
) -> None:
    await driver.start(report())
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "通报"})
    cases: list[tuple[str, Any]] = [
        ("unit_head_approval", approval("liu.yang", 1)),  # forbidden: another unit's head
        ("unit_head_approval", approval("huang.wei", 7)),  # conflict: no such draft
        ("unit_head_approval", {"approver_id": "huang.wei", "decision": "approve"}),  # malformed
        ("unit_head_approval", "yes"),  # malformed: not an object
        ("approve_everything", {"approver_id": "tang.guo"}),  # unknown
        ("submit_report", {**UPWARD_REPORT, "medium": "微博\x00"}),  # a NUL
        ("effect_failed", {"what": "publish on website", "error": "forged"}),  # internal
        ("post_status", {"post_id": "p1"}),  # internal
    ]
    for signal, payload in cases:
        by_update = await driver.send(signal, payload)
        by_signal = await driver.signal(signal, payload)
        assert by_update.refused and by_signal.refused, (signal, by_update, by_signal)
        assert same_decision(by_update, by_signal), (signal, by_update, by_signal)
    state = await driver.state()
    refused = [e for e in state.trail if e.refused]
    assert len(refused) == 2 * len(cases)
    assert state.refused_total == 2 * len(cases)
    assert state.approvals == [] and state.drafts[0].status == "in_review"
    # The NUL is refused with its sender named, and the text escaped.
    nul = next(e for e in refused if "NUL" in e.detail)
    assert nul.actor == "li.ming" and nul.refusal_kind == "malformed"
    forged = [e for e in refused if e.signal in ("effect_failed", "post_status")]
    assert {e.refusal_kind for e in forged} == {"forbidden"}
    assert all("cannot be sent from outside" in e.detail for e in forged)


async def test_an_update_under_another_name_is_refused_and_recorded(
    driver: IncidentDriver,
) -> None:
    await driver.start(report())
    assert driver.handle is not None
    for name in ("submit_report", "effect_failed"):
        entry = await driver.handle.execute_update(name, UPWARD_REPORT, result_type=TrailEntry)
        assert entry.refused and entry.refusal_kind == "unknown" and entry.signal == name
        assert 'send the update decide with {"signal"' in entry.detail
    entry = await driver.handle.execute_update("decide", {"sig": "x"}, result_type=TrailEntry)
    assert entry.refused and entry.refusal_kind == "malformed" and entry.signal == "decide"
    state = await driver.state()
    assert state.stage == "discovered" and state.refused_total == 3


async def test_an_ended_incident_answers_no_more_decisions(driver: IncidentDriver) -> None:
    incident = report()
    created = await report_incident(driver.client, incident, driver.task_queue)
    assert created.kind == "discovered"
    driver.handle = driver.client.get_workflow_handle(f"incident-{incident.incident_id}")
    workflows = Workflows(driver.client, driver.task_queue, signer=keys.SERVICE)
    entry = await workflows.decide(driver.handle.id, "submit_report", UPWARD_REPORT, "li.ming")
    assert entry.kind == "reported"
    # Settled first: an activity cut off in flight would hold the shared server's clock
    # (tests/driver.py terminate_if_running), and the next test's sleep a minute with it.
    await driver.settle()
    await driver.handle.terminate("test: the incident is over")
    with pytest.raises(ApiError) as ended:
        await workflows.decide(driver.handle.id, "submit_assessment", {}, "li.ming")
    assert ended.value.status == 409 and "has ended" in ended.value.detail
    with pytest.raises(ApiError) as unknown:
        await workflows.decide("incident-never-was", "submit_report", UPWARD_REPORT, "li.ming")
    assert unknown.value.status == 404 and "incident never-was does not exist" in str(unknown.value)


class TemporalCli:
    """The `temporal` binary in .venv/bin, pointed at the test's server, and at the API's codec
    endpoint (payloads are encrypted: README, "The record"), as the Office's li.ming."""

    def __init__(self, address: str, codec: str) -> None:
        self.binary = installed_binary("temporal")
        self.address = address
        self.codec = codec

    async def __call__(self, *args: str) -> Any:
        process = await asyncio.create_subprocess_exec(
            self.binary,
            *args,
            "--address",
            self.address,
            "--namespace",
            "default",
            "--codec-endpoint",
            self.codec,
            "--codec-auth",
            "Bearer dev-li.ming",
            "--output",
            "json",
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        out, err = await process.communicate()
        assert process.returncode == 0, (args, out.decode(), err.decode())
        text = out.decode().strip()
        return json.loads(text) if text else None


@pytest.fixture
async def temporal(driver: IncidentDriver, settings: Settings) -> AsyncIterator[TemporalCli]:
    app = create_app(driver.client, driver.pool, settings)
    async with serving(app, access_log=False) as url:
        yield TemporalCli(driver.client.service_client.config.target_host, f"{url}/codec")


async def test_the_wire_contract_with_the_temporal_cli(
    driver: IncidentDriver, temporal: TemporalCli
) -> None:
    incident = report(incident_id=f"cli-{uuid.uuid4().hex[:8]}")
    workflow_id = f"incident-{incident.incident_id}"
    await temporal(
        "workflow",
        "start",
        "--task-queue",
        driver.task_queue,
        "--type",
        "IncidentWorkflow",
        "--workflow-id",
        workflow_id,
        "--input",
        incident.model_dump_json(),
    )
    driver.handle = driver.client.get_workflow_handle(workflow_id)
    await driver.until(lambda s: bool(s.deadlines))

    # A signal of SPEC §5, for callers that do not wait.
    await temporal(
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id,
        "--name",
        "submit_report",
        "--input",
        # Signed by its author's key, as `yuqing sign` does (tests/test_signed_decisions.py).
        json.dumps(
            keys.signed(workflow_id, "submit_report", UPWARD_REPORT, keys.PERSONAL["li.ming"])
        ),
    )
    state = await driver.until(lambda s: s.stage == "reported")
    assert state.report is not None and state.report.reporter_id == "li.ming"

    # The same decisions through the `decide` update, answered at once.
    answer = await temporal(
        "workflow",
        "update",
        "execute",
        "--workflow-id",
        workflow_id,
        "--name",
        "decide",
        "--input",
        json.dumps(
            {
                "signal": "submit_assessment",
                "payload": keys.signed(
                    workflow_id,
                    "submit_assessment",
                    {"assessor_id": "li.ming"},
                    keys.PERSONAL["li.ming"],
                ),
            }
        ),
    )
    entry = TrailEntry.model_validate(answer["result"])
    assert entry.kind == "graded" and entry.actor == "li.ming" and not entry.refused

    # Forged internal signals, by signal, by the decide update and as updates of their own.
    forged_failure = {"what": "publish on website", "error": "forged", "draft_version": 1}
    forged_post = {"post_id": "p1", "status": "answered"}
    for name, payload in (("effect_failed", forged_failure), ("post_status", forged_post)):
        await temporal(
            "workflow",
            "signal",
            "--workflow-id",
            workflow_id,
            "--name",
            name,
            "--input",
            json.dumps(payload),
        )
        answer = await temporal(
            "workflow",
            "update",
            "execute",
            "--workflow-id",
            workflow_id,
            "--name",
            "decide",
            "--input",
            json.dumps({"signal": name, "payload": payload}),
        )
        entry = TrailEntry.model_validate(answer["result"])
        assert entry.refused and entry.refusal_kind == "forbidden", entry
        answer = await temporal(
            "workflow",
            "update",
            "execute",
            "--workflow-id",
            workflow_id,
            "--name",
            name,
            "--input",
            json.dumps(payload),
        )
        assert TrailEntry.model_validate(answer["result"]).refused
    state = await driver.until(lambda s: s.refused_total == 6)
    refusals = [e for e in state.trail if e.refused]
    assert [e.signal for e in refusals] == ["effect_failed"] * 3 + ["post_status"] * 3
    assert not any(e.kind == "effect_failed" for e in state.trail)
    assert state.stage == "handling" and state.posts == []

    # The state query, as the CLI reads it.
    read = await temporal("workflow", "query", "--workflow-id", workflow_id, "--name", "state")
    assert read["queryResult"][0]["stage"] == "handling"


async def test_a_step_sent_to_a_post_still_starting_waits_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # The incident has taken post q1 (its state says so) and its workflow starts a moment later:
    # the step is sent again once the post's workflow exists, not answered 404. (On the dev
    # server this window is a few milliseconds: the README's walk-through met it once.)
    from temporalio.service import RPCError, RPCStatusCode

    import api.signals as signals

    post_id = "incident-t-1-post-q1"
    looks = {"describe": 0}
    sent: list[str] = []
    entry = TrailEntry(
        at="2026-12-02T08:00:00Z", kind="initial_response", actor="chen.jing", detail="答复"
    )

    def not_found() -> RPCError:
        return RPCError("workflow not found", RPCStatusCode.NOT_FOUND, b"")

    async def decide(client: Any, workflow_id: str, *args: Any, **kw: Any) -> TrailEntry:
        sent.append(workflow_id)
        if looks["describe"] < 3:
            raise not_found()
        return entry

    class Handle:
        async def describe(self, **kw: Any) -> None:
            looks["describe"] += 1
            if looks["describe"] < 3:
                raise not_found()

    class Client:
        def get_workflow_handle(self, workflow_id: str) -> Handle:
            assert workflow_id == post_id
            return Handle()

    async def state(workflow_id: str, model: Any, what: str) -> Any:
        assert workflow_id == "incident-t-1"
        return SimpleNamespace(posts=[SimpleNamespace(post_id="q1")])

    monkeypatch.setattr(signals, "decide", decide)
    workflows = Workflows(Client(), "q", signer=keys.SERVICE)  # type: ignore[arg-type]
    monkeypatch.setattr(workflows, "state", state)
    answered = await workflows.decide(post_id, "initial_response", {}, "chen.jing")
    assert answered == entry and sent == [post_id, post_id] and looks["describe"] == 3

    # A post the incident does not know is not waited for.
    async def no_posts(workflow_id: str, model: Any, what: str) -> Any:
        return SimpleNamespace(posts=[])

    monkeypatch.setattr(workflows, "state", no_posts)
    looks["describe"] = 0
    assert not await workflows._post_started("incident-t-1-post-q9")
    assert looks["describe"] == 0
