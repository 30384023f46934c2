"""The bare workflow: a Yuqing incident's shape (`bench.shape`) with no decision code in it.

It takes the same start input and the same `decide` updates as an incident (the bench sends
it the very same payloads), runs an activity, a local activity or a timer wherever the
incident's history had one, in the same causal order, upserts the same search attributes and
the memo as often, answers each update when the incident's history did, and completes when
the incident would. Its activities take and return a few bytes. Everything else is what
Temporal and its Python SDK cost with their defaults (sandbox, JSON converter, cache size).

The shape is the worker's: `python -m bench.bare_worker --shape FILE` loads it before the
worker starts, and every run reads that one (constant for the worker's life, so replay-safe).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from datetime import timedelta
from typing import Any

from temporalio import activity, workflow
from temporalio.common import SearchAttributeKey, SearchAttributeUpdate

with workflow.unsafe.imports_passed_through():
    # `import a.b`, not `from a import b`: the latter would re-import it in each sandbox.
    import bench.shape as shapes

BARE_WORKFLOW = "BareLifecycle"
BARE_ACTIVITY = "bare_step"


@activity.defn(name=BARE_ACTIVITY)
async def bare_step(node: str) -> None:
    """An activity that does nothing: Temporal's cost of one, and no more."""


def _update(name: str, kind: str, value: Any) -> SearchAttributeUpdate[Any] | None:
    keys: dict[str, Any] = {
        "KEYWORD": SearchAttributeKey.for_keyword,
        "TEXT": SearchAttributeKey.for_text,
        "BOOL": SearchAttributeKey.for_bool,
        "INT": SearchAttributeKey.for_int,
        "FLOAT": SearchAttributeKey.for_float,
    }
    maker = keys.get(kind)
    if maker is None:
        return None
    key = maker(name)
    update: SearchAttributeUpdate[Any] = key.value_set(value)
    return update


@workflow.defn(name=BARE_WORKFLOW)
class BareLifecycle:
    @workflow.init
    def __init__(self, report: Any) -> None:
        shape = shapes.current()
        self._shape = shape
        self._nodes: dict[str, list[shapes.Node]] = defaultdict(list)
        for node in shape.nodes:
            self._nodes[node.trigger].append(node)
        self._cancels: dict[str, list[str]] = defaultdict(list)
        for timer, trigger in shape.cancels:
            self._cancels[trigger].append(timer)
        self._upserts: dict[str, list[list[tuple[str, str, Any]]]] = defaultdict(list)
        for trigger, values in shape.upserts:
            self._upserts[trigger].append(values)
        self._memos: dict[str, int] = defaultdict(int)
        for trigger in shape.memos:
            self._memos[trigger] += 1
        self._updates = 0
        self._answered = 0
        self._running = 0
        self._done: set[str] = set()
        self._timers: dict[str, asyncio.Task[None]] = {}
        self._memo_count = 0

    @workflow.run
    async def run(self, report: Any) -> str:
        for index in range(self._shape.patches):
            workflow.patched(f"bare-{index}")
        self._react("start")
        await workflow.wait_condition(
            lambda: self._answered >= self._shape.updates and self._running == 0
        )
        return "done"

    @workflow.update(name="decide")
    async def decide(self, request: Any) -> dict[str, Any]:
        index = self._updates
        self._updates += 1
        trigger = f"u{index}"
        self._react(trigger)
        answers = self._shape.answers
        answer = answers[index] if index < len(answers) else trigger
        if answer != trigger:
            await workflow.wait_condition(lambda: answer in self._done)
        self._answered += 1
        return {"kind": "accepted", "seq": index}

    def _react(self, trigger: str) -> None:
        for values in self._upserts.get(trigger, ()):
            updates = [u for u in (_update(*v) for v in values) if u is not None]
            if updates:
                workflow.upsert_search_attributes(updates)
        for _ in range(self._memos.get(trigger, 0)):
            self._memo_count += 1
            workflow.upsert_memo({"bare": self._memo_count})
        for timer in self._cancels.get(trigger, ()):
            task = self._timers.get(timer)
            if task is not None:
                task.cancel()
        for node in self._nodes.get(trigger, ()):
            if node.kind == "timer":
                self._timers[node.id] = asyncio.create_task(self._timer(node))
            else:
                self._running += 1
                asyncio.create_task(self._step(node))  # noqa: RUF006 - counted in _running

    async def _step(self, node: shapes.Node) -> None:
        try:
            if node.kind == "local":
                await workflow.execute_local_activity(
                    BARE_ACTIVITY, node.id, start_to_close_timeout=timedelta(seconds=30)
                )
            else:
                await workflow.execute_activity(
                    BARE_ACTIVITY, node.id, start_to_close_timeout=timedelta(seconds=30)
                )
            self._done.add(node.id)
            self._react(node.id)
        finally:
            self._running -= 1

    async def _timer(self, node: shapes.Node) -> None:
        try:
            await asyncio.sleep(node.seconds)
        except asyncio.CancelledError:
            return
        self._done.add(node.id)
        self._react(node.id)
