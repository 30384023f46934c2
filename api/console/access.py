"""What the signed-in person may see and do, as the console offers it (SPEC §8, §1).

The incident decides every action itself, against the roster, and refuses (and records) what
is not the sender's to do; this module only decides what to *offer*: the incidents a person is
shown and the forms on an incident's page. The Office, Legal, the publicity lead and the
leading group see every incident; a unit's people and leaders see their units' own.
"""

from __future__ import annotations

from dataclasses import dataclass

from yuqing.listing import IncidentMemo
from yuqing.models import Grade
from yuqing.roles import PER_UNIT_ROLES, Role
from yuqing.roster import Person
from yuqing.state import DraftStatus, IncidentState, Stage

SEE_ALL = frozenset(
    {Role.office, Role.legal, Role.publicity_lead, Role.leadership_group, Role.principal_leader}
)
REPORTERS = (Role.office, Role.unit, Role.unit_head)
DRAFTERS = (Role.unit, Role.unit_head)
AFTER_PUBLICATION = (Stage.published, Stage.monitoring, Stage.closed, Stage.reviewed)
ENDED = (Stage.closed, Stage.reviewed)


def visible_units(person: Person) -> frozenset[str] | None:
    """The units whose incidents `person` sees; None: every unit."""
    if any(grant.role in SEE_ALL for grant in person.roles):
        return None
    return frozenset(g.unit for g in person.roles if g.role in PER_UNIT_ROLES and g.unit)


def may_see(person: Person, unit: str) -> bool:
    units = visible_units(person)
    return units is None or unit in units


def holds(person: Person, role: Role | str, unit: str) -> bool:
    return any(
        g.role == role and (g.role not in PER_UNIT_ROLES or g.unit == unit) for g in person.roles
    )


def holds_any(person: Person, roles: tuple[Role, ...], unit: str) -> bool:
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


def owed(person: Person, incident_id: str, memo: IncidentMemo) -> list[Work]:
    """What `person` owes on one incident, from its memo (the 待办 page)."""
    unit, stage = memo.unit, memo.stage
    found: list[Work] = []

    def add(kind: str, clock: str | None = None, **more: object) -> None:
        found.append(
            Work(kind, incident_id, memo.title, unit, clock_key=clock, **more)  # type: ignore[arg-type]
        )

    report_clock = next((c.key for c in memo.clocks if c.key.startswith("report")), None)
    statement_clock = next((c.key for c in memo.clocks if c.key == "publish_statement"), None)
    if stage == Stage.discovered and holds_any(person, REPORTERS, unit):
        add("report", report_clock)
    if stage == Stage.reported and holds(person, Role.office, unit):
        add("assess", statement_clock)
    if stage == Stage.handling and holds_any(person, DRAFTERS, unit):
        if memo.draft_status == DraftStatus.returned:
            add("redraft", statement_clock, draft_version=memo.draft_version,
                reason=memo.returned_reason)
        else:
            add("draft", statement_clock)
    if stage == Stage.approving and memo.draft_status == DraftStatus.in_review:
        for role in memo.awaiting:
            if holds(person, role, unit):
                add("approve", statement_clock, draft_version=memo.draft_version, role=role)
    if stage in (Stage.published, Stage.monitoring) and can_close(person, memo.grade, unit,
                                                                 memo.posts_open):
        add("close")
    if stage == Stage.closed and holds_any(person, (Role.office, Role.leadership_group), unit):
        add("review")
    if holds_any(person, (Role.unit, Role.unit_head), unit):
        for post in memo.posts:
            clock = post.clocks[0].key if post.clocks else None
            found.append(
                Work("post", incident_id, memo.title, unit, clock_key=clock, post_id=post.post_id)
            )
    return found


def can_close(person: Person, grade: str | None, unit: str, open_posts: int) -> bool:
    if holds(person, Role.leadership_group, unit):
        return True
    return grade == Grade.general and open_posts == 0 and holds(person, Role.office, unit)


def actions(person: Person, state: IncidentState, awaiting: list[str]) -> list[str]:
    """The forms the incident's page offers `person`, in the order of the plan."""
    unit, stage = state.unit, state.stage
    offered: list[str] = []
    if stage is Stage.discovered and holds_any(person, REPORTERS, unit):
        offered.append("report")
    if stage is Stage.reported and state.grade is None and holds(person, Role.office, unit):
        offered.append("assess")
    draft = state.current_draft
    if (
        state.grade is not None
        and stage not in AFTER_PUBLICATION
        and (draft is None or draft.status is not DraftStatus.approved)
        and holds_any(person, DRAFTERS, unit)
    ):
        offered.append("draft")
    if stage not in ENDED and holds(person, Role.legal, unit):
        offered.append("legal")
    if (
        stage is Stage.approving
        and draft is not None
        and draft.status is DraftStatus.in_review
        and any(holds(person, role, unit) for role in awaiting)
    ):
        offered.append("approve")
    open_posts = sum(1 for p in state.posts if p.open)
    if stage in (Stage.published, Stage.monitoring) and can_close(
        person, state.grade, unit, open_posts
    ):
        offered.append("close")
    if stage is Stage.closed and holds_any(person, (Role.office, Role.leadership_group), unit):
        offered.append("review")
    return offered
