"""Histories of the rules of issue 12, replayed with the others by tests/test_replay.py; the
histories recorded before those rules existed replay there too, deciding as they did. Each
rule's history is kept twice: recorded before the bounds and continue-as-new (core-bounded),
and after (`-bounded`)."""

from __future__ import annotations

from pathlib import Path

from tests.test_plan_scenarios import PLAN_HISTORIES

HISTORIES = Path(__file__).parent / "histories"


def test_the_plans_histories_are_saved() -> None:
    names = {path.stem for path in HISTORIES.glob("*.json")}
    wanted = {
        *PLAN_HISTORIES,
        "plan_provisional_replanned_earlier",
        "plan_drill_on_the_dev_server",
        "general_published_in_time-plan",
        "major_three_step_chain-plan",
    }
    wanted |= {
        f"{name}-bounded"
        for name in (
            *PLAN_HISTORIES,
            "plan_provisional_replanned_earlier",
            "plan_drill_on_the_dev_server",
        )
    }
    assert wanted <= names, sorted(wanted - names)
