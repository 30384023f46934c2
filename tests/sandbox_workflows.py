"""Workflows for tests/test_sandbox.py, in a module of their own: the sandbox imports it afresh
for every run (it is no module the worker passes through), so it imports nothing but what a
workflow module may."""

from __future__ import annotations

from datetime import datetime, timedelta

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


@workflow.defn(name="IncidentWorkflow", sandboxed=True)
class IncidentThatSleepsInstead:
    """An incident workflow changed without a patch: it sleeps where the real one takes its
    report in. Replaying a real incident's history through it must fail."""

    @workflow.run
    async def run(self, report: object) -> None:
        await workflow.sleep(timedelta(hours=1))
