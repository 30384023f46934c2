"""The sandbox the worker runs workflows in: the SDK's own, doing less work per payload.

The SDK's sandboxed runner reaches into each workflow's sandbox through `exec` of a few lines
of source: once per activation (to run it), and once more for every payload sequence the SDK's
payload visitor meets on the way in and out (to ask which serialization context applies), three
visitors each way. Every one of those `exec` calls compiles its snippet again, and enters and
leaves the sandbox's import machinery. On an incident's life that came to a fifth of the
worker's time (py-spy, issue 9).

Here:

- the snippets are compiled once per process and the code objects reused (the same text
  always compiles to the same code);
- the serialization and external-storage context, a pure function of the workflow's own
  pending commands and its info, is asked of the in-sandbox instance directly. Nothing is
  imported or restricted on that path, so the sandbox's import hooks have nothing to guard;
- the workflows' own modules (`WORKFLOW_MODULES`) are passed through: imported once per
  process, like the decision modules they import (`imports_passed_through`), instead of once
  per run. The SDK otherwise executes `workflows/incident.py` afresh for every incident it
  holds: its code objects, classes and handler tables, about 130 KiB a run, more than a fifth
  of what a parked incident cost the worker (issue 9). A run's state lives in its instance;
  these modules hold none of their own (tests/test_sandbox.py checks every module a run
  shares with the process), so sharing them changes nothing a run does.

Activations still run inside the sandbox, with its restrictions on builtins and on every module
a run imports afresh; code in a passed-through module reaches the real `datetime` and `random`
(as the decision modules always did), so the determinism of those rests on their review and on
the replay tests, which replay every saved history through this runner. Should an SDK release
change the internals this leans on, `lean_runner()` says so and returns the SDK's runner (and
the test of this module fails, so an upgrade is noticed before it is deployed).
"""

from __future__ import annotations

import threading
from functools import cache
from types import CodeType
from typing import Any

import structlog
import temporalio.workflow
from temporalio.worker import WorkflowRunner
from temporalio.worker.workflow_sandbox import SandboxedWorkflowRunner, SandboxRestrictions

log = structlog.get_logger("yuqing.sandbox")

_IN_SANDBOX = "__temporal_in_sandbox"

# mem (issue 9): one import per process of the workflow modules, not one per run (see above).
WORKFLOW_MODULES = ("workflows",)


@cache
def _compiled(code: str) -> CodeType:
    return compile(code, "workflow_sandbox.py", "exec")


def _lean_instance_class() -> type[Any] | None:
    """A subclass of the SDK's sandbox instance, or None if its internals are not as expected."""
    try:
        from temporalio.worker.workflow_sandbox import _runner
        from temporalio.worker.workflow_sandbox._in_sandbox import InSandbox
    except ImportError:
        return None
    base = getattr(_runner, "_Instance", None)
    contexts = ("get_serialization_context", "get_external_store_context")
    if base is None or not all(hasattr(base, name) for name in ("_run_code", *contexts)):
        return None
    if not all(hasattr(InSandbox, name) for name in contexts):
        return None

    class LeanInstance(base):  # type: ignore[misc, valid-type]
        _current_thread_id: int | None

        def _run_code(self, code: str, **extra_globals: Any) -> None:
            # The SDK's body, with the compiled code kept (it compiles the text every call).
            for key, value in extra_globals.items():
                self.globals_and_locals[key] = value
            try:
                temporalio.workflow.unsafe._set_in_sandbox(True)
                self._current_thread_id = threading.get_ident()
                exec(_compiled(code), self.globals_and_locals, self.globals_and_locals)
            finally:
                temporalio.workflow.unsafe._set_in_sandbox(False)
                self._current_thread_id = None
                for key in extra_globals:
                    self.globals_and_locals.pop(key, None)

        def get_serialization_context(self, command_info: Any) -> Any:
            return self.globals_and_locals[_IN_SANDBOX].get_serialization_context(command_info)

        def get_external_store_context(self, command_info: Any) -> Any:
            return self.globals_and_locals[_IN_SANDBOX].get_external_store_context(command_info)

    return LeanInstance


_LEAN = _lean_instance_class()


class LeanSandboxedWorkflowRunner(SandboxedWorkflowRunner):
    """`SandboxedWorkflowRunner` whose instances reuse compiled snippets and answer the
    serialization context without entering the sandbox's import machinery."""

    def create_instance(self, det: Any) -> Any:
        assert _LEAN is not None
        return _LEAN(det, self.runner_class, self.restrictions)


def lean_runner(restrictions: SandboxRestrictions | None = None) -> WorkflowRunner:
    """The worker's workflow runner: the lean one, or the SDK's if this SDK differs."""
    restrictions = (restrictions or SandboxRestrictions.default).with_passthrough_modules(
        *WORKFLOW_MODULES
    )
    if _LEAN is None:
        log.warning(
            "this Temporal SDK's sandbox is not the one the lean runner knows;"
            " using the SDK's own runner (slower, same behaviour)"
        )
        return SandboxedWorkflowRunner(restrictions=restrictions)
    return LeanSandboxedWorkflowRunner(restrictions=restrictions)


def is_lean(runner: WorkflowRunner) -> bool:
    return isinstance(runner, LeanSandboxedWorkflowRunner)
