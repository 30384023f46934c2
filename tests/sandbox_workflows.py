"""Two workflows for tests/test_sandbox.py, in a module of their own: the sandbox imports it
afresh for every run, so it imports nothing but what a workflow module may."""

from __future__ import annotations

from datetime import datetime

from temporalio import workflow


@workflow.defn(sandboxed=True)
class ReadsTheClock:
    @workflow.run
    async def run(self) -> str:
        return datetime.now().isoformat()


@workflow.defn(sandboxed=True)
class Echoes:
    @workflow.run
    async def run(self, text: str) -> str:
        return f"{workflow.info().workflow_id}: {text}"
