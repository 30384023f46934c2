"""Drafts, rejections and every kind of refused signal: refused, recorded, nothing changed."""

from __future__ import annotations

from datetime import UTC, datetime

import asyncpg
import pytest
from temporalio.exceptions import ApplicationError
from temporalio.testing import ActivityEnvironment

from activities.publications import PublicationActivities
from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from yuqing.effects import PublishStatement
from yuqing.models import Decision, Grade, PublicationChannel
from yuqing.policy import load_policy
from yuqing.roles import Role
from yuqing.settings import Settings
from yuqing.state import ApprovalRecord


async def assessed_general(driver: IncidentDriver) -> None:
    await driver.start(report())
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})


async def test_rejection_and_new_draft_void_older_approvals(driver: IncidentDriver) -> None:
    await assessed_general(driver)
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "第一稿"})
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    await driver.accepted(
        "publicity_lead_approval", approval("zhou.min", 1, "reject", "措辞不当，补充处理结果")
    )
    state = await driver.until(lambda s: any(n.kind == "draft_returned" for n in s.notifications))
    assert state.stage == "handling"
    assert state.drafts[0].status == "returned"
    assert state.drafts[0].returned_reason == "措辞不当，补充处理结果"
    returned = next(n for n in state.notifications if n.kind == "draft_returned")
    assert "陈静 (西乡塘分局)" in returned.recipients
    # The returned draft takes no more approvals.
    await driver.refused("publicity_lead_approval", approval("zhou.min", 1))

    await driver.accepted("submit_draft", {"author_id": "huang.wei", "text": "第二稿"})
    state = await driver.state()
    assert [a.void for a in state.approvals] == [True, True]
    assert state.approvals[0].void_reason == "superseded by draft version 2"
    # The unit head's signature of version 1 does not carry over to version 2.
    refusal = await driver.refused("publicity_lead_approval", approval("zhou.min", 2))
    assert "unit head signs must come before publicity lead approves" in refusal.detail

    await driver.accepted("unit_head_approval", approval("huang.wei", 2))
    # A new version while one is in review voids its approvals too.
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "第三稿"})
    state = await driver.state()
    assert [d.status for d in state.drafts] == ["returned", "superseded", "in_review"]
    assert all(a.void for a in state.approvals)
    await driver.refused("unit_head_approval", approval("huang.wei", 2))
    await driver.accepted("unit_head_approval", approval("huang.wei", 3))
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 3))
    state = await driver.until_published()
    assert {p.draft_version for p in state.publications} == {3}
    rows = await driver.rows("publications")
    assert {r["draft_version"] for r in rows} == {3}
    await driver.save_history("rejection_and_new_drafts")


async def test_wrong_approvals_refused_and_recorded(driver: IncidentDriver) -> None:
    await driver.start(report())
    # Before the incident is reported, assessed or drafted.
    refusal = await driver.refused("unit_head_approval", approval("huang.wei", 1))
    assert "not graded yet" in refusal.detail
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    refusal = await driver.refused("unit_head_approval", approval("huang.wei", 1))
    assert refusal.detail == "no draft has been submitted yet"
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "通报"})
    # The report's notice goes out after its decision; the snapshot to compare with is the
    # incident at rest, or a notice landing between the two snapshots would look like a change.
    await driver.settle()
    before = await driver.state()

    cases = [
        # The head of another unit.
        (
            "unit_head_approval",
            approval("liu.yang", 1),
            "liu.yang is unit_head of qingxiu-branch, not of xixiangtang-branch",
            "forbidden",
        ),
        # Someone without the role.
        (
            "unit_head_approval",
            approval("chen.jing", 1),
            "chen.jing does not hold the role",
            "forbidden",
        ),
        # Someone not in the roster at all.
        (
            "unit_head_approval",
            approval("stranger", 1),
            "'stranger' is not in the roster",
            "forbidden",
        ),
        # A draft that does not exist.
        (
            "unit_head_approval",
            approval("huang.wei", 7),
            "draft version 7 is not the current draft (version 1)",
            "conflict",
        ),
        # Out of order: the publicity lead before the unit head.
        ("publicity_lead_approval", approval("zhou.min", 1), "must come before", "conflict"),
        # Malformed: no draft version, a decision that is not one, a rejection with no reason.
        (
            "unit_head_approval",
            {"approver_id": "huang.wei", "decision": "approve"},
            "draft_version: Field required",
            "malformed",
        ),
        (
            "unit_head_approval",
            {**approval("huang.wei", 1), "decision": "maybe"},
            "decision: Input should be 'approve' or 'reject'",
            "malformed",
        ),
        (
            "unit_head_approval",
            approval("huang.wei", 1, "reject"),
            "a rejection must give its reason in comment",
            "malformed",
        ),
        ("unit_head_approval", "yes", "Input should be a valid dictionary", "malformed"),
        # A signal the plan does not have.
        (
            "approve_everything",
            {"approver_id": "tang.guo"},
            "not a signal this incident takes",
            "unknown",
        ),
    ]
    for signal, payload, reason, kind in cases:
        refusal = await driver.refused(signal, payload)
        assert reason in refusal.detail, (signal, refusal.detail)
        assert refusal.refusal_kind == kind, (signal, refusal.detail)

    after = await driver.state()
    assert after.approvals == [] and after.publications == []
    unchanged = {"trail", "refused_total", "trail_total", "trail_offset"}
    assert after.model_dump(exclude=unchanged) == before.model_dump(exclude=unchanged)
    assert after.refused_total == before.refused_total + len(cases)
    refused = [e for e in await driver.trail() if e.refused]
    assert len(refused) == len(cases) + 2 == after.refused_total
    assert refused[2].actor == "liu.yang" and refused[2].signal == "unit_head_approval"
    await driver.save_history("refused_signals")


