"""What the signed-in person may see and do, as the console offers it (SPEC §8, §1).

Both come from the authorization file (`yuqing.authorization`), the same rules the API and
the incident apply: who reads which unit's incidents (`read_scope`), and which roles may send
each signal. The incident still decides every action itself, and refuses (and records) what
is not the sender's to do; this module decides only what to *offer*: the incidents a person is
shown and the forms on an incident's page, each also at the stage where it can be taken.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from yuqing.authorization import Authorization
from yuqing.listing import IncidentMemo
from yuqing.models import Grade
from yuqing.roles import PER_UNIT_ROLES, Role
from yuqing.roster import Person
from yuqing.state import DraftStatus, IncidentState, Stage

AFTER_PUBLICATION = (Stage.published, Stage.monitoring, Stage.closed, Stage.reviewed)
ENDED = (Stage.closed, Stage.reviewed)


def holds(person: Person, role: Role | str, unit: str) -> bool:
    return any(
        g.role == role and (g.role not in PER_UNIT_ROLES or g.unit == unit) for g in person.roles
    )


def _grade(grade: str | None) -> Grade | None:
    return Grade(grade) if grade else None


def may_send(
    authz: Authorization,
    person: Person,
    signal: str,
    unit: str,
    grade: str | None = None,
    chain_roles: Iterable[str] = (),
) -> bool:
    """Whether the authorization lets `person` send `signal` to an incident of `unit`; an
    approval's role comes from the policy's chain (`chain_roles`: the step it awaits)."""
    rule = authz.rule("incident", signal)
    if rule is None or rule.internal:
        return False
    if rule.from_policy:
        roles: list[str] = list(chain_roles)
    else:
        roles = [str(r) for r in rule.roles_for(_grade(grade)) or []]
    return any(holds(person, role, unit) for role in roles)


@dataclass(frozen=True)
class Work:
    """One thing a person owes: what, on which incident, and the clock it runs against."""

    kind: str  # approve, report, assess, draft, redraft, close, review, post
    incident_id: str
    title: str
    unit: str
    clock_key: str | None = None
    draft_version: int | None = None
    reason: str | None = None
    role: str | None = None
    post_id: str | None = None


def owed(
    authz: Authorization, person: Person, incident_id: str, memo: IncidentMemo
) -> list[Work]:
    """What `person` owes on one incident, from its memo (the 待办 page)."""
    unit, stage, grade = memo.unit, memo.stage, memo.grade
    found: list[Work] = []

    def add(kind: str, clock: str | None = None, **more: object) -> None:
        found.append(
            Work(kind, incident_id, memo.title, unit, clock_key=clock, **more)  # type: ignore[arg-type]
        )

    def may(signal: str, chain: Iterable[str] = ()) -> bool:
        return may_send(authz, person, signal, unit, grade, chain)

    report_clock = next((c.key for c in memo.clocks if c.key.startswith("report")), None)
    statement_clock = next((c.key for c in memo.clocks if c.key == "publish_statement"), None)
    if stage == Stage.discovered and may("submit_report"):
        add("report", report_clock)
    if stage == Stage.reported and grade is None and may("submit_assessment"):
        add("assess", statement_clock)
    if stage == Stage.handling and may("submit_draft"):
        if memo.draft_status == DraftStatus.returned:
            add(
                "redraft",
                statement_clock,
                draft_version=memo.draft_version,
                reason=memo.returned_reason,
            )
        else:
            add("draft", statement_clock)
    if stage == Stage.approving and memo.draft_status == DraftStatus.in_review:
        for role in memo.awaiting:
            if holds(person, role, unit) and may(_approval_signal(role), [role]):
                add("approve", statement_clock, draft_version=memo.draft_version, role=role)
    if stage in (Stage.published, Stage.monitoring) and can_close(
        authz, person, grade, unit, memo.posts_open
    ):
        add("close")
    if stage == Stage.closed and may("submit_review"):
        add("review")
    rule = authz.rule("post", "initial_response")
    # "Posts my unit must answer": a unit's own people, not everyone who may answer one.
    may_answer = (rule.roles_for(_grade(grade)) if rule else None) or []
    answering = [str(r) for r in may_answer if r in PER_UNIT_ROLES]
    if any(holds(person, role, unit) for role in answering):
        for post in memo.posts:
            clock = post.clocks[0].key if post.clocks else None
            found.append(
                Work("post", incident_id, memo.title, unit, clock_key=clock, post_id=post.post_id)
            )
    return found


APPROVAL_SIGNALS = {
    "unit_head": "unit_head_approval",
    "section_head": "section_head_review",
    "publicity_lead": "publicity_lead_approval",
    "leadership_group": "leadership_group_approval",
}


def _approval_signal(role: str) -> str:
    return APPROVAL_SIGNALS.get(role, "")


def can_close(
    authz: Authorization, person: Person, grade: str | None, unit: str, open_posts: int
) -> bool:
    if not may_send(authz, person, "close_incident", unit, grade):
        return False
    if open_posts == 0:
        return True
    # Closing with posts still open names each: only those the authorization lets do that.
    return any(holds(person, role, unit) for role in authz.actions.get("leave_posts_open", []))


def actions(
    authz: Authorization, person: Person, state: IncidentState, awaiting: list[str]
) -> list[str]:
    """The forms the incident's page offers `person`, in the order of the plan."""
    unit, stage = state.unit, state.stage
    grade = state.grade.value if state.grade else None

    def may(signal: str, chain: Iterable[str] = ()) -> bool:
        return may_send(authz, person, signal, unit, grade, chain)

    offered: list[str] = []
    if stage is Stage.discovered and may("submit_report"):
        offered.append("report")
    if stage is Stage.reported and state.grade is None and may("submit_assessment"):
        offered.append("assess")
    draft = state.current_draft
    if (
        state.grade is not None
        and stage not in AFTER_PUBLICATION
        and (draft is None or draft.status is not DraftStatus.approved)
        and may("submit_draft")
    ):
        offered.append("draft")
    if stage not in ENDED and may("legal_opinion"):
        offered.append("legal")
    if (
        stage is Stage.approving
        and draft is not None
        and draft.status is DraftStatus.in_review
        and any(may(_approval_signal(role), [role]) for role in awaiting)
    ):
        offered.append("approve")
    open_posts = sum(1 for p in state.posts if p.open)
    if stage in (Stage.published, Stage.monitoring) and can_close(
        authz, person, grade, unit, open_posts
    ):
        offered.append("close")
    if stage is Stage.closed and may("submit_review"):
        offered.append("review")
    return offered
