"""The worker's lean sandbox (yuqing.sandbox): the installed SDK is the one it knows, and a
workflow in it is as restricted as in the SDK's own (every scenario test runs in it too)."""

from __future__ import annotations

import dataclasses
import enum
import functools
import importlib
import json
import re
import subprocess
import sys
import types
import uuid
from datetime import datetime, time, timedelta, tzinfo
from inspect import Signature
from pathlib import Path, PurePath
from typing import TypeVar

import pytest
from pydantic import BaseModel
from temporalio.client import WorkflowFailureError, WorkflowHistory
from temporalio.common import RetryPolicy
from temporalio.testing import WorkflowEnvironment
from temporalio.worker import Replayer, Worker
from temporalio.worker.workflow_sandbox import RestrictedWorkflowAccessError
from temporalio.workflow import NondeterminismError

from tests.sandbox_workflows import Echoes, IncidentThatSleepsInstead, ReadsTheClock
from tests.test_replay import workflow_id
from workflows.incident import IncidentWorkflow
from yuqing.client import data_converter
from yuqing.codec import KeyRing
from yuqing.sandbox import WORKFLOW_MODULES, LeanSandboxedWorkflowRunner, is_lean, lean_runner


def test_the_installed_sdk_gets_the_lean_runner() -> None:
    # If this fails after a Temporal SDK upgrade, the worker still runs (on the SDK's own,
    # slower runner, with a warning): adapt yuqing/sandbox.py to the new SDK's internals.
    assert is_lean(lean_runner())


async def test_a_workflow_in_the_lean_sandbox_is_restricted_and_runs(
    env: WorkflowEnvironment,
) -> None:
    queue = f"sandbox-{uuid.uuid4()}"
    async with Worker(
        env.client,
        task_queue=queue,
        workflows=[ReadsTheClock, Echoes],
        workflow_runner=lean_runner(),
        workflow_failure_exception_types=[RestrictedWorkflowAccessError],
    ):
        echoed = await env.client.execute_workflow(
            Echoes.run, "同意", id=f"echo-{uuid.uuid4()}", task_queue=queue
        )
        assert echoed.endswith(": 同意") and echoed.startswith("echo-")
        with pytest.raises(WorkflowFailureError) as failed:
            await env.client.execute_workflow(
                ReadsTheClock.run, id=f"clock-{uuid.uuid4()}", task_queue=queue
            )
    assert "datetime.datetime.now" in str(failed.value.cause)


# -- what every run shares with the process (yuqing.sandbox.WORKFLOW_MODULES, and the modules
# the workflows import passed through) ---------------------------------------------------------

SHARED_PACKAGES = ("workflows", "yuqing", "activities")

# Module-level values that can change, each with why no run can see it change. A new one fails
# the test below: make it immutable (a tuple, a frozenset, a MappingProxyType), or keep it out
# of what workflows import, or say here why sharing it between runs cannot matter.
MUTABLE_BY_DESIGN = {
    # Tables filled at import and only looked up afterwards.
    "workflows.incident._EFFECTS": "the effect types by name, looked up",
    "workflows.incident.SIGNAL_PAYLOADS": "yuqing.models' table",
    "workflows.incident.UNBOUNDED": "yuqing.limits' table",
    "workflows.post.POST_SIGNAL_PAYLOADS": "yuqing.models' table",
    "yuqing.models.SIGNAL_PAYLOADS": "each signal's payload model, looked up",
    "yuqing.models.PLAN_SIGNAL_PAYLOADS": "the same, for the plan's signals",
    "yuqing.models.POST_SIGNAL_PAYLOADS": "the same, for posts",
    "yuqing.decisions.SIGNAL_PAYLOADS": "yuqing.models' table",
    "yuqing.post_decisions.POST_SIGNAL_PAYLOADS": "yuqing.models' table",
    "yuqing.limits.UNBOUNDED": "the bounds older runs decide under, looked up",
    "yuqing.decider.UNBOUNDED": "yuqing.limits' table",
    "yuqing.i18n.render.FAMILIES": "message families by key, looked up",
    "yuqing.search_attributes.CLI_TYPES": "search attribute types by name, looked up",
    # Process caches that workflow code never reads (activities, the API, the codec, logging).
    "yuqing.config_cache._PARSED": "activities' parsed files",
    "yuqing.config_cache._DIGESTS": "activities' digests",
    "yuqing.config_cache._RECENT": "activities' calendar",
    "yuqing.codec._PLANS": "the codec's per-key plans, outside workflows",
    "yuqing.codec._COLLECTORS": "the codec's payload collectors made from those plans, likewise",
    "yuqing.codec.dictionary": "the codec's frozen dictionaries, read once, outside workflows",
    "yuqing.codec._primed": "the codec's primed deflaters, outside workflows",
    "yuqing.audit.archive._CLOSED": "the archive sweeper's bookkeeping",
    "yuqing.log._SHARED": "structlog's processors, set up once",
    "yuqing.metrics.*": "Prometheus metrics, written by interceptors and the API",
    "yuqing.sandbox._compiled": "compiled sandbox snippets, keyed by their text",
    "yuqing.signing._public_key": "Ed25519 public keys as cryptography holds them, by their text",
    "yuqing.i18n.catalog": "the message catalogs, read once: the same text for every run",
    # Content-keyed copies that compare equal to what each run decoded.
    "yuqing.shared_configuration._COPIES": "copies keyed by their content",
    "yuqing.shared_configuration._LOCK": "its lock",
}