async def test_incomplete_upward_report_refused_with_missing_elements(
    driver: IncidentDriver,
) -> None:
    await driver.start(report())
    incomplete = {
        **UPWARD_REPORT,
        "facts": {k: v for k, v in UPWARD_REPORT["facts"].items() if k != "place"},
    }
    del incomplete["comment_tendency"]
    refusal = await driver.refused("submit_report", incomplete)
    assert "facts.place: Field required" in refusal.detail
    assert "comment_tendency: Field required" in refusal.detail
    state = await driver.state()
    assert state.stage == "discovered" and state.report is None
    assert all(d.status == "pending" for d in state.deadlines)
    # Only the Office or the responsible unit reports.
    refusal = await driver.refused("submit_report", {**UPWARD_REPORT, "reporter_id": "liu.yang"})
    assert "liu.yang is not office or unit or unit_head for xixiangtang-branch" in refusal.detail


async def test_nothing_published_before_the_chain_is_complete(
    driver: IncidentDriver, pool: asyncpg.Pool, settings: Settings
) -> None:
    await assessed_general(driver)
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "未经审定"})
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    state = await driver.state()
    assert state.publications == [] and state.stage == "approving"
    assert await driver.rows("publications") == []

    # Even called directly, the publishing activity refuses a draft whose chain is incomplete.
    publish = PublicationActivities(pool, settings.statement_base_url).publish_statement
    request = PublishStatement(
        idempotency_key=f"{state.workflow_id}/draft-1/website",
        incident_id=state.incident_id,
        channel=PublicationChannel.website,
        draft_version=1,
        text="未经审定",
        grade=Grade.general,
        approvals=[
            ApprovalRecord(
                signal="unit_head_approval",
                role=Role.unit_head,
                approver_id="huang.wei",
                decision=Decision.approve,
                draft_version=1,
                comment="",
                at=datetime.now(UTC),
            ),
        ],
        policy=load_policy(settings.policy_path),
    )
    with pytest.raises(ApplicationError) as refused:
        await ActivityEnvironment().run(publish, request)
    assert refused.value.type == "ApprovalChainIncomplete"
    assert refused.value.non_retryable
    assert "publicity lead approves" in str(refused.value)
    assert await driver.rows("publications") == []


async def test_a_signal_with_two_values_is_refused_not_stuck(driver: IncidentDriver) -> None:
    await driver.start(report())
    assert driver.handle is not None
    before = len((await driver.state()).trail)
    await driver.handle.signal("submit_report", args=[UPWARD_REPORT, UPWARD_REPORT])
    state = await driver.until(lambda s: len(s.trail) > before)
    refusal = state.trail[-1]
    assert refusal.refused and refusal.refusal_kind == "malformed"
    assert "expected one JSON object as the payload, got 2 values" in refusal.detail
    # The incident goes on: the same report, sent properly, is taken.
    await driver.accepted("submit_report", UPWARD_REPORT)


async def test_a_nul_character_is_refused_as_malformed(driver: IncidentDriver) -> None:
    await driver.start(report())
    refusal = await driver.refused("submit_report", {**UPWARD_REPORT, "medium": "微博\x00"})
    assert refusal.refusal_kind == "malformed" and "NUL" in refusal.detail
    await driver.accepted("submit_report", UPWARD_REPORT)
