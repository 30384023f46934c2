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
    # The leading group's head (组长, the director, §3); also a member of the group.
    leadership_group_head = "leadership_group_head"
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

# The departments outside the bureau the plan names for keeping in touch (§4.4) and for the
# mandatory notice (§5.2): the roster gives each a contact; drills never reach them.
OUTSIDE_BODIES = frozenset(
    {
        Role.propaganda_department,
        Role.public_security,
        Role.emergency_office,
        Role.stability_office,
        Role.comprehensive_governance_office,
    }
)
