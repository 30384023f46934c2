"""Every input has a documented bound, and whatever is sent the state stays small.

Pure tests: no server. The models are walked for every text field, and an incident filled to
every limit is measured as the `state` query answers it and as its next run would take it.
"""

from __future__ import annotations

import inspect
import json
import types
import typing
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, get_args, get_origin

import pytest
from pydantic import BaseModel, ValidationError

import api.schemas
import yuqing.models
from yuqing import limits
from yuqing.effects import Configuration, Continued
from yuqing.limits import UNBOUNDED, MaxChars, MaxItems
from yuqing.models import (
    SIGNAL_PAYLOADS,
    Approval,
    Assessment,
    IncidentReport,
    LegalOpinion,
    MetricsUpdate,
    report_time_problem,
)
from yuqing.policy import load_policy
from yuqing.roster import load_roster
from yuqing.settings import Settings
from yuqing.state import (
    ApprovalRecord,
    Deadline,
    Draft,
    FixedEvidence,
    IncidentState,
    Notification,
    PostAction,
    PostState,
    TrailEntry,
)

# Models the API answers with, not reads: what they hold was bounded on the way in.
ANSWERS = {"ReportAccepted"}


def input_models() -> list[type[BaseModel]]:
    """Every pydantic model a caller's JSON is read into: the models and the API's bodies."""
    found: list[type[BaseModel]] = []
    for module in (yuqing.models, api.schemas):
        for _, value in inspect.getmembers(module, inspect.isclass):
            if issubclass(value, BaseModel) and value.__module__ == module.__name__:
                if value.__name__ not in ANSWERS:
                    found.append(value)
    return found


def unbounded(annotation: Any, metadata: list[Any], where: str) -> list[str]:
    """Where, inside one field's type, a text or a list has no documented maximum."""
    problems: list[str] = []
    if get_origin(annotation) is Annotated:
        inner, *more = get_args(annotation)
        return unbounded(inner, [*metadata, *more], where)
    if annotation is str:
        if not any(isinstance(m, MaxChars) for m in metadata):
            problems.append(f"{where}: a text without a maximum")
        return problems
    origin = get_origin(annotation)
    if origin in (list, dict, set, tuple):
        if not any(isinstance(m, MaxItems) for m in metadata):
            problems.append(f"{where}: a {origin.__name__} without a maximum of items")
        for arg in get_args(annotation):
            problems += unbounded(arg, [], f"{where}[]")
        return problems
    if origin in (typing.Union, types.UnionType):
        for arg in get_args(annotation):
            if arg is not type(None):
                problems += unbounded(arg, metadata, where)
    return problems


@pytest.mark.parametrize("model", input_models(), ids=lambda m: m.__name__)
def test_every_text_and_list_of_every_input_has_a_documented_maximum(
    model: type[BaseModel],
) -> None:
    problems: list[str] = []
    for name, field in model.model_fields.items():
        problems += unbounded(field.annotation, list(field.metadata), f"{model.__name__}.{name}")
    assert problems == []
    # And the maximum shows in the schema the API documents (OpenAPI, /docs).
    schema = json.dumps(model.model_json_schema())
    assert '"type": "string"' not in schema or "maxLength" in schema


def test_limits_are_refused_naming_the_field_and_the_limit() -> None:
    cases: list[tuple[type[BaseModel], dict[str, Any], str, str]] = [
        (
            LegalOpinion,
            {"author_id": "zhao.lei", "opinion": "法" * (limits.STATEMENT_CHARS + 1)},
            "opinion",
            f"at most {limits.STATEMENT_CHARS} characters",
        ),
        (
            Assessment,
            {"assessor_id": "li.ming", "cross_district": "yes"},
            "cross_district",
            "must be true or false",
        ),
        (
            Approval,
            {"approver_id": "a", "decision": "approve", "draft_version": "1"},
            "draft_version",
            "whole number",
        ),
        (MetricsUpdate, {"source": "m", "weibo_reposts": float("inf")}, "weibo_reposts", "inf"),
        (MetricsUpdate, {"source": "m", "weibo_reposts": float("nan")}, "weibo_reposts", "nan"),
        (MetricsUpdate, {"source": "m\x00"}, "source", "NUL"),
        (MetricsUpdate, {"source": "m\ud800"}, "source", "unicode"),
        (
            MetricsUpdate,
            {"source": "m", "districts": [f"d{i}" for i in range(limits.LIST_ITEMS + 1)]},
            "districts",
            f"at most {limits.LIST_ITEMS} items",
        ),
    ]
    for model, data, field, words in cases:
        with pytest.raises(ValidationError) as refused:
            model.model_validate(data)
        error = refused.value.errors()[0]
        assert error["loc"][0] == field, (model, error)
        assert words in error["msg"], (model, error["msg"])
    # A history from before the bounds is read as it was decided (replay).
    long = {"author_id": "zhao.lei", "opinion": "法" * (limits.STATEMENT_CHARS + 1)}
    assert LegalOpinion.model_validate(long, context=UNBOUNDED).opinion == long["opinion"]


