"""One story, one incident: reports through two channels land in the same incident."""

from __future__ import annotations

import pytest

from starter import report_incident
from tests.driver import IncidentDriver, report
from yuqing.intake import incident_id_for, intake_key, normalise_url


def test_urls_of_one_story_normalise_alike() -> None:
    a = normalise_url("https://m.weibo.example/status/4987654321/?utm_source=wechat#comments")
    b = normalise_url("http://weibo.example/status/4987654321")
    assert a == b == "https://weibo.example/status/4987654321"
    assert intake_key("email", url="https://weibo.example/status/1?from=timeline") == (
        intake_key("media_monitor", url="https://WWW.weibo.example/status/1/")
    )
    assert intake_key("hotline_12315", external_id=" T-2026-1128-07 ") == (
        "hotline_12315:t-2026-1128-07"
    )
    assert incident_id_for("url:https://weibo.example/status/1").startswith("yq-")
    with pytest.raises(ValueError, match="not an absolute URL"):
        normalise_url("weibo.example/status/1")
    with pytest.raises(ValueError, match="needs the story's URL"):
        intake_key("manual")


async def test_second_channel_adds_evidence_to_the_same_incident(driver: IncidentDriver) -> None:
    url = "https://weibo.example/status/4987654321"
    incident_id = incident_id_for(intake_key("media_monitor", url=url))
    first = report(
        incident_id=incident_id, channel="media_monitor", source_url=url, submission_id="m-1"
    )
    answer = await report_incident(driver.client, first, driver.task_queue)
    driver.handle = driver.client.get_workflow_handle(f"incident-{incident_id}")
    # The update sent with the start is answered by the discovery and records nothing twice.
    assert answer.kind == "discovered" and not answer.refused
    state = await driver.until(lambda s: len(s.evidence) == 2)
    assert state.submissions == ["m-1"]
    assert not any(e.kind == "duplicate_submission" for e in state.trail)
    # The same delivery again (a webhook's retry) gets the same answer and adds nothing.
    assert await report_incident(driver.client, first, driver.task_queue) == answer

    second = report(
        incident_id=incident_id,
        channel="email",
        reporter_id="li.ming",
        source_url=url + "?utm_source=mail",
        evidence=[{"kind": "text", "content_text": "市民来信：微博所说超市就在我家楼下"}],
    )
    again = await report_incident(driver.client, second, driver.task_queue)
    assert again.kind == "reported_again" and again.actor == "li.ming"
    state = await driver.until(lambda s: len(s.evidence) == 3)
    assert [e.evidence_id for e in state.evidence] == [
        f"{incident_id}-e1",
        f"{incident_id}-e2",
        f"{incident_id}-e3",
    ]
    assert len(state.submissions) == 2
    assert any(e.kind == "reported_again" and "email" in e.detail for e in state.trail)
    assert len(await driver.rows("evidence")) == 3
    await driver.save_history("reported_through_two_channels")
