"""Who may send what, and who may see what (SPEC §8), as data: `config/authorization.toml`.

Each signal of an incident and of a post names the roles that may send it and the payload
field that names its sender; each API route names the signal it sends (or that it reads, or
reports). The configuration activity loads the file with the roster, so an incident keeps the
rules it started under in its history and decides by them deterministically. Adding a
decision is one entry here:

    [incident.give_interview]
    actor = "authorised_by"
    roles = ["leadership_group"]

Roles held for a unit (`yuqing.roles.PER_UNIT_ROLES`) count only for that unit's incidents.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from yuqing.models import Grade
from yuqing.roles import PER_UNIT_ROLES, Role
from yuqing.roster import Roster
from yuqing.settings import PROJECT_ROOT
from yuqing.toml_files import load_toml_model

DEFAULT_PATH = PROJECT_ROOT / "config" / "authorization.toml"
Workflow = Literal["incident", "post"]


class AuthorizationError(ValueError):
    """The authorization file cannot be used; the message names the file and the entry."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SignalRule(_Strict):
    """Who may send one signal."""

    actor: str | None = Field(
        default=None, description="the payload field naming the sender (the person acting)"
    )
    roles: list[Role] | None = Field(
        default=None, description="roles that may send it; per-unit roles for the unit only"
    )
    by_grade: dict[Grade, list[Role]] = Field(
        default_factory=dict, description="roles instead of `roles`, for an incident so graded"
    )
    from_policy: bool = Field(
        default=False,
        description="the policy names the role (an approval chain's step, the reply approver)",
    )
    signed: bool = Field(default=True, description="a decision: accepted only with its proof")
    internal: bool = Field(
        default=False, description="sent by the workflows themselves, never from outside"
    )
    forwarded_from: str | None = Field(
        default=None,
        description="(posts) the incident's signal whose signed payload it carries, so the "
        "post checks the person's own proof",
    )

    @model_validator(mode="after")
    def _who(self) -> SignalRule:
        if self.internal:
            return self
        if self.actor is None:
            raise ValueError("name the payload field of the sender in `actor`")
        if self.roles is None and not self.by_grade and not self.from_policy:
            raise ValueError("give `roles`, `by_grade` or `from_policy = true`")
        return self

    def roles_for(self, grade: Grade | None) -> list[Role] | None:
        if grade is not None and grade in self.by_grade:
            return list(self.by_grade[grade])
        return None if self.roles is None else list(self.roles)


class Scope(_Strict):
    """Roles that reach every incident, and roles that reach their own unit's."""

    every_unit: list[Role]
    own_unit: list[Role]

    @model_validator(mode="after")
    def _per_unit(self) -> Scope:
        wrong = [role for role in self.own_unit if role not in PER_UNIT_ROLES]
        if wrong:
            raise ValueError(f"own_unit names {', '.join(wrong)}, which are not held per unit")
        return self


class Route(_Strict):
    """What an API route does, for the table of who may call it."""

    sends: str | None = Field(default=None, description="`incident.<signal>` or `post.<signal>`")
    does: Literal["read", "report", "public", "token"] | None = None

    @model_validator(mode="after")
    def _one(self) -> Route:
        if (self.sends is None) == (self.does is None):
            raise ValueError("give exactly one of sends or does")
        return self


class ReadScope(_Strict):
    """The incidents one person may see: every one, or those of `units`."""

    person_id: str
    every_unit: bool
    units: frozenset[str] = frozenset()

    def allows(self, unit: str) -> bool:
        return self.every_unit or unit in self.units

    def visibility_query(self, attribute: str = "IncidentUnit") -> str | None:
        """A Temporal list filter on the unit search attribute; None: no filter needed."""
        if self.every_unit:
            return None
        if not self.units:
            return f'{attribute} = ""'
        listed = ", ".join(f'"{unit}"' for unit in sorted(self.units))
        return f"{attribute} IN ({listed})"


