"""The README's demo files stay valid payloads of the signals they are sent as."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from yuqing.models import POST_SIGNAL_PAYLOADS, SIGNAL_PAYLOADS, IncidentReport, Model

DEMO = Path(__file__).parent.parent / "demo"
MODELS: dict[str, type[Model]] = {
    "01-incident.json": IncidentReport,
    "02-report.json": SIGNAL_PAYLOADS["submit_report"],
    "03-assessment.json": SIGNAL_PAYLOADS["submit_assessment"],
    "04-draft.json": SIGNAL_PAYLOADS["submit_draft"],
    "05-unit-head-approval.json": SIGNAL_PAYLOADS["unit_head_approval"],
    "06-publicity-lead-approval.json": SIGNAL_PAYLOADS["publicity_lead_approval"],
    "07-close.json": SIGNAL_PAYLOADS["close_incident"],
    "08-review.json": SIGNAL_PAYLOADS["submit_review"],
    "leadership-group-approval.json": SIGNAL_PAYLOADS["leadership_group_approval"],
    "section-head-review.json": SIGNAL_PAYLOADS["section_head_review"],
    "wrong-unit-head-approval.json": SIGNAL_PAYLOADS["unit_head_approval"],
    "metrics-reposts-25.json": SIGNAL_PAYLOADS["update_metrics"],
    "post-p1.json": SIGNAL_PAYLOADS["netizen_post"],
    "post-initial-response.json": POST_SIGNAL_PAYLOADS["initial_response"],
    "post-extension.json": POST_SIGNAL_PAYLOADS["request_extension"],
    "post-formal-reply.json": POST_SIGNAL_PAYLOADS["formal_reply"],
}


def test_every_demo_file_is_covered() -> None:
    assert {p.name for p in DEMO.glob("*.json")} == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_demo_file_is_valid(name: str) -> None:
    MODELS[name].model_validate(json.loads((DEMO / name).read_text(encoding="utf-8")))
