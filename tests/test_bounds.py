# ruff: noqa: F811 - `api` is the fixture of tests/test_api.py
"""Nothing a caller sends wedges an incident (issue 8): the door refuses what is too large,
malformed or absurd, naming the field and the limit; what would make no incident starts
none, and the same story sent correctly starts its own; large evidence goes to PostgreSQL.

Through the real API (uvicorn and httpx), a real worker and the time-skipping server.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import time
import uuid
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from temporalio.client import WorkflowFailureError
from temporalio.service import RPCError, RPCStatusCode

from starter import ID_REUSE, decide
from tests.driver import UPWARD_REPORT, IncidentDriver, report
from tests.keys import signed
from tests.test_api import Api, api, incident, weibo_url, who  # noqa: F401 - the fixture
from workflows.incident import IncidentWorkflow
from yuqing import incident_workflow_id, limits
from yuqing.email_intake import SmtpIntake
from yuqing.intake import incident_id_for, intake_key
from yuqing.settings import Settings

MB = 1_000_000


async def exists(api: Api, incident_id: str) -> bool:
    try:
        await api.env.client.get_workflow_handle(incident_workflow_id(incident_id)).describe()
    except RPCError as err:
        if err.status is RPCStatusCode.NOT_FOUND:
            return False
        raise
    return True


async def drafted(api: Api) -> str:
    response = await api.report(incident())
    assert response.status_code == 201, response.text
    incident_id: str = response.json()["incident_id"]
    base = f"/incidents/{incident_id}"
    await api.accepted(f"{base}/report", UPWARD_REPORT, "li.ming")
    await api.accepted(f"{base}/assessment", {"comment": "本地"}, "li.ming")
    return incident_id


async def test_oversized_texts_and_bodies_are_refused_and_the_incident_goes_on(api: Api) -> None:
    incident_id = await drafted(api)
    base = f"/incidents/{incident_id}"
    # 1.2 MB and 1.5 MB of UTF-8: read (under the 2 MiB a call may send) and refused.
    opinion = {"opinion": "法" * 400_000, "legal_basis": "《广告法》"}
    draft = {"text": "稿" * 500_000}
    answers = await asyncio.gather(
        *(api.post(f"{base}/legal-opinions", opinion, "zhao.lei") for _ in range(3)),
        *(api.post(f"{base}/drafts", draft, "chen.jing") for _ in range(2)),
    )
    for response, field in zip(answers, ["opinion"] * 3 + ["text"] * 2, strict=True):
        assert response.status_code == 422, response.text
        error = response.json()["detail"][0]
        assert error["loc"] == ["body", field]
        assert f"at most {limits.STATEMENT_CHARS} characters" in error["msg"]
        # What it echoes of the refused text is short.
        assert len(response.content) < 2000
    ten = {"text": "x" * 10 * MB}
    response = await api.post(f"{base}/drafts", ten, "chen.jing")
    assert response.status_code == 413, response.text
    assert "this route takes at most" in response.json()["detail"]

    # The incident takes the next valid signal, and its deadlines still run.
    entry = await api.accepted(f"{base}/drafts", {"text": "经核查，已下架。"}, "chen.jing")
    assert entry["detail"] == "draft version 1 submitted"
    state = await api.state(incident_id)
    assert [d["version"] for d in state["drafts"]] == [1] and state["legal_opinions"] == []
    driver = IncidentDriver(api.env, api.pool, api.task_queue)
    driver.handle = api.env.client.get_workflow_handle(incident_workflow_id(incident_id))
    await driver.sleep(timedelta(hours=25))
    state = await api.until(
        incident_id, lambda s: any(d["status"] == "breached" for d in s["deadlines"])
    )
    assert {d["key"]: d["status"] for d in state["deadlines"]}["publish_statement"] == "breached"


async def test_what_json_cannot_say_is_refused_with_a_422(api: Api) -> None:
    incident_id = await drafted(api)
    path = f"/incidents/{incident_id}/metrics"
    headers = {**who("li.ming"), "Content-Type": "application/json"}
    for raw, field in (
        (b'{"weibo_reposts": 1e400}', "weibo_reposts"),
        (b'{"weibo_reposts": NaN}', "weibo_reposts"),
        (b'{"source": "\\ud800"}', "source"),
    ):
        response = await api.http.post(path, content=raw, headers=headers)
        assert response.status_code == 422, (raw, response.text)
        assert response.json()["detail"][0]["loc"] == ["body", field]
    # A bool is a bool.
    response = await api.post(
        f"/incidents/{incident_id}/assessment", {"cross_district": "yes"}, "li.ming"
    )
    assert response.status_code == 422
    detail = response.json()["detail"][0]
    assert detail["loc"] == ["body", "cross_district"] and "true or false" in detail["msg"]
    # A body sent without Content-Type, or as a form, is told to say JSON.
    for extra in ({}, {"Content-Type": "application/x-www-form-urlencoded"}):
        response = await api.http.post(
            f"/incidents/{incident_id}/report",
            content=json.dumps(UPWARD_REPORT).encode(),
            headers={**who("li.ming"), **extra},
        )
        assert response.status_code == 415, response.text
        said = response.json()["detail"]
        assert "Content-Type: application/json" in said
        assert ("no Content-Type" if not extra else "x-www-form-urlencoded") in said


async def test_a_nul_in_a_signal_is_refused_at_once_naming_its_sender(api: Api) -> None:
    incident_id = await drafted(api)
    # At the door: the field is named and nothing is sent.
    response = await api.post(
        f"/incidents/{incident_id}/legal-opinions", {"opinion": "意见\x00"}, "zhao.lei"
    )
    assert response.status_code == 422
    assert "NUL" in response.json()["detail"][0]["msg"]
    # From a plain Temporal client: refused by the incident, one round trip, sender named.
    workflow_id = incident_workflow_id(incident_id)
    payload = signed(workflow_id, "legal_opinion", {"author_id": "zhao.lei", "opinion": "意\x00"})
    began = time.monotonic()
    entry = await decide(api.env.client, workflow_id, "legal_opinion", payload)
    took = time.monotonic() - began
    assert entry.refused and entry.actor == "zhao.lei" and "NUL" in entry.detail
    print(f"a NUL refused in {took * 1000:.0f} ms")
    assert took < 2  # one update's round trip (~0.1 s), no waiting for a trail entry


async def test_a_refused_report_starts_nothing_and_the_story_is_reported_again(api: Api) -> None:
    url = weibo_url()
    incident_id = incident_id_for(intake_key("weibo", url=url))
    now = datetime.now(UTC)
    bad = [
        ({"title": "过期\x00牛奶"}, "title"),
        ({"discovered_at": "9999-12-31T00:00:00+08:00"}, "discovered_at"),
        ({"discovered_at": "1900-01-01T00:00:00+08:00"}, "discovered_at"),
        ({"discovered_at": (now + timedelta(days=2)).isoformat()}, "discovered_at"),
        ({"discovered_at": (now - timedelta(days=3650)).isoformat()}, "discovered_at"),
        ({"summary": "x" * (limits.TEXT_CHARS + 1)}, "summary"),
        ({"unit": "no-such-unit"}, "unit"),
    ]
    for change, field in bad:
        response = await api.report(incident(source_url=url, **change))
        assert response.status_code == 422, (change, response.text)
        assert response.json()["detail"][0]["loc"][:2] == ["body", field], response.text
        assert not await exists(api, incident_id), change
    # The monitor's webhook and the hotline form refuse a NUL alike.
    hook = "/intake/monitor?unit=xixiangtang-branch"
    alert = {"platform": "weibo", "url": url, "title": "过期牛奶", "excerpt": "货架\x00"}
    assert (await api.post(hook, alert, "li.ming")).status_code == 422
    form = {"ticket_no": "T-1", "summary": "来电\x00", "unit": "xixiangtang-branch", "url": url}
    response = await api.http.post("/intake/hotline-12315", data=form, headers=who("chen.jing"))
    assert response.status_code == 422
    assert not await exists(api, incident_id)
    # Sent correctly, the same story starts its incident, and shows no repeated submission.
    response = await api.report(incident(source_url=url))
    assert response.status_code == 201, response.text
    assert response.json()["entry"]["kind"] == "discovered"
    state = await api.state(incident_id)
    assert not any(e["kind"] == "duplicate_submission" for e in state["trail"])


async def test_a_workflow_that_failed_at_intake_leaves_no_tomb(driver: IncidentDriver) -> None:
    """From a plain Temporal client, past every door: the incident fails, naming the field,
    and its id may be started again (a completed incident's id never may)."""
    good = report()
    absurd = good.model_copy(update={"discovered_at": datetime.now(UTC) + timedelta(days=30)})
    workflow_id = incident_workflow_id(good.incident_id)
    start = {"id": workflow_id, "task_queue": driver.task_queue, "id_reuse_policy": ID_REUSE}
    failed = await driver.client.start_workflow(IncidentWorkflow.run, absurd, **start)
    with pytest.raises(WorkflowFailureError) as failure:
        await failed.result()
    assert "discovered_at" in str(failure.value.cause) and "future" in str(failure.value.cause)
    driver.handle = await driver.client.start_workflow(IncidentWorkflow.run, good, **start)
    state = await driver.until(lambda s: bool(s.deadlines))
    assert state.stage == "discovered"


async def test_twenty_megabytes_of_evidence_are_fixed_with_only_their_reference_in_history(
    api: Api,
) -> None:
    content = hashlib.sha256(b"seed").digest() * (20 * MB // 32)
    body = incident(
        evidence=[
            {
                "kind": "tv_frame",
                "description": "20 MB recording",
                "content_base64": base64.b64encode(content).decode(),
            }
        ]
    )
    response = await api.report(body)
    assert response.status_code == 201, response.text
    incident_id = response.json()["incident_id"]
    state = await api.until(incident_id, lambda s: len(s["evidence"]) == 1)
    item = state["evidence"][0]
    assert item["size_bytes"] == len(content) == 20 * MB
    assert item["sha256"] == hashlib.sha256(content).hexdigest()
    row = await api.pool.fetchrow(
        "SELECT sha256, size_bytes, length(content) AS stored FROM evidence WHERE evidence_id = $1",
        item["evidence_id"],
    )
    assert row is not None and row["stored"] == 20 * MB and row["sha256"] == item["sha256"]
    history = await api.env.client.get_workflow_handle(
        incident_workflow_id(incident_id)
    ).fetch_history()
    assert len(history.to_json()) < 200_000


def submit(port: int, data: bytes) -> tuple[int, bytes]:
    import smtplib

    with smtplib.SMTP("127.0.0.1", port, timeout=60) as smtp:
        try:
            smtp.sendmail("wang@citizen.example", ["yuqing-intake@aic.example"], data)
        except smtplib.SMTPDataError as err:
            return err.smtp_code, err.smtp_error
    return 250, b""


def mail(url: str, body: str, extra: bytes = b"") -> bytes:
    head = (
        "From: wang@citizen.example\r\nTo: yuqing-intake@aic.example\r\n"
        f"Subject: =?utf-8?b?{base64.b64encode('超市卖过期牛奶'.encode()).decode()}?=\r\n"
        f"Message-ID: <{uuid.uuid4()}@citizen.example>\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n"
    )
    return head.encode() + extra + b"\r\n" + body.encode() + f"\r\n{url}\r\n".encode()


async def test_the_smtp_intake_bounces_what_it_cannot_take_and_takes_it_sent_right(
    api: Api, settings: Settings
) -> None:
    url = weibo_url()
    incident_id = incident_id_for(intake_key("email", url=url))
    own = replace(settings, task_queue=api.task_queue)
    async with SmtpIntake(api.env.client, own, port=0) as intake:
        nul = mail(url, "=E8=B4=A7=00=E6=9E=B6")  # quoted-printable for 货\0架
        code, reply = await asyncio.to_thread(submit, intake.port, nul)
        assert code == 554 and b"NUL" in reply, reply
        future = (datetime.now(UTC) + timedelta(days=40)).strftime("%a, %d %b %Y %H:%M:%S +0000")
        dated = mail(url, "货架", f"Date: {future}\r\n".encode())
        code, reply = await asyncio.to_thread(submit, intake.port, dated)
        assert code == 554 and b"in the future" in reply, reply
        assert not await exists(api, incident_id)
        code, reply = await asyncio.to_thread(submit, intake.port, mail(url, "货架上的牛奶过期了"))
        assert code == 250, reply
    api.incidents.add(incident_id)  # ended with the test, like those reported over HTTP
    state = await api.until(incident_id, lambda s: len(s["evidence"]) >= 1)
    assert state["channel"] == "email"


async def test_the_trail_is_read_in_pages(api: Api) -> None:
    incident_id = await drafted(api)
    base = f"/incidents/{incident_id}"
    for n in range(30):
        # No draft yet: each is the incident's refusal (409), on its trail.
        response = await api.post(f"{base}/approvals/unit_head", _approval(n), "huang.wei")
        assert response.status_code == 409, response.text
    state = await api.state(incident_id)
    assert len(state["trail"]) == 20 and state["trail_total"] > 30
    response = await api.http.get(f"{base}/trail?offset=0&limit=100", headers=who("li.ming"))
    assert response.status_code == 200, response.text
    page: dict[str, Any] = response.json()
    assert page["total"] == len(page["lines"]) == state["trail_total"]
    assert page["lines"][0]["kind"] == "discovered"
    assert page["lines"][-20:] == state["trail"]


def _approval(n: int) -> dict[str, Any]:
    return {"decision": "approve", "draft_version": 1, "comment": f"第{n}次"}


async def test_a_body_without_a_json_type_on_a_form_route_is_not_misnamed(api: Api) -> None:
    response = await api.http.post(
        "/intake/hotline-12315",
        content=b"{}",
        headers={**who("chen.jing"), "Content-Type": "application/json"},
    )
    assert response.status_code == 422  # the form's fields are named, not the JSON
    assert isinstance(response.json()["detail"], list)


async def test_a_post_learnt_of_in_1970_is_refused_and_starts_no_post(api: Api) -> None:
    incident_id = await drafted(api)
    base = f"/incidents/{incident_id}"
    post = {"post_id": "p1", "platform": "微博", "author": "网友甲", "content": "何时整改？"}
    for when in ("1970-01-01T00:00:00+00:00", "9999-12-31T00:00:00+08:00"):
        response = await api.post(f"{base}/posts", {**post, "learnt_at": when}, "chen.jing")
        assert response.status_code == 422, response.text
        assert response.json()["detail"][0]["loc"] == ["body", "learnt_at"], response.text
    # Past the door (a plain Temporal client): refused by the incident, the field named.
    workflow_id = incident_workflow_id(incident_id)
    late = {**post, "received_by": "chen.jing", "learnt_at": "1970-01-01T00:00:00+00:00"}
    entry = await decide(
        api.env.client, workflow_id, "netizen_post", signed(workflow_id, "netizen_post", late)
    )
    assert entry.refused and entry.refusal_kind == "malformed" and "learnt_at" in entry.detail
    assert not await exists(api, f"{incident_id}-post-p1")
    # Sent right, the same post starts.
    await api.accepted(f"{base}/posts", post, "chen.jing")
    state = await api.until(incident_id, lambda s: len(s["posts"]) == 1)
    assert state["posts"][0]["post_id"] == "p1"
