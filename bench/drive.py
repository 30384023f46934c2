"""The general lifecycle, driven the same way into a Yuqing incident and into a bare workflow.

Both get the same payloads, from `demo/` (the README's walk-through): the report, then
`submit_report`, `submit_assessment`, `submit_draft`, `unit_head_approval` and
`publicity_lead_approval` through the `decide` update, each signed as the API signs it; then
the driver waits for the search attribute `IncidentStage` to say `monitoring` (the first
publication is out: `describe`, which costs the worker nothing); then `close_incident` and
`submit_review`; then the workflow's result. The report goes by update-with-start, as the API
sends it. A Yuqing incident is driven through its Temporal client (`yuqing.client`, the
`starter` functions), not the HTTP API: what is compared is the workflow's cost; the API is
measured on its own (`bench.latency`).
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from temporalio.api.history.v1 import History
from temporalio.client import Client, WithStartWorkflowOperation
from temporalio.common import (
    SearchAttributeKey,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)

from bench.bare import BARE_WORKFLOW
from starter import DECIDE_UPDATE, decide, report_incident
from yuqing import incident_workflow_id
from yuqing.models import AdditionalReport, IncidentReport
from yuqing.settings import PROJECT_ROOT
from yuqing.signing import Signer

if TYPE_CHECKING:
    from bench.stack import BenchStack

DEMO = PROJECT_ROOT / "demo"
STAGE = SearchAttributeKey.for_keyword("IncidentStage")
BEFORE_PUBLICATION = (
    ("submit_report", "02-report.json"),
    ("submit_assessment", "03-assessment.json"),
    ("submit_draft", "04-draft.json"),
    ("unit_head_approval", "05-unit-head-approval.json"),
    ("publicity_lead_approval", "06-publicity-lead-approval.json"),
)
AFTER_PUBLICATION = (
    ("close_incident", "07-close.json"),
    ("submit_review", "08-review.json"),
)
# How often the driver looks whether the statement is out (describe: server only).
STAGE_POLL = 0.1
PATIENCE = timedelta(seconds=120)


def demo(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((DEMO / name).read_text(encoding="utf-8"))
    return data


class Refused(RuntimeError):
    pass


def report_for(incident_id: str) -> IncidentReport:
    return IncidentReport.model_validate({**demo("01-incident.json"), "incident_id": incident_id})


def additional(report: IncidentReport, submission_id: str) -> dict[str, Any]:
    """The `add_evidence` payload update-with-start sends with a report (as `starter` does)."""
    return AdditionalReport(
        submission_id=submission_id,
        channel=report.channel,
        reporter_id=report.reporter_id,
        summary=report.summary or report.title,
        source_url=report.source_url,
        evidence=report.evidence,
        source=report.source,
    ).model_dump(mode="json")


async def until_stage(client: Client, workflow_id: str, stage: str) -> None:
    handle = client.get_workflow_handle(workflow_id)
    deadline = time.monotonic() + PATIENCE.total_seconds()
    while True:
        described = await handle.describe()
        if described.typed_search_attributes.get(STAGE) == stage:
            return
        if time.monotonic() > deadline:
            raise TimeoutError(f"{workflow_id} never reached {stage}")
        await asyncio.sleep(STAGE_POLL)


@dataclass
class Drivers:
    yuqing: Client
    bare: Client
    yuqing_queue: str
    bare_queue: str
    signer: Signer

    @classmethod
    async def of(cls, stack: BenchStack) -> Drivers:
        """Drivers of the bench stack's two task queues, signing with its own key."""
        from yuqing.client import connect
        from yuqing.signing import signer_from_env

        settings = stack.settings
        signer = signer_from_env(
            {
                "YUQING_SIGNING_KEY": str(settings.signing_key_path),
                "YUQING_SIGNING_KEY_ID": str(settings.signing_key_id),
            }
        )
        assert signer is not None
        return cls(
            yuqing=await connect(settings),
            bare=await Client.connect(stack.address, namespace=settings.temporal_namespace),
            yuqing_queue=stack.yuqing_queue,
            bare_queue=stack.bare_queue,
            signer=signer,
        )

    # -- Yuqing --------------------------------------------------------------------------------

    async def yuqing_report(self, incident_id: str) -> str:
        report = report_for(incident_id).model_copy(update={"submission_id": f"s-{incident_id}"})
        entry = await report_incident(self.yuqing, report, self.yuqing_queue, patience=PATIENCE)
        if entry.refused or entry.kind != "discovered":
            raise Refused(f"{incident_id}: {entry}")
        return incident_workflow_id(incident_id)

    async def yuqing_decide(self, workflow_id: str, signal: str, body: dict[str, Any]) -> None:
        payload = self.signer.sign(workflow_id, signal, body)
        entry = await decide(self.yuqing, workflow_id, signal, payload, patience=PATIENCE)
        if entry.refused:
            raise Refused(f"{workflow_id} {signal}: {entry.detail}")

    async def yuqing_lifecycle(self, incident_id: str) -> None:
        workflow_id = await self.yuqing_report(incident_id)
        for signal, name in BEFORE_PUBLICATION:
            await self.yuqing_decide(workflow_id, signal, demo(name))
        await until_stage(self.yuqing, workflow_id, "monitoring")
        for signal, name in AFTER_PUBLICATION:
            await self.yuqing_decide(workflow_id, signal, demo(name))
        await self.yuqing.get_workflow_handle(workflow_id).result()

    # -- bare ----------------------------------------------------------------------------------

    async def bare_report(self, incident_id: str) -> str:
        workflow_id = f"bare-{incident_id}"
        report = report_for(incident_id)
        start: WithStartWorkflowOperation[Any, Any] = WithStartWorkflowOperation(
            BARE_WORKFLOW,
            report.model_dump(mode="json"),
            id=workflow_id,
            task_queue=self.bare_queue,
            id_conflict_policy=WorkflowIDConflictPolicy.USE_EXISTING,
            id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE_FAILED_ONLY,
        )
        await self.bare.execute_update_with_start_workflow(
            DECIDE_UPDATE,
            {"signal": "add_evidence", "payload": additional(report, f"s-{incident_id}")},
            start_workflow_operation=start,
            rpc_timeout=PATIENCE,
        )
        return workflow_id

    async def bare_decide(self, workflow_id: str, signal: str, body: dict[str, Any]) -> None:
        payload = self.signer.sign(workflow_id, signal, body)
        await self.bare.get_workflow_handle(workflow_id).execute_update(
            DECIDE_UPDATE, {"signal": signal, "payload": payload}, rpc_timeout=PATIENCE
        )

    async def bare_lifecycle(self, incident_id: str) -> None:
        workflow_id = await self.bare_report(incident_id)
        for signal, name in BEFORE_PUBLICATION:
            await self.bare_decide(workflow_id, signal, demo(name))
        await until_stage(self.bare, workflow_id, "monitoring")
        for signal, name in AFTER_PUBLICATION:
            await self.bare_decide(workflow_id, signal, demo(name))
        await self.bare.get_workflow_handle(workflow_id).result()

    def lifecycle(self, kind: str) -> Callable[[str], Awaitable[None]]:
        return self.yuqing_lifecycle if kind == "yuqing" else self.bare_lifecycle

    def client(self, kind: str) -> Client:
        return self.yuqing if kind == "yuqing" else self.bare

    def workflow_id(self, kind: str, incident_id: str) -> str:
        return incident_workflow_id(incident_id) if kind == "yuqing" else f"bare-{incident_id}"


async def history_of(client: Client, workflow_id: str) -> History:
    fetched = await client.get_workflow_handle(workflow_id).fetch_history()
    return History(events=fetched.events)


async def gather_limited(
    count: int, concurrency: int, one: Callable[[int], Awaitable[None]]
) -> list[float]:
    """Run `one(i)` for i in range(count), `concurrency` at a time; each one's seconds."""
    gate = asyncio.Semaphore(concurrency)
    took: list[float] = []

    async def run(index: int) -> None:
        async with gate:
            started = time.perf_counter()
            await one(index)
            took.append(time.perf_counter() - started)

    await asyncio.gather(*(run(i) for i in range(count)))
    return took
