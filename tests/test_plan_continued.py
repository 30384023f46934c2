"""The plan's rules across continue-as-new (issue 12): the rules an incident began under, its
step clocks and its records of contacts go on in the next run as if it had not changed."""

from __future__ import annotations

from datetime import timedelta

from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from tests.test_continue_as_new import BOUND, continuing, refusals  # noqa: F401
from tests.test_plan_scenarios import DRAFT
from yuqing.audit.history import load_runs

STEP = "step.publicity_lead_approval.v1"


async def test_a_continued_incident_keeps_its_rules_its_step_clock_and_its_contacts(
    continuing: IncidentDriver,  # noqa: F811
) -> None:
    driver = continuing
    state = await driver.start(report())
    assert driver.handle is not None
    contact = {
        "recorded_by": "li.ming",
        "department": "emergency_office",
        "contacted_at": state.discovered_at.isoformat(),
        "said": "通报事件经过",
    }
    await driver.accepted("record_contact", contact)
    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
    await driver.accepted("submit_draft", DRAFT)
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    state = await driver.until(lambda s: s.deadline(STEP) is not None)
    await refusals(driver, BOUND + 5)
    assert len(await load_runs(driver.client, driver.handle.id)) >= 2

    # The next run decides by the plan's rules still: the same contact is a repeat, a new
    # one is recorded, though the first's words are no longer in its state.
    again = await driver.refused("record_contact", {**contact, "contact_person": "值班员"})
    assert "already recorded" in again.detail
    await driver.accepted("record_contact", {**contact, "said": "通报处置进展"})

    # The step clock the first run planned reminds and escalates once, in whichever run.
    await driver.sleep(timedelta(hours=4, minutes=5))
    key = f"deadline/{STEP}/escalation"
    state = await driver.until(
        lambda s: any(n.idempotency_key.endswith(key) for n in s.notifications)
    )
    step = state.deadline(STEP)
    assert step is not None and step.status == "breached"
    assert not any(d.key.startswith(f"{STEP}#") for d in state.deadlines)  # never started again
    sent = [n.idempotency_key for n in state.notifications if STEP in n.idempotency_key]
    assert sorted(k.rsplit("/", 1)[-1] for k in sent) == ["escalation", "reminder-1"]
    await driver.accepted("publicity_lead_approval", approval("zhou.min", 1))
    state = await driver.until_published()
    step = state.deadline(STEP)
    assert step is not None and step.met_at is not None and step.met_at > step.due_at


def test_a_step_clock_being_planned_is_carried_to_the_next_run_whole() -> None:
    """A PlanClock under way when the run continues goes through the next run's JSON input
    and comes back the same effect (same key: the clock is planned once)."""
    from datetime import UTC, datetime

    from workflows.incident import _effect, _UnderWay
    from yuqing.effects import CarriedEffect
    from yuqing.outcomes import PlanClock
    from yuqing.roles import Role

    clock = PlanClock(
        key=f"{STEP}#2",
        title="draft v1 waiting",
        starts_at=datetime(2026, 12, 1, 9, tzinfo=UTC),
        hours=4,
        remind_after=(2.0,),
        remind=(Role.publicity_lead,),
        escalate_to=(Role.leadership_group_head,),
        responsible_unit="publicity_lead",
        responsible_person="zhou.min",
        summary="plan the clock",
    )
    wire = CarriedEffect.model_validate_json(_UnderWay(clock).carried().model_dump_json())
    assert _effect(wire) == clock
