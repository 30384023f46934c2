"""The roles of SPEC §1, and the outside bodies the plan names for notices (SPEC §2.6)."""

from enum import StrEnum


class Role(StrEnum):
    office = "office"
    legal = "legal"
    unit = "unit"
    unit_head = "unit_head"
    section_head = "section_head"
    publicity_lead = "publicity_lead"
    leadership_group = "leadership_group"
    leader_in_charge = "leader_in_charge"
    principal_leader = "principal_leader"
    # Bodies outside the bureau, reached through contacts in the roster.
    propaganda_department = "propaganda_department"
    public_security = "public_security"
    emergency_office = "emergency_office"
    stability_office = "stability_office"
    comprehensive_governance_office = "comprehensive_governance_office"


# Roles held for one unit: the roster must give the unit, and a check compares it with the
# incident's responsible unit.
PER_UNIT_ROLES = frozenset({Role.unit, Role.unit_head, Role.section_head, Role.leader_in_charge})
