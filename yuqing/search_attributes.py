"""Search attributes the incident keeps current, so the Temporal UI's list can be filtered."""

from temporalio.common import SearchAttributeKey

GRADE = SearchAttributeKey.for_keyword("IncidentGrade")
STAGE = SearchAttributeKey.for_keyword("IncidentStage")
SENSITIVITY = SearchAttributeKey.for_keyword("IncidentSensitivity")
UNIT = SearchAttributeKey.for_keyword("IncidentUnit")
BREACHED = SearchAttributeKey.for_bool("DeadlineBreached")

ALL = (GRADE, STAGE, SENSITIVITY, UNIT, BREACHED)

# The `temporal server start-dev --search-attribute KEY=TYPE` spelling of each key.
CLI_TYPES = {
    GRADE.name: "Keyword",
    STAGE.name: "Keyword",
    SENSITIVITY.name: "Keyword",
    UNIT.name: "Keyword",
    BREACHED.name: "Bool",
}