class Authorization(_Strict):
    version: str = Field(min_length=1)
    read: Scope
    report: Scope
    incident: dict[str, SignalRule]
    post: dict[str, SignalRule]
    actions: dict[str, list[Role]] = Field(
        default_factory=dict, description="parts of a decision with roles of their own"
    )
    routes: dict[str, Route] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _routes_name_signals(self) -> Authorization:
        for path, route in self.routes.items():
            if route.sends is None:
                continue
            workflow, _, signal = route.sends.partition(".")
            rules = {"incident": self.incident, "post": self.post}.get(workflow)
            if rules is None or signal not in rules:
                raise ValueError(f"routes.{path!r} sends {route.sends}, which has no entry")
        return self

    def rule(self, workflow: Workflow, signal: str) -> SignalRule | None:
        return (self.incident if workflow == "incident" else self.post).get(signal)

    def signed(self, workflow: Workflow, signal: str) -> bool:
        rule = self.rule(workflow, signal)
        return rule is not None and rule.signed and not rule.internal

    def action(self, name: str) -> list[Role]:
        if name not in self.actions:
            raise KeyError(f"the authorization {self.version} has no action {name!r}")
        return list(self.actions[name])

    # -- the API's checks, before anything reaches an incident ------------------------------

    def read_scope(self, roster: Roster, person_id: str) -> ReadScope:
        """What `person_id` may see: the one function the API, the console's list and its
        pages all ask."""
        return ReadScope(
            person_id=person_id,
            every_unit=_holds_any(roster, person_id, self.read.every_unit),
            units=_units(roster, person_id, self.read.own_unit),
        )

    def may_report(self, roster: Roster, person_id: str, unit: str) -> bool:
        if _holds_any(roster, person_id, self.report.every_unit):
            return True
        return unit in _units(roster, person_id, self.report.own_unit)

    def report_refusal(self, roster: Roster, person_id: str, unit: str) -> str | None:
        if self.may_report(roster, person_id, unit):
            return None
        units = sorted(_units(roster, person_id, self.report.own_unit))
        from yuqing.i18n import Said  # the API's words; the workflow never asks this

        return Said(
            "api.report_refused" if units else "api.report_refused_any",
            person=person_id,
            units=", ".join(units),
            unit=unit,
            version=self.version,
            every_unit=", ".join(self.report.every_unit),
            own_unit=", ".join(self.report.own_unit),
        )


def _holds_any(roster: Roster, person_id: str, roles: list[Role]) -> bool:
    person = roster.person(person_id)
    return person is not None and any(
        grant.role in roles and grant.role not in PER_UNIT_ROLES for grant in person.roles
    )


def _units(roster: Roster, person_id: str, roles: list[Role]) -> frozenset[str]:
    person = roster.person(person_id)
    if person is None:
        return frozenset()
    return frozenset(g.unit for g in person.roles if g.role in roles and g.unit is not None)


def load_authorization(path: Path = DEFAULT_PATH) -> Authorization:
    return load_toml_model(path, Authorization, what="authorization", error=AuthorizationError)


def _legacy() -> Authorization:
    """The rules as they were written in code before this file existed: incidents whose
    history holds no authorization (started before it) are decided by these, so their
    histories replay unchanged. No signatures, no check on figures or reviews."""
    office, legal, unit, head = Role.office, Role.legal, Role.unit, Role.unit_head
    lead = Role.leadership_group

    def rule(actor: str, roles: list[Role] | None = None, **more: object) -> SignalRule:
        if roles is None and not more:
            return SignalRule(actor=actor, from_policy=True, signed=False)
        return SignalRule.model_validate({"actor": actor, "roles": roles, "signed": False, **more})

    unchecked = SignalRule.model_construct(actor="source", roles=None, signed=False)
    anyone = SignalRule.model_construct(actor="author_id", roles=None, signed=False)
    approvals = {
        s: rule("approver_id")
        for s in (
            "unit_head_approval",
            "section_head_review",
            "publicity_lead_approval",
            "leadership_group_approval",
        )
    }
    # Built unchecked: two of its rules check nothing, which a file may not say.
    return Authorization.model_construct(
        version="legacy (before the authorization file)",
        read=Scope(every_unit=list(Role), own_unit=sorted(PER_UNIT_ROLES)),
        report=Scope(every_unit=list(Role), own_unit=sorted(PER_UNIT_ROLES)),
        incident={
            "submit_report": rule("reporter_id", [office, unit, head]),
            "submit_assessment": rule("assessor_id", [office]),
            "update_metrics": unchecked,
            "submit_draft": rule("author_id", [unit, head]),
            "legal_opinion": rule("author_id", [legal]),
            "netizen_post": rule("received_by", [unit, head, office]),
            "calendar_changed": rule("changed_by", [office]),
            "close_incident": rule("closed_by", [lead], by_grade={Grade.general: [lead, office]}),
            "submit_review": anyone,
            **approvals,
        },
        post={
            "initial_response": rule("responder_id", [unit, head, office]),
            "formal_reply": rule("approver_id"),
            "request_extension": rule("requested_by", [unit, head]),
            "calendar_changed": rule("changed_by", [office]),
            "withdraw": rule("closed_by", [lead]),
        },
        actions={"leave_posts_open": [lead]},
        routes={},
    )


LEGACY = _legacy()
