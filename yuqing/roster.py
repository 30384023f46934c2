"""Who may act, in which role, for which unit (SPEC §1). Loaded from a file, never hard-coded."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from yuqing.roles import PER_UNIT_ROLES, Role
from yuqing.toml_files import load_toml_model


class RosterError(ValueError):
    """The roster file cannot be used; the message names the file and what is wrong."""


# The language a person reads notices in (zh unless the roster says otherwise).
Language = Literal["zh", "en"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RoleGrant(_Strict):
    role: Role
    unit: str | None = None

    @model_validator(mode="after")
    def _unit_where_needed(self) -> RoleGrant:
        if self.role in PER_UNIT_ROLES and not self.unit:
            raise ValueError(f"role {self.role} is held for a unit: give its unit")
        return self


class Person(_Strict):
    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    email: str | None = None
    roles: list[RoleGrant] = Field(min_length=1)
    language: Language | None = None


class Contact(_Strict):
    """A body outside the bureau that receives notices (propaganda department, police …)."""

    role: Role
    name: str
    email: str | None = None
    language: Language | None = None


class Unit(_Strict):
    """A unit's name as people read it; incidents and roles name units by `id`."""

    id: str = Field(min_length=1)
    name: str = Field(min_length=1)
    name_en: str | None = None


class Roster(_Strict):
    version: str = Field(min_length=1)
    people: list[Person]
    contacts: list[Contact] = Field(default_factory=list)
    units: list[Unit] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_ids(self) -> Roster:
        seen: set[str] = set()
        for person in self.people:
            if person.id in seen:
                raise ValueError(f"person id {person.id!r} appears twice")
            seen.add(person.id)
        return self

    @model_validator(mode="after")
    def _head_is_a_member(self) -> Roster:
        for person in self.people:
            granted = {grant.role for grant in person.roles}
            if Role.leadership_group_head in granted and Role.leadership_group not in granted:
                raise ValueError(
                    f"{person.id} heads the leading group but is not a member of it: give the "
                    "role leadership_group too"
                )
        return self

    def holders(self, role: Role, unit: str | None = None) -> list[str]:
        """The ids of everyone holding `role` (for `unit`, where the role is per unit)."""
        return [p.id for p in self.people if self.holds(p.id, role, unit)]

    def contact(self, role: Role) -> Contact | None:
        return next((c for c in self.contacts if c.role == role), None)

    def role_of(self, person_id: str, unit: str) -> Role | None:
        """The role a person acts in on an incident of `unit` when no one role is asked for:
        a role held for that unit first, else the first bureau-wide role they hold."""
        person = self.person(person_id)
        if person is None:
            return None
        for grant in person.roles:
            if grant.role in PER_UNIT_ROLES and grant.unit == unit:
                return grant.role
        return next((g.role for g in person.roles if g.role not in PER_UNIT_ROLES), None)

    def person_recipients(self, person_ids: list[str], role: Role) -> list[Recipient]:
        """Named people as recipients of a notice, each once, in the order given."""
        found: dict[str, Recipient] = {}
        for person_id in person_ids:
            person = self.person(person_id)
            if person is not None and person.id not in found:
                found[person.id] = Recipient(
                    id=person.id, name=person.name, role=role, email=person.email
                )
        return list(found.values())

    def person(self, person_id: str) -> Person | None:
        return next((p for p in self.people if p.id == person_id), None)

    def unit_name(self, unit_id: str, lang: str = "zh") -> str:
        """The unit's name in `lang` (zh, en), or its id when the roster does not name it."""
        unit = next((u for u in self.units if u.id == unit_id), None)
        if unit is None:
            return unit_id
        return (unit.name_en or unit.name) if lang == "en" else unit.name

    def holds(self, person_id: str, role: Role, unit: str | None = None) -> bool:
        person = self.person(person_id)
        if person is None:
            return False
        return any(
            grant.role == role and (role not in PER_UNIT_ROLES or grant.unit == unit)
            for grant in person.roles
        )

    def role_refusal(self, person_id: str, role: Role, unit: str) -> str | None:
        """Why `person_id` may not act as `role` on an incident of `unit`, or None if they may."""
        person = self.person(person_id)
        if person is None:
            return f"{person_id!r} is not in the roster"
        if self.holds(person_id, role, unit):
            return None
        if role in PER_UNIT_ROLES and any(g.role == role for g in person.roles):
            units = ", ".join(sorted(g.unit or "" for g in person.roles if g.role == role))
            return f"{person_id} is {role} of {units}, not of {unit}"
        return f"{person_id} does not hold the role {role}"

    def recipients(self, roles: list[Role], unit: str) -> list[Recipient]:
        """Everyone a notice to `roles` reaches, for an incident of `unit`, each once."""
        found: dict[str, Recipient] = {}
        for role in roles:
            for person in self.people:
                if self.holds(person.id, role, unit) and person.id not in found:
                    found[person.id] = Recipient(
                        id=person.id,
                        name=person.name,
                        role=role,
                        email=person.email,
                        language=person.language,
                    )
            for contact in self.contacts:
                key = f"contact:{contact.role}"
                if contact.role == role and key not in found:
                    found[key] = Recipient(
                        id=key,
                        name=contact.name,
                        role=role,
                        email=contact.email,
                        language=contact.language,
                    )
        return list(found.values())


class Recipient(_Strict):
    id: str
    name: str
    role: Role
    email: str | None = None
    # The language of their copy of a notice; None: the notices' language (a setting).
    language: Language | None = None


def load_roster(path: Path) -> Roster:
    return load_toml_model(path, Roster, what="roster", error=RosterError)
