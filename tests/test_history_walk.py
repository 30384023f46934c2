"""`yuqing audit` reads a continued incident's runs, newest to oldest, asking each run's first
page for one event and the rest at once: against a stub of Temporal's history service that
pages as Temporal does (by a token; a first batch of two events when asked for one), every
run comes back whole and in order, an empty first page is read past, no page is asked for
twice, and a run Temporal lets go of between its pages is read from the archive."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History, HistoryEvent
from temporalio.api.workflowservice.v1 import (
    DescribeWorkflowExecutionRequest,
    DescribeWorkflowExecutionResponse,
    GetWorkflowExecutionHistoryRequest,
    GetWorkflowExecutionHistoryResponse,
)
from temporalio.converter import DataConverter
from temporalio.service import RPCError, RPCStatusCode

from yuqing.audit.history import RunHistory, load_runs

WORKFLOW_ID = "incident-walk"
DEFAULT_PAGE = 4  # Temporal's own is far larger; small here, so that runs take several pages


def _run(run_id: str, previous: str | None, events: int, continued: bool) -> list[HistoryEvent]:
    started = HistoryEvent(event_id=1, event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_STARTED)
    attributes = started.workflow_execution_started_event_attributes
    attributes.workflow_id = WORKFLOW_ID
    attributes.original_execution_run_id = run_id
    if previous:
        attributes.continued_execution_run_id = previous
    body = [
        HistoryEvent(event_id=n, event_type=EventType.EVENT_TYPE_TIMER_STARTED)
        for n in range(2, events)
    ]
    last = HistoryEvent(
        event_id=events,
        event_type=EventType.EVENT_TYPE_WORKFLOW_EXECUTION_CONTINUED_AS_NEW
        if continued
        else EventType.EVENT_TYPE_TIMER_FIRED,
    )
    return [started, *body, last]


@dataclass
class _Service:
    """Temporal's history service, as far as `load_runs` asks it."""

    runs: dict[str, list[HistoryEvent]]
    latest: str
    empty_first_page: set[str] = field(default_factory=set)
    gone_after_first_page: set[str] = field(default_factory=set)  # its retention passed
    asked: list[tuple[str, int, int]] = field(default_factory=list)  # run, from, size

    async def describe_workflow_execution(
        self, request: DescribeWorkflowExecutionRequest, **_: Any
    ) -> DescribeWorkflowExecutionResponse:
        assert request.execution.workflow_id == WORKFLOW_ID
        described = DescribeWorkflowExecutionResponse()
        described.workflow_execution_info.execution.run_id = self.latest
        return described

    async def get_workflow_execution_history(
        self, request: GetWorkflowExecutionHistoryRequest, **_: Any
    ) -> GetWorkflowExecutionHistoryResponse:
        run_id = request.execution.run_id
        token = request.next_page_token
        start = 0 if token in (b"", b"again") else int(token)
        size = request.maximum_page_size or DEFAULT_PAGE
        if size == 1:
            size = 2  # Temporal answers by batch: a run's first is its start and first task
        self.asked.append((run_id, start, request.maximum_page_size))
        if token and run_id in self.gone_after_first_page:
            raise RPCError("workflow execution not found", RPCStatusCode.NOT_FOUND, b"")
        if not token and run_id in self.empty_first_page:
            # An answer Temporal may give: no events, a token to go on from.
            return GetWorkflowExecutionHistoryResponse(next_page_token=b"again")
        events = self.runs[run_id][start : start + size]
        end = start + size
        token = str(end).encode() if end < len(self.runs[run_id]) else b""
        return GetWorkflowExecutionHistoryResponse(
            history=History(events=events), next_page_token=token
        )


@dataclass
class _Client:
    workflow_service: _Service
    namespace: str = "default"
    data_converter: DataConverter = field(default_factory=lambda: DataConverter.default)


async def test_each_run_is_read_whole_oldest_first_from_one_event_first_pages() -> None:
    runs = {
        "run-a": _run("run-a", None, 10, continued=True),
        "run-b": _run("run-b", "run-a", 9, continued=True),
        "run-c": _run("run-c", "run-b", 7, continued=False),
    }
    service = _Service(runs, latest="run-c", empty_first_page={"run-b"})
    read = await load_runs(_Client(service), WORKFLOW_ID)  # type: ignore[arg-type]
    assert [run.run_id for run in read] == ["run-a", "run-b", "run-c"]
    for run in read:
        assert [e.event_id for e in run.events] == list(range(1, len(runs[run.run_id]) + 1))
    # Each run's first page was asked with one event (run-b's twice: its first answer was
    # empty); no other page of any run twice.
    firsts = [(run, size) for run, start, size in service.asked if start == 0]
    assert firsts == [("run-c", 1), ("run-b", 1), ("run-b", 1), ("run-a", 1)]
    rest = [ask for ask in service.asked if ask[1] > 0]
    assert len(set(rest)) == len(rest) and all(size == 0 for _, _, size in rest)
    # The walk went on to the run before while the rest of each run was still to be read.
    assert service.asked.index(("run-a", 0, 1)) < service.asked.index(("run-c", 2, 0))


async def test_a_run_temporal_lets_go_of_between_its_pages_is_read_from_the_archive() -> None:
    runs = {
        "run-a": _run("run-a", None, 10, continued=True),
        "run-b": _run("run-b", "run-a", 6, continued=False),
    }
    service = _Service(runs, latest="run-b", gone_after_first_page={"run-a"})
    archived = RunHistory(WORKFLOW_ID, _run("run-a", None, 10, continued=True))
    asked: list[str] = []

    async def archive(run_id: str) -> RunHistory | None:
        asked.append(run_id)
        return archived if run_id == "run-a" else None

    read = await load_runs(_Client(service), WORKFLOW_ID, earlier=archive)  # type: ignore[arg-type]
    assert asked == ["run-a"]
    assert [run.run_id for run in read] == ["run-a", "run-b"]
    assert len(read[0].events) == 10
    # The latest run is Temporal's alone: gone between its pages, the audit says so.
    service = _Service(runs, latest="run-b", gone_after_first_page={"run-b"})
    with pytest.raises(RPCError) as raised:
        await load_runs(_Client(service), WORKFLOW_ID, earlier=archive)  # type: ignore[arg-type]
    assert raised.value.status == RPCStatusCode.NOT_FOUND
