"""The approval chain per grade (SPEC §2.4): who may approve which draft, and when it is done.

Pure functions over the incident state, shared by the workflow (to decide) and the publishing
activity (to refuse, a second time, anything published without a complete chain).
"""

from __future__ import annotations

from yuqing.models import Approval, Decision, Grade
from yuqing.outcomes import RefusalKind, Refused
from yuqing.policy import ChainStep, Policy
from yuqing.roster import Roster
from yuqing.state import ApprovalRecord, DraftStatus, IncidentState, Stage


def approval_refusal(
    state: IncidentState, policy: Policy, roster: Roster, signal: str, approval: Approval
) -> tuple[Refused | None, ChainStep | None]:
    """Why this approval cannot count (None when it can), and the chain step it fills.

    A problem of who sends it is `forbidden`; one of timing or draft version, a `conflict`.
    """
    if state.grade is None:
        return _conflict("the incident is not graded yet: approvals follow the assessment")
    if state.stage in (Stage.published, Stage.monitoring, Stage.closed, Stage.reviewed):
        return _conflict(f"the incident is {state.stage}: there is no draft awaiting approval")
    draft = state.current_draft
    if draft is None:
        return _conflict("no draft has been submitted yet")
    steps = policy.chain(state.grade)
    step = next((s for s in steps if s.signal == signal), None)
    if step is None:
        chain = " → ".join(s.title for s in steps)
        reason = f"{signal} is not part of the {state.grade} chain ({chain})"
        return Refused(reason, RefusalKind.forbidden), None
    who = roster.role_refusal(approval.approver_id, step.role, state.unit)
    if who is not None:
        return Refused(who, RefusalKind.forbidden), step
    if approval.draft_version != draft.version:
        return _conflict(
            f"draft version {approval.draft_version} is not the current draft "
            f"(version {draft.version})",
            step,
        )
    if draft.status is DraftStatus.returned:
        return _conflict(
            f"draft version {draft.version} was returned; a new version is needed", step
        )
    if draft.status is DraftStatus.approved:
        return _conflict(f"draft version {draft.version} is approved and being published", step)
    for earlier in steps[: steps.index(step)]:
        if not _approved(state.approvals, earlier, draft.version):
            return _conflict(f"{earlier.title} must come before {step.title}", step)
    if _approved(state.approvals, step, draft.version):
        return _conflict(f"{step.title} has already approved draft version {draft.version}", step)
    return None, step


def _conflict(
    reason: str, step: ChainStep | None = None
) -> tuple[Refused | None, ChainStep | None]:
    return Refused(reason, RefusalKind.conflict), step


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