IMPORTS_OF_THE_WORKFLOWS = "import sys, worker\nfor name in sorted(sys.modules): print(name)\n"


def _immutable(value: object) -> bool:
    if isinstance(value, (types.ModuleType, type, types.FunctionType, types.BuiltinFunctionType)):
        return True
    if isinstance(value, (str, bytes, int, float, complex, type(None), range, frozenset)):
        return True  # bool and IntEnum members are ints
    if isinstance(value, (enum.Enum, types.MappingProxyType, re.Pattern, PurePath, Signature)):
        return True
    if isinstance(value, (timedelta, datetime, time, tzinfo, RetryPolicy, TypeVar)):
        return True
    if isinstance(value, functools._lru_cache_wrapper) and not value.__module__.startswith(
        SHARED_PACKAGES
    ):
        return True  # a library's own cache, imported by name (urllib's urlsplit)
    if isinstance(value, tuple):
        return all(_immutable(item) for item in value)
    if dataclasses.is_dataclass(value) and type(value).__dataclass_params__.frozen:  # type: ignore[attr-defined]
        return True
    if isinstance(value, BaseModel) and value.model_config.get("frozen"):
        return True
    # Annotations and aliases (typing, types, `from __future__`), loggers, protobuf enums.
    kind = type(value).__module__
    return kind in {
        "typing",
        "types",
        "typing_extensions",
        "__future__",
        "collections.abc",
        "_collections_abc",
    } or kind.startswith(("structlog", "google.protobuf"))


def test_the_modules_every_run_shares_hold_no_state_of_their_own() -> None:
    # What a workflow run gets from the process rather than importing afresh: the workflow
    # modules (passed through by the lean runner) and all they import passed through.
    runner = lean_runner()
    assert isinstance(runner, LeanSandboxedWorkflowRunner)
    assert set(WORKFLOW_MODULES) <= runner.restrictions.passthrough_modules
    # Every project module of a worker process (listed by a fresh interpreter: this one has
    # the tests' imports too): all of them are the process's, whichever run reaches them.
    listed = subprocess.run(
        [sys.executable, "-c", IMPORTS_OF_THE_WORKFLOWS],
        capture_output=True,
        text=True,
        check=True,
        cwd=Path(__file__).parent.parent,
    ).stdout.split()
    shared = [
        importlib.import_module(name) for name in listed if name.split(".")[0] in SHARED_PACKAGES
    ]
    assert any(module.__name__ == "workflows.incident" for module in shared)
    changeable = []
    for module in shared:
        for name, value in vars(module).items():
            if name.startswith("__") or _immutable(value):
                continue
            where = f"{module.__name__}.{name}"
            if where not in MUTABLE_BY_DESIGN and f"{module.__name__}.*" not in MUTABLE_BY_DESIGN:
                changeable.append(f"{where} ({type(value).__name__})")
    assert not changeable, f"module-level state every workflow run would share: {changeable}"


async def test_a_workflow_changed_without_a_patch_still_fails_its_replay() -> None:
    # Passing the workflow modules through changes nothing of what replay checks: a history
    # replays through the worker's runner (tests/test_replay.py, every saved one), and a
    # change to what the workflow does is caught, as with the SDK's own runner.
    path = Path(__file__).parent / "histories" / "general_published_in_time-patches-first.json"
    text = path.read_text()
    history = WorkflowHistory.from_json(workflow_id(json.loads(text)), text)
    converter = data_converter(KeyRing.from_environ())
    same = Replayer(
        workflows=[IncidentWorkflow], workflow_runner=lean_runner(), data_converter=converter
    )
    await same.replay_workflow(history)
    changed = Replayer(
        workflows=[IncidentThatSleepsInstead],
        workflow_runner=lean_runner(),
        data_converter=converter,
    )
    with pytest.raises(NondeterminismError):
        await changed.replay_workflow(history)
