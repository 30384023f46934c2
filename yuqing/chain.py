"""The approval chain per grade (SPEC §2.4): who may approve which draft, and when it is done.

Pure functions over the incident state, shared by the workflow (to decide) and the publishing
activity (to refuse, a second time, anything published without a complete chain).
"""

from __future__ import annotations

from yuqing.models import Approval, Decision, Grade
from yuqing.policy import ChainStep, Policy
from yuqing.roster import Roster
from yuqing.state import ApprovalRecord, DraftStatus, IncidentState, Stage


def approval_refusal(
    state: IncidentState, policy: Policy, roster: Roster, signal: str, approval: Approval
) -> tuple[str | None, ChainStep | None]:
    """Why this approval cannot count (None when it can), and the chain step it fills."""
    if state.grade is None:
        return "the incident is not graded yet: approvals follow the assessment", None
    if state.stage in (Stage.published, Stage.monitoring, Stage.closed, Stage.reviewed):
        return f"the incident is {state.stage}: there is no draft awaiting approval", None
    draft = state.current_draft
    if draft is None:
        return "no draft has been submitted yet", None
    steps = policy.chain(state.grade)
    step = next((s for s in steps if s.signal == signal), None)
    if step is None:
        chain = " → ".join(s.title for s in steps)
        return f"{signal} is not part of the {state.grade} chain ({chain})", None
    who = roster.role_refusal(approval.approver_id, step.role, state.unit)
    if who is not None:
        return who, step
    if approval.draft_version != draft.version:
        return (
            f"draft version {approval.draft_version} is not the current draft "
            f"(version {draft.version})",
            step,
        )
    if draft.status is DraftStatus.returned:
        return f"draft version {draft.version} was returned; a new version is needed", step
    for earlier in steps[: steps.index(step)]:
        if not _approved(state.approvals, earlier, draft.version):
            return f"{earlier.title} must come before {step.title}", step
    if _approved(state.approvals, step, draft.version):
        return f"{step.title} has already approved draft version {draft.version}", step
    return None, step


def chain_complete(
    policy: Policy, grade: Grade, approvals: list[ApprovalRecord], version: int
) -> bool:
    return all(_approved(approvals, step, version) for step in policy.chain(grade))


def missing_steps(
    policy: Policy, grade: Grade, approvals: list[ApprovalRecord], version: int
) -> list[ChainStep]:
    return [step for step in policy.chain(grade) if not _approved(approvals, step, version)]


def _approved(approvals: list[ApprovalRecord], step: ChainStep, version: int) -> bool:
    return any(
        a.signal == step.signal
        and a.draft_version == version
        and a.decision is Decision.approve
        and not a.void
        for a in approvals
    )
