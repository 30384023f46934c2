"""Decisions count because their author is proven (SPEC §8, issue 10): what an insider with a
Temporal client, but no key, can and cannot do.

The forgeries go through the plain `temporal` CLI, as an operator would send them; the
genuine decisions are signed with the keys the tests made (tests/keys.py).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from tests import keys
from tests.conftest import installed_binary
from tests.driver import UNSIGNED, UPWARD_REPORT, IncidentDriver, approval, report
from worker import create_worker
from yuqing.settings import Settings
from yuqing.signing import Signer, key_entry_toml, load_private_key, new_key_pair
from yuqing.state import IncidentState, TrailEntry

DRAFT = {"author_id": "chen.jing", "text": "经核查，涉事超市已下架相关商品。"}


def temporal_cli(driver: IncidentDriver, *args: str) -> subprocess.CompletedProcess[str]:
    """The `temporal` CLI against the test's server, as an operator would run it."""
    address = driver.client.service_client.config.target_host
    return subprocess.run(
        [installed_binary("temporal"), *args, "--address", address, "--namespace", "default"],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


async def cli_signal(
    driver: IncidentDriver, workflow_id: str, signal: str, payload: dict[str, Any]
) -> None:
    await asyncio.to_thread(
        temporal_cli,
        driver,
        "workflow",
        "signal",
        "--workflow-id",
        workflow_id,
        "--name",
        signal,
        "--input",
        json.dumps(payload, ensure_ascii=False),
    )


async def decided(driver: IncidentDriver, signal: str, before: int) -> TrailEntry:
    """The first entry for `signal` after the `before`-th line of the trail."""

    def new(state: IncidentState) -> list[TrailEntry]:
        return state.trail[max(0, before - state.trail_offset) :]

    state = await driver.until(lambda s: any(e.signal == signal for e in new(s)))
    return next(e for e in new(state) if e.signal == signal)


async def in_review(driver: IncidentDriver) -> IncidentState:
    await driver.start(report())
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    await driver.accepted("submit_draft", DRAFT)
    return await driver.state()


async def yuqing_sign(
    tmp_path: Path, workflow_id: str, signal: str, payload: dict[str, Any], key_id: str
) -> dict[str, Any]:
    """`yuqing sign --key FILE --workflow-id ID --signal NAME PAYLOAD.json`, as documented."""
    file = tmp_path / f"{signal}.json"
    file.write_text(json.dumps(payload, ensure_ascii=False), encoding="utf-8")
    done = await asyncio.to_thread(
        subprocess.run,
        [
            installed_binary("yuqing"),
            "sign",
            "--key",
            str(keys.DIRECTORY / f"{key_id}.pem"),
            "--workflow-id",
            workflow_id,
            "--signal",
            signal,
            str(file),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    signed: dict[str, Any] = json.loads(done.stdout)
    return signed


async def test_forged_approvals_from_the_cli_are_refused_and_nothing_is_published(
    driver: IncidentDriver, tmp_path: Path
) -> None:
    state = await in_review(driver)
    workflow_id = state.workflow_id
    # What the issue measured: the two approvals of a general chain, sent with no key.
    for signal, person in (
        ("unit_head_approval", "huang.wei"),
        ("publicity_lead_approval", "zhou.min"),
    ):
        before = (await driver.state()).trail_total
        await cli_signal(driver, workflow_id, signal, approval(person, 1))
        entry = await decided(driver, signal, before)
        assert entry.refused and entry.refusal_kind == "forbidden"
        assert f"in the name of {person}, unproven" in entry.detail
        assert "carries no proof" in entry.detail
        # Nobody is proven, so nobody is its actor.
        assert entry.actor is None
    await driver.settle()
    state = await driver.state()
    assert state.approvals == [] and state.publications == []
    assert state.stage == "approving"
    assert await driver.rows("publications") == []

    # A proof that is not a proof: malformed, or by a key nobody holds.
    before = state.trail_total
    forged = {**approval("huang.wei", 1), "proof": {"key_id": "huang.wei-1", "signature": "AA=="}}
    await cli_signal(driver, workflow_id, "unit_head_approval", forged)
    entry = await decided(driver, "unit_head_approval", before)
    assert entry.refused and "does not match" in entry.detail

    # The same approval, signed with huang.wei's own key by `yuqing sign` and sent the same
    # way, counts (the README's command line).
    genuine = await yuqing_sign(
        tmp_path, workflow_id, "unit_head_approval", approval("huang.wei", 1), "huang.wei-1"
    )
    before = (await driver.state()).trail_total
    await cli_signal(driver, workflow_id, "unit_head_approval", genuine)
    entry = await decided(driver, "unit_head_approval", before)
    assert not entry.refused, entry.detail
    assert entry.actor == "huang.wei" and entry.key_id == "huang.wei-1"

    # Sent again (read from the history, say), the same proof decides nothing twice.
    before = (await driver.state()).trail_total
    await cli_signal(driver, workflow_id, "unit_head_approval", genuine)
    entry = await decided(driver, "unit_head_approval", before)
    assert entry.refused and "already approved" in entry.detail

    await driver.accepted(
        "publicity_lead_approval", approval("zhou.min", 1), keys.PERSONAL["zhou.min"]
    )
    state = await driver.until_published()
    assert [a.approver_id for a in state.approvals] == ["huang.wei", "zhou.min"]
    await driver.save_history("signed_approvals_forgeries_refused")


async def test_a_proof_counts_only_for_what_it_was_made_for(driver: IncidentDriver) -> None:
    state = await in_review(driver)
    huang = keys.PERSONAL["huang.wei"]
    # Another draft version: the proof of version 1, on a payload naming version 2.
    await driver.accepted("submit_draft", {**DRAFT, "text": "第二稿"})
    made_for_v1 = keys.signed(
        state.workflow_id, "unit_head_approval", approval("huang.wei", 1), huang
    )
    moved = {**approval("huang.wei", 2), "proof": made_for_v1["proof"]}
    entry = await driver.refused("unit_head_approval", moved, UNSIGNED)
    assert entry.refusal_kind == "forbidden" and "does not match" in entry.detail
    # Another incident: a proof made for incident-other.
    elsewhere = keys.signed("incident-other", "unit_head_approval", approval("huang.wei", 2), huang)
    entry = await driver.refused("unit_head_approval", elsewhere, UNSIGNED)
    assert "made for another payload or another workflow" in entry.detail
    # Another signal: an approval's proof under another name.
    other_signal = keys.signed(
        state.workflow_id, "section_head_review", approval("huang.wei", 2), huang
    )
    entry = await driver.refused("unit_head_approval", other_signal, UNSIGNED)
    assert "does not match" in entry.detail
    # A person's key signs only in that person's name.
    entry = await driver.refused("publicity_lead_approval", approval("zhou.min", 2), huang)
    assert "key huang.wei-1 is huang.wei's: it cannot sign for zhou.min" in entry.detail
    state = await driver.state()
    assert state.approvals == []
    # Every refusal is on the record, and the right proof still counts afterwards.
    assert sum(e.refused for e in state.trail) == 4
    await driver.accepted("unit_head_approval", approval("huang.wei", 2), huang)


async def test_forged_post_signals_are_refused(driver: IncidentDriver) -> None:
    state = await in_review(driver)
    post = {"post_id": "p1", "platform": "微博", "author": "网民甲", "content": "处理结果如何？"}
    await driver.accepted("netizen_post", {**post, "received_by": "chen.jing"})
    await driver.until_post("p1", lambda p: bool(p.deadlines))
    post_id = f"{state.workflow_id}-post-p1"
    forged = {"responder_id": "chen.jing", "text": "已处理", "needs_formal_handling": False}
    await cli_signal(driver, post_id, "initial_response", forged)
    # The incident's own signals cannot be injected into a post either.
    await cli_signal(driver, post_id, "withdraw", {"closed_by": "tang.guo", "reason": "伪造"})
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 30
    while loop.time() < give_up:
        post_state = await driver.post_state("p1")
        if len(post_state.refusals) == 2:
            break
        await asyncio.sleep(0.05)
    assert [e.signal for e in post_state.refusals] == ["initial_response", "withdraw"]
    assert "carries no proof" in post_state.refusals[0].detail
    assert "comes only from the incident" in post_state.refusals[1].detail
    assert post_state.status == "received" and post_state.initial_response is None
    # A forged post_status, as the issue sent it, would have marked the post answered: only
    # the incident's own reading of its post counts (tests/test_decide.py covers the update).
    before = (await driver.state()).trail_total
    answered = {**post_state.model_dump(mode="json"), "status": "answered", "revision": 99}
    await cli_signal(driver, state.workflow_id, "post_status", answered)
    entry = await decided(driver, "post_status", before)
    assert entry.refused and entry.refusal_kind == "forbidden"
    assert "cannot be sent from outside" in entry.detail
    incident = await driver.state()
    assert incident.post("p1") is not None and incident.post("p1").status == "received"  # type: ignore[union-attr]

    entry = await driver.to_post("p1", "initial_response", forged, keys.PERSONAL["chen.jing"])
    assert not entry.refused and entry.actor == "chen.jing"
    await driver.save_history("signed_post_forgeries_refused")


async def test_a_key_rotated_out_is_refused_after_its_end_date(
    own_clock: IncidentDriver,
) -> None:
    driver = own_clock
    state = await in_review(driver)
    # Within its dates the old key counts, for a first approval …
    rotated = keys.PERSONAL[keys.ROTATED]
    await driver.accepted("unit_head_approval", approval("huang.wei", 1), rotated)
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 1, "reject", "重写"))
    await driver.accepted("submit_draft", {**DRAFT, "text": "第二稿"})
    # … and after its end date it does not, whatever it signs.
    await driver.jump_to(keys.ROTATED_UNTIL + timedelta(hours=1))
    entry = await driver.refused("unit_head_approval", approval("huang.wei", 2), rotated)
    assert entry.refusal_kind == "forbidden"
    assert f"key {keys.ROTATED} (huang.wei) was rotated out: valid until" in entry.detail
    entry = await driver.accepted(
        "unit_head_approval", approval("huang.wei", 2), keys.PERSONAL["huang.wei"]
    )
    assert entry.key_id == "huang.wei-1"
    state = await driver.state()
    assert [a.draft_version for a in state.approvals if not a.void] == [2]


@pytest.fixture
async def own_keys(
    env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> AsyncIterator[tuple[IncidentDriver, Path]]:
    """A worker reading a keys file of the test's own, which the test may change."""
    keys_file = tmp_path / "keys.toml"
    shutil.copy(keys.KEYS_FILE, keys_file)
    task_queue = f"test-{uuid.uuid4()}"
    own = replace(settings, keys_path=keys_file)
    async with create_worker(env.client, pool, own, task_queue=task_queue):
        driver = IncidentDriver(env, pool, task_queue)
        yield driver, keys_file
        await driver.terminate_if_running()


async def test_an_incident_that_outlives_a_rotation_reads_the_new_key(
    own_keys: tuple[IncidentDriver, Path], tmp_path: Path
) -> None:
    driver, keys_file = own_keys
    state = await in_review(driver)
    # huang.wei gets a new key after the incident began: the incident has not seen it.
    path, entry = new_key_pair(
        tmp_path,
        "huang.wei-2",
        valid_from=state.discovered_at - timedelta(hours=1),
        holder="huang.wei",
    )
    with keys_file.open("a", encoding="utf-8") as out:
        out.write("\n" + key_entry_toml(entry))
    new_key = Signer("huang.wei-2", load_private_key(path))
    accepted = await driver.accepted("unit_head_approval", approval("huang.wei", 1), new_key)
    assert accepted.key_id == "huang.wei-2"
    # The keys it read are in its history, so a replay decides the same.
    history = await driver.handle.fetch_history()  # type: ignore[union-attr]
    reads = [
        e
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == "load_keys"
    ]
    assert len(reads) == 1
    # A key id nobody knows is looked for once, then refused without looking again.
    stranger = Signer("nobody-1", load_private_key(path))
    for _ in range(2):
        entry_ = await driver.refused("publicity_lead_approval", approval("zhou.min", 1), stranger)
        assert "not in keys" in entry_.detail
    history = await driver.handle.fetch_history()  # type: ignore[union-attr]
    reads = [
        e
        for e in history.events
        if e.activity_task_scheduled_event_attributes.activity_type.name == "load_keys"
    ]
    assert len(reads) == 2