def test_dates_are_checked_for_sense() -> None:
    base = {
        "incident_id": "t-1",
        "title": "t",
        "channel": "weibo",
        "reporter_id": "chen.jing",
        "unit": "xixiangtang-branch",
        "sensitivity": "important",
    }
    for absurd in ("9999-12-31T00:00:00Z", "1900-01-01T00:00:00Z"):
        with pytest.raises(ValidationError, match="years 2000 to 2099"):
            IncidentReport.model_validate({**base, "discovered_at": absurd})
    now = datetime(2026, 12, 1, tzinfo=UTC)
    for when, words in (
        (now + timedelta(days=1), "in the future"),
        (now - timedelta(days=400), "more than 366 days ago"),
    ):
        report = IncidentReport.model_validate({**base, "discovered_at": when})
        problem = report_time_problem(report, now)
        assert problem is not None and problem.startswith("discovered_at: ") and words in problem
    assert report_time_problem(IncidentReport.model_validate(base), now) is None


def full_incident() -> IncidentState:
    """An incident holding as much as the limits let it hold, every text at its longest."""
    at = datetime(2026, 12, 1, tzinfo=UTC)
    text = "字" * limits.TEXT_CHARS
    note = "字" * limits.NOTE_CHARS
    statement = "字" * limits.STATEMENT_CHARS
    url = "https://weibo.example/" + "x" * (limits.URL_CHARS - 22)
    name = "名" * limits.NAME_CHARS
    deadline = Deadline(
        key="netizen_formal_reply",
        title=name,
        clock="working_days",
        starts_at=at,
        due_at=at,
        reminders_at=[at, at],
        remind=[],
        escalate_to=[],
        responsible_unit="xixiangtang-branch",
        responsible_person="huang.wei",
        policy_version="v",
    )
    entry = TrailEntry(at=at, kind="refused", actor="x" * 64, detail="字" * 1000, signal="s")
    action = PostAction(by="chen.jing", at=at, text=statement)
    posts = [
        PostState(
            post_id=f"p{i}",
            workflow_id=f"incident-t-1-post-p{i}",
            incident_id="t-1",
            unit="xixiangtang-branch",
            platform=name,
            author=name,
            content=text,
            url=url,
            learnt_at=at,
            received_by="chen.jing",
            initial_response=action,
            formal_reply=action,
            deadlines=[deadline, deadline],
            trail=[entry] * 5,
        ).listed()
        for i in range(limits.POSTS_MAX)
    ]
    return IncidentState(
        incident_id="t-1",
        workflow_id="incident-t-1",
        title=name,
        channel="weibo",
        unit="xixiangtang-branch",
        reporter_id="chen.jing",
        summary=text,
        source_url=url,
        sensitivity="important",
        discovered_at=at,
        deadlines=[deadline] * 10,
        trail=[entry] * 2000,
        drafts=[
            Draft(version=v, author_id="chen.jing", text=statement, channels=[], submitted_at=at)
            for v in range(1, limits.DRAFTS_MAX + 1)
        ],
        approvals=[
            ApprovalRecord(
                signal="unit_head_approval",
                role="unit_head",
                approver_id="huang.wei",
                decision="reject",
                draft_version=1,
                comment=note,
                at=at,
            )
        ]
        * (limits.DRAFTS_MAX * 4),
        legal_opinions=[
            LegalOpinion(author_id="zhao.lei", opinion=statement, legal_basis=note)
        ]
        * limits.OPINIONS_MAX,
        evidence=[
            FixedEvidence(
                evidence_id="t-1-e1",
                kind="screenshot",
                source_url=url,
                description=note,
                captured_at=at,
                sha256="0" * 64,
                size_bytes=1,
            )
        ]
        * limits.EVIDENCE_MAX,
        submissions=[name] * limits.REPORTS_MAX,
        notifications=[
            Notification(
                idempotency_key="k" * 120,
                kind="reminder",
                subject=name * 2,
                recipients=["李明 (办公室)"] * 8,
                channel="outbox",
                result=name,
                sent_at=at,
            )
        ]
        * 200,
        posts=posts,
    )


def test_the_state_answer_and_the_next_runs_input_stay_far_under_temporals_limits() -> None:
    state = full_incident()
    view = len(state.view().model_dump_json())
    settings = Settings()
    config = Configuration(
        policy=load_policy(settings.policy_path), roster=load_roster(settings.roster_path)
    )
    # The next run carries the trail lines not yet copied: at most CARRIED_TRAIL_LINES (50).
    carried = state.carried().model_copy(update={"trail": state.trail[:50]})
    continued = len(
        Continued(state=carried, configuration=config, responsible_person="huang.wei")
        .model_dump_json()
        .encode()
    )
    print(f"worst case: state answer {view} bytes, next run's input {continued} bytes")
    # Temporal refuses payloads over 2 MB (and warns over 512 KB).
    assert view < 512 * 1024
    assert continued < 1024 * 1024
    assert SIGNAL_PAYLOADS  # every signal's payload is among the models checked above
