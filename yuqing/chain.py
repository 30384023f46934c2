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


def approval_step(
    state: IncidentState, policy: Policy, roster: Roster, signal: str, approval: Approval
) -> ChainStep:
    """The chain step this approval fills; raises `Refused` when it cannot count.

    A problem of who sends it is `forbidden`; one of timing or draft version, a `conflict`.
    """
    if state.grade is None:
        raise Refused("the incident is not graded yet: approvals follow the assessment")
    if state.stage in (Stage.published, Stage.monitoring, Stage.closed, Stage.reviewed):
        raise Refused(f"the incident is {state.stage}: there is no draft awaiting approval")
    draft = state.current_draft
    if draft is None:
        raise Refused("no draft has been submitted yet")
    steps = policy.chain(state.grade)
    step = next((s for s in steps if s.signal == signal), None)
    if step is None:
        chain = " → ".join(s.title for s in steps)
        reason = f"{signal} is not part of the {state.grade} chain ({chain})"
        raise Refused(reason, RefusalKind.forbidden)
    who = roster.role_refusal(approval.approver_id, step.role, state.unit)
    if who is not None:
        raise Refused(who, RefusalKind.forbidden)
    if approval.draft_version != draft.version:
        raise Refused(
            f"draft version {approval.draft_version} is not the current draft "
            f"(version {draft.version})"
        )
    if draft.status is DraftStatus.returned:
        raise Refused(f"draft version {draft.version} was returned; a new version is needed")
    if draft.status is DraftStatus.approved:
        raise Refused(f"draft version {draft.version} is approved and being published")
    for earlier in steps[: steps.index(step)]:
        if not _approved(state.approvals, earlier, draft.version):
            raise Refused(f"{earlier.title} must come before {step.title}")
    if _approved(state.approvals, step, draft.version):
        raise Refused(f"{step.title} has already approved draft version {draft.version}")
    return step


def chain_complete(
    policy: Policy, grade: Grade, approvals: list[ApprovalRecord], version: int
) -> bool:
    return not missing_steps(policy, grade, approvals, version)


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
