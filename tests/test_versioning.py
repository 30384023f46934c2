"""Deploys are guarded by patching and the replay test (deploy/README.md, "Upgrading"): every
patch the workflow code takes is exercised by recorded histories from both sides of it, so
`tests/test_replay.py` proves in CI that a new worker replays incidents started before and
after each change, and the worker does not opt into worker versioning by accident."""

from __future__ import annotations

import ast
import base64
import json
from pathlib import Path

from tests.driver import HISTORIES
from yuqing.settings import PROJECT_ROOT

WORKFLOWS = PROJECT_ROOT / "workflows"


def patch_ids() -> set[str]:
    """Every id passed to workflow.patched / deprecate_patch, constants resolved."""
    constants: dict[str, str] = {}
    calls: list[ast.expr] = []
    for path in WORKFLOWS.glob("*.py"):
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                for target in node.targets:
                    if isinstance(target, ast.Name) and isinstance(node.value.value, str):
                        constants[target.id] = node.value.value
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr in ("patched", "deprecate_patch")
                and node.args
            ):
                calls.append(node.args[0])
    ids = set()
    for arg in calls:
        if isinstance(arg, ast.Constant) and isinstance(arg.value, str):
            ids.add(arg.value)
        elif isinstance(arg, ast.Name) and arg.id in constants:
            ids.add(constants[arg.id])
        # Else a parameter (common.patches_first asks the ids it is given): those ids are
        # constants asked by name elsewhere too.
    return ids


def patches_in(history: Path) -> set[str]:
    found = set()
    for event in json.loads(history.read_text(encoding="utf-8"))["events"]:
        marker = event.get("markerRecordedEventAttributes")
        if not marker or marker.get("markerName") != "core_patch":
            continue
        for payload in marker["details"]["patch-data"]["payloads"]:
            found.add(json.loads(base64.b64decode(payload["data"]))["id"])
    return found


def test_every_patch_has_histories_from_before_and_after_it() -> None:
    ids = patch_ids()
    assert ids, "no workflow.patched calls found"
    histories = sorted(HISTORIES.glob("*.json"))
    markers = {h.name: patches_in(h) for h in histories}
    for patch in sorted(ids):
        after = [name for name, found in markers.items() if patch in found]
        before = [name for name, found in markers.items() if patch not in found]
        assert after, f"no recorded history takes patch {patch!r}: record one"
        assert before, f"no recorded history predates patch {patch!r}: keep the old ones"


def test_workers_do_not_use_worker_versioning() -> None:
    # Patching is the chosen strategy; a worker that opted into Worker Deployments would pin
    # incidents to its build and need old builds kept running for weeks.
    source = (PROJECT_ROOT / "worker.py").read_text(encoding="utf-8")
    assert "deployment_config" not in source and "use_worker_versioning" not in source
