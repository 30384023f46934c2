"""The HTTP API through real sockets: uvicorn on a free loopback port, in front of the
time-skipping server's client and a real worker, driven with httpx as any caller would."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import pytest
from temporalio.client import Client
from temporalio.service import RetryConfig
from temporalio.testing import WorkflowEnvironment

from api import create_app
from api.auth import Directory, TokensError, hash_token, load_tokens
from api.server import serving
from tests.conftest import installed_binary
from tests.driver import UPWARD_REPORT, IncidentDriver
from worker import create_worker
from workflows.incident import IncidentWorkflow
from yuqing import incident_workflow_id
from yuqing.client import data_converter
from yuqing.codec import KeyRing
from yuqing.intake import incident_id_for, intake_key
from yuqing.settings import PROJECT_ROOT, Settings

STATEMENT = "经核查，涉事超市已下架相关商品，依法立案查处。\n欢迎社会各界监督。"


def who(person: str) -> dict[str, str]:
    """The development token of a roster person (config/tokens.toml)."""
    return {"Authorization": f"Bearer dev-{person}"}


def weibo_url() -> str:
    return f"https://weibo.example/status/{uuid.uuid4().int % 10**12}"


def incident(**overrides: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "title": "网传西乡塘某超市销售过期食品",
        "channel": "weibo",
        "unit": "xixiangtang-branch",
        "sensitivity": "important",
        "summary": "A Weibo post with photos claims a supermarket sells expired milk.",
        "source_url": weibo_url(),
        "evidence": [{"kind": "web_page", "content_text": "<html>原帖内容</html>"}],
    }
    body.update(overrides)
    return body


@dataclass
class Api:
    """An httpx client on the running API, and the incidents the test made, to end them."""

    http: httpx.AsyncClient
    env: WorkflowEnvironment
    pool: asyncpg.Pool
    task_queue: str
    incidents: set[str] = field(default_factory=set)

    async def post(self, path: str, body: Any, person: str) -> httpx.Response:
        return await self.http.post(path, json=body, headers=who(person))

    async def report(self, body: dict[str, Any], person: str = "chen.jing") -> httpx.Response:
        response = await self.post("/incidents", body, person)
        self.remember(response)
        return response

    def remember(self, response: httpx.Response) -> None:
        if response.status_code in (200, 201):
            self.incidents.add(response.json()["incident_id"])

    async def state(self, incident_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/incidents/{incident_id}", headers=who("li.ming"))
        assert response.status_code == 200, response.text
        state: dict[str, Any] = response.json()
        return state

    async def until(
        self, incident_id: str, condition: Callable[[dict[str, Any]], bool]
    ) -> dict[str, Any]:
        for _ in range(300):
            state = await self.state(incident_id)
            if condition(state):
                return state
            await asyncio.sleep(0.05)
        raise AssertionError(f"incident {incident_id} never got there: {state['trail']}")

    async def accepted(self, path: str, body: Any, person: str) -> dict[str, Any]:
        response = await self.post(path, body, person)
        assert response.status_code == 200, response.text
        entry: dict[str, Any] = response.json()
        assert entry["refused"] is False
        return entry

    async def end(self) -> None:
        for incident_id in self.incidents:
            driver = IncidentDriver(self.env, self.pool, self.task_queue)
            driver.handle = self.env.client.get_workflow_handle_for(
                IncidentWorkflow.run, incident_workflow_id(incident_id)
            )
            await driver.terminate_if_running()


@pytest.fixture
async def api(
    env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[Api]:
    task_queue = f"test-{uuid.uuid4()}"
    own = replace(settings, task_queue=task_queue)
    async with (
        create_worker(env.client, pool, own, task_queue=task_queue),
        serving(create_app(env.client, pool, own), access_log=False) as url,
        # The errors these tests read are the English ones (test_errors_speak_chinese_first
        # checks the Chinese a caller gets without asking).
        httpx.AsyncClient(base_url=url, timeout=60, headers={"Accept-Language": "en"}) as http,
    ):
        service = Api(http, env, pool, task_queue)
        try:
            yield service
        finally:
            await service.end()


async def assessed(api: Api, **overrides: Any) -> str:
    response = await api.report(incident(**overrides))
    assert response.status_code == 201, response.text
    incident_id: str = response.json()["incident_id"]
    await api.accepted(f"/incidents/{incident_id}/report", UPWARD_REPORT, "li.ming")
    await api.accepted(f"/incidents/{incident_id}/assessment", {"comment": "本地"}, "li.ming")
    return incident_id


async def published(api: Api) -> str:
    incident_id = await assessed(api)
    await api.accepted(f"/incidents/{incident_id}/drafts", {"text": STATEMENT}, "chen.jing")
    approve = {"decision": "approve", "draft_version": 1, "comment": "同意"}
    await api.accepted(f"/incidents/{incident_id}/approvals/unit_head", approve, "huang.wei")
    await api.accepted(f"/incidents/{incident_id}/approvals/publicity_lead", approve, "zhou.min")
    await api.until(incident_id, lambda s: s["stage"] == "monitoring")
    return incident_id


async def test_incident_reported_approved_and_published_over_http(api: Api) -> None:
    body = incident()
    response = await api.report(body)
    assert response.status_code == 201, response.text
    answer = response.json()
    incident_id = incident_id_for(intake_key("weibo", url=body["source_url"]))
    assert answer["incident_id"] == incident_id and answer["created"] is True
    assert answer["workflow_id"] == f"incident-{incident_id}"
    state = await api.state(incident_id)
    assert state["reporter_id"] == "chen.jing" and state["channel"] == "weibo"
    base = f"/incidents/{incident_id}"

    # No token, or a token nobody holds.
    response = await api.http.post(f"{base}/report", json=UPWARD_REPORT)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    bad = {"Authorization": "Bearer dev-nobody"}
    assert (await api.http.get(base, headers=bad)).status_code == 401

    entry = await api.accepted(f"{base}/report", {**UPWARD_REPORT, "reporter_id": None}, "li.ming")
    assert entry["kind"] == "reported" and entry["actor"] == "li.ming"
    entry = await api.accepted(f"{base}/assessment", {"comment": "local"}, "li.ming")
    assert entry["kind"] == "graded" and entry["detail"].startswith("general")
    entry = await api.accepted(f"{base}/drafts", {"text": STATEMENT}, "chen.jing")
    assert entry["detail"] == "draft version 1 submitted"
    # At rest: the report's notice and the unit head's "第 1 稿待您审定", sent after their
    # decisions, are in, and the draft's step deadline is planned (each would look like a
    # change).
    before = await api.until(
        incident_id,
        lambda s: (
            {"report", "approval_requested"} <= {n["kind"] for n in s["notifications"]}
            and not s["planning"]
        ),
    )

    approve = {"decision": "approve", "draft_version": 1, "comment": "同意"}
    cases: list[tuple[str, str, dict[str, Any], int, str]] = [
        # The body names someone other than the token's person.
        ("unit_head", "huang.wei", {**approve, "approver_id": "zhou.min"}, 403, "own name"),
        # The head of another unit.
        ("unit_head", "liu.yang", approve, 403, "unit_head of qingxiu-branch, not of xixiang"),
        # Someone without the role.
        ("unit_head", "chen.jing", approve, 403, "chen.jing does not hold the role unit_head"),
        # Out of order: the publicity lead before the unit head.
        ("publicity_lead", "zhou.min", approve, 409, "must come before"),
        # A stale (here: never submitted) draft version.
        ("unit_head", "huang.wei", {**approve, "draft_version": 7}, 409, "not the current draft"),
        # A step the general chain does not have.
        ("section_head", "wu.hua", approve, 403, "not part of the general chain"),
    ]
    for step, person, payload, status, reason in cases:
        response = await api.post(f"{base}/approvals/{step}", payload, person)
        assert response.status_code == status, (step, person, response.text)
        assert reason in response.json()["detail"], response.text
    # Refused by the workflow itself: the kind is said, and the trail entry returned.
    response = await api.post(f"{base}/approvals/unit_head", approve, "liu.yang")
    assert response.json()["refusal_kind"] == "forbidden"
    assert response.json()["entry"]["refused"] is True

    # Malformed: FastAPI names the field before anything is sent.
    response = await api.post(f"{base}/approvals/unit_head", {"decision": "approve"}, "huang.wei")
    assert response.status_code == 422
    assert [e["loc"] for e in response.json()["detail"]] == [["body", "draft_version"]]
    response = await api.post(
        f"{base}/approvals/unit_head", {**approve, "decision": "maybe"}, "huang.wei"
    )
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "decision"]
    reject = {"decision": "reject", "draft_version": 1}
    response = await api.post(f"{base}/approvals/unit_head", reject, "huang.wei")
    assert response.status_code == 422
    assert "a rejection must give its reason in comment" in response.text
    response = await api.post(f"{base}/approvals/janitor", approve, "huang.wei")
    assert response.status_code == 422
    # Unknown incident.
    response = await api.post(
        "/incidents/no-such-incident/approvals/unit_head", approve, "huang.wei"
    )
    assert response.status_code == 404
    assert "incident no-such-incident does not exist" in response.json()["detail"]

    # Nothing refused changed the incident: only its trail grew.
    after = await api.state(incident_id)
    assert after["approvals"] == [] and after["stage"] == "approving"
    moving = ("trail", "refused_total", "trail_total", "trail_offset")
    assert {k: v for k, v in after.items() if k not in moving} == {
        k: v for k, v in before.items() if k not in moving
    }
    # The state shows the latest lines only: the refusals are read from the trail's pages.
    page = await api.http.get(
        f"/incidents/{incident_id}/trail",
        params={"offset": before["trail_total"]},
        headers=who("li.ming"),
    )
    assert page.status_code == 200, page.text
    refused = [e for e in page.json()["lines"] if e["refused"]]
    assert [e["refusal_kind"] for e in refused] == [
        "forbidden",
        "forbidden",
        "conflict",
        "conflict",
        "forbidden",
        "forbidden",
    ]

    entry = await api.accepted(f"{base}/approvals/unit_head", approve, "huang.wei")
    assert entry["kind"] == "approval" and entry["role"] == "unit_head"
    entry = await api.accepted(f"{base}/approvals/publicity_lead", approve, "zhou.min")
    assert entry["actor"] == "zhou.min"
    # Monitoring from the first channel's publication; the draft is published once on all.
    state = await api.until(incident_id, lambda s: s["drafts"][-1]["status"] == "published")
    assert state["stage"] == "monitoring"
    assert {p["channel"] for p in state["publications"]} == {"website", "weibo", "wechat"}
    # Too late for another draft: the statement is out.
    response = await api.post(f"{base}/drafts", {"text": "更正"}, "chen.jing")
    assert response.status_code == 409 and "already out" in response.json()["detail"]

    # The statement's page: its text, where it went, its hash, and the chain beneath.
    response = await api.http.get(f"/statements/{incident_id}-v1")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/html; charset=utf-8"
    page = response.text
    assert "经核查，涉事超市已下架相关商品，依法立案查处。" in page
    assert hashlib.sha256(STATEMENT.encode()).hexdigest() in page
    assert "matches the text above" in page
    for channel in ("门户网站", "政务微博", "微信公众号"):
        assert channel in page
    assert f"http://localhost:8000/statements/{incident_id}-v1#weibo" in page
    chain = page.index("Approval chain")
    assert page.index("经核查") < chain
    assert chain < page.index("黄伟 (西乡塘分局局长) (huang.wei)") < page.index("周敏")
    assert "单位主要负责人签署" in page and "新闻宣传分管领导审定" in page
    assert page.count("同意 approved") == 2
    missing = await api.http.get(f"/statements/{incident_id}-v2")
    assert missing.status_code == 404 and "No statement" in missing.text
    assert (await api.http.get("/statements/not-a-statement")).status_code == 404

    # The API documents itself.
    schema = (await api.http.get("/openapi.json")).json()
    assert "/incidents/{incident_id}/approvals/{step}" in schema["paths"]
    assert "HTTPBearer" in schema["components"]["securitySchemes"]
    assert (await api.http.get("/docs")).status_code == 200


async def test_posts_close_and_review_over_http(api: Api) -> None:
    incident_id = await published(api)
    base = f"/incidents/{incident_id}"
    post = {
        "post_id": "p1",
        "platform": "南宁市政府网站留言板",
        "author": "网民甲",
        "content": "超市过期牛奶的事处理结果如何？",
    }
    entry = await api.accepted(f"{base}/posts", post, "chen.jing")
    assert entry["kind"] == "netizen_post" and entry["actor"] == "chen.jing"
    response = await api.post(f"{base}/posts", post, "chen.jing")
    assert response.status_code == 409 and "already received" in response.json()["detail"]
    await api.until(incident_id, lambda s: bool(s["posts"] and s["posts"][0]["deadlines"]))
    response = await api.http.get(f"{base}/posts/p1", headers=who("chen.jing"))
    assert response.status_code == 200 and response.json()["status"] == "received"
    missing = await api.http.get(f"{base}/posts/p9", headers=who("chen.jing"))
    assert missing.status_code == 404

    # Open posts must be answered, or named with why, before the incident closes.
    close = {"reason": "事态平息"}
    response = await api.post(f"{base}/close", close, "li.ming")
    assert response.status_code == 409 and "p1 are unanswered" in response.json()["detail"]

    respond = {"text": "已转西乡塘分局核查。", "needs_formal_handling": False}
    response = await api.post(f"{base}/posts/p1/initial-response", respond, "liu.yang")
    assert response.status_code == 403, response.text
    entry = await api.accepted(f"{base}/posts/p1/initial-response", respond, "chen.jing")
    assert entry["kind"] == "initial_response" and entry["actor"] == "chen.jing"
    await api.until(incident_id, lambda s: s["posts"][0]["status"] == "answered")

    entry = await api.accepted(f"{base}/close", close, "li.ming")
    assert entry["kind"] == "closed"
    review = {"what_happened": "过期食品传言", "what_worked": "及时上报", "what_to_change": "巡查"}
    entry = await api.accepted(f"{base}/review", review, "li.ming")
    assert entry["kind"] == "reviewed"
    state = await api.until(incident_id, lambda s: s["stage"] == "reviewed")
    assert state["review"]["author_id"] == "li.ming"
    assert state["close_reason"] == "事态平息"


async def test_a_post_answered_the_moment_it_is_taken(api: Api) -> None:
    # Each post answered at once after it is taken. The time-skipping server starts a post's
    # workflow with its incident's task, so the window where it does not exist yet (a 404 on
    # the dev server before the API waited for it) is not met here: test_decide's stub is.
    incident_id = await published(api)
    base = f"/incidents/{incident_id}"
    respond = {"text": "已转西乡塘分局核查。", "needs_formal_handling": False}
    for number in range(4):
        post = {
            "post_id": f"q{number}",
            "platform": "微博",
            "author": "网民乙",
            "content": "处理结果如何？",
        }
        await api.accepted(f"{base}/posts", post, "chen.jing")
        entry = await api.accepted(f"{base}/posts/q{number}/initial-response", respond, "chen.jing")
        assert entry["kind"] == "initial_response"
    # A post the incident never took is still a 404 at once.
    response = await api.post(f"{base}/posts/q9/initial-response", respond, "chen.jing")
    assert response.status_code == 404, response.text


async def test_monitor_webhook_and_hotline_form_join_or_start_incidents(api: Api) -> None:
    url = weibo_url()
    alert = {
        "platform": "weibo",
        "url": url + "?utm_source=monitor",
        "title": "西乡塘超市过期牛奶",
        "excerpt": "货架上的牛奶已过期三天",
        "reposts": 8,
        "captured_at": "2026-11-28T09:05:00+08:00",
        "screenshot_base64": base64.b64encode(b"\x89PNG screenshot").decode(),
        "vendor_score": 0.93,
    }
    incident_id = incident_id_for(intake_key("media_monitor", url=url))
    hook = "/intake/monitor?unit=xixiangtang-branch"
    response = await api.post(hook, alert, "li.ming")
    api.remember(response)
    assert response.status_code == 201, response.text
    assert response.json()["incident_id"] == incident_id
    state = await api.until(incident_id, lambda s: len(s["evidence"]) == 2)
    assert state["channel"] == "media_monitor" and state["metrics"]["weibo_reposts"] == 8
    assert {e["kind"] for e in state["evidence"]} == {"web_page", "screenshot"}
    assert datetime.fromisoformat(state["discovered_at"]) == datetime(
        2026, 11, 28, 1, 5, tzinfo=UTC
    )

    # The webhook delivered twice: the same answer, nothing added.
    again = await api.post(hook, alert, "li.ming")
    assert again.status_code == 201 and again.json() == response.json()

    # A 12315 caller points to the same post: the ticket joins the story's incident.
    form = {
        "ticket_no": f"T-{uuid.uuid4().hex[:8]}",
        "summary": "来电称在该超市买到过期牛奶",
        "time": "2026-11-28 10:30",
        "place": "西乡塘区某超市",
        "unit": "xixiangtang-branch",
        "url": url,
    }
    response = await api.http.post("/intake/hotline-12315", data=form, headers=who("chen.jing"))
    assert response.status_code == 200, response.text
    assert response.json()["incident_id"] == incident_id and response.json()["created"] is False
    state = await api.until(incident_id, lambda s: len(s["evidence"]) == 3)
    assert any(
        e["kind"] == "reported_again" and "hotline_12315" in e["detail"] for e in state["trail"]
    )

    # A later alert on the open story brings its new repost count.
    response = await api.post(hook, {**alert, "reposts": 25}, "li.ming")
    assert response.status_code == 200, response.text
    assert response.json()["metrics_update"]["kind"] == "metrics"
    state = await api.state(incident_id)
    assert state["metrics"]["weibo_reposts"] == 25

    # A ticket about no post: its own incident, named by the ticket number.
    ticket = f"T-{uuid.uuid4().hex[:8]}"
    response = await api.http.post(
        "/intake/hotline-12315",
        data={**{k: v for k, v in form.items() if k != "url"}, "ticket_no": ticket},
        headers=who("chen.jing"),
    )
    api.remember(response)
    assert response.status_code == 201, response.text
    assert response.json()["incident_id"] == incident_id_for(
        intake_key("hotline_12315", external_id=ticket)
    )
    state = await api.state(response.json()["incident_id"])
    assert state["channel"] == "hotline_12315"
    # A time without a zone is Beijing time.
    assert datetime.fromisoformat(state["discovered_at"]) == datetime(
        2026, 11, 28, 2, 30, tzinfo=UTC
    )

    # Refused before anything starts, naming the field.
    response = await api.http.post(
        "/intake/hotline-12315", data={"summary": "x", "unit": "y"}, headers=who("chen.jing")
    )
    assert response.status_code == 422
    assert ["body", "ticket_no"] in [e["loc"] for e in response.json()["detail"]]
    response = await api.post("/intake/monitor", alert, "li.ming")
    assert response.status_code == 422 and response.json()["detail"][0]["loc"] == ["body", "unit"]
    response = await api.report(incident(unit="no-such-branch"))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "unit"]
    assert "has no unit head" in response.json()["detail"][0]["msg"]
    response = await api.report(incident(source_url=None, evidence=[]))
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "incident_id"]
    response = await api.report(incident(reporter_id="li.ming"), person="chen.jing")
    assert response.status_code == 403 and "reporter_id names li.ming" in response.text


async def test_statement_page_escapes_everything(api: Api) -> None:
    incident_id = f"t-{uuid.uuid4().hex[:10]}"
    approval = {
        "signal": "unit_head_approval",
        "role": "unit_head",
        "approver_id": "<b>mallory</b>",
        "decision": "approve",
        "draft_version": 1,
        "comment": "<img src=x onerror=alert(1)>",
        "at": "2026-11-28T02:00:00+00:00",
    }
    await api.pool.execute(
        "INSERT INTO publications (idempotency_key, incident_id, channel, draft_version,"
        " address, content, content_sha256, approvals) VALUES ($1, $2, 'website', 1, $3, $4,"
        " $5, $6)",
        f"incident-{incident_id}/draft-1/website",
        incident_id,
        "javascript:alert(1)",
        "<script>alert('x')</script>\n通报 & 说明",
        "0" * 64,
        json.dumps([approval]),
    )
    response = await api.http.get(f"/statements/{incident_id}-v1")
    assert response.status_code == 200
    page = response.text
    assert "<script>" not in page and "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page
    assert "<img" not in page and "&lt;img src=x onerror=alert(1)&gt;" in page
    assert "<b>mallory" not in page and "&lt;b&gt;mallory&lt;/b&gt;" in page
    assert 'href="javascript' not in page
    assert "通报 &amp; 说明" in page
    assert "DOES NOT match" in page
    assert "default-src 'none'" in response.headers["content-security-policy"]


@pytest.fixture
async def without_temporal(
    pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[tuple[httpx.AsyncClient, str]]:
    """The API over a Temporal that has gone, and that Temporal's address."""
    gone = await WorkflowEnvironment.start_time_skipping(
        test_server_existing_path=installed_binary("temporal-test-server")
    )
    address = gone.client.service_client.config.target_host
    # One retry, not the SDK's ten seconds of them, to keep the test quick.
    client = await Client.connect(
        address,
        data_converter=data_converter(KeyRing.from_environ()),
        retry_config=RetryConfig(max_retries=1, initial_interval_millis=10),
    )
    await gone.shutdown()
    async with (
        serving(create_app(client, pool, settings), access_log=False) as url,
        httpx.AsyncClient(base_url=url, timeout=30) as http,
    ):
        yield http, address


async def test_temporal_unreachable_is_503(
    without_temporal: tuple[httpx.AsyncClient, str],
) -> None:
    http, address = without_temporal
    response = await http.get("/incidents/demo-1", headers=who("li.ming"))
    assert response.status_code == 503, response.text
    assert f"无法连接位于 {address} 的 Temporal" in response.json()["detail"]
    english = {**who("li.ming"), "Accept-Language": "en-GB,en;q=0.9,zh;q=0.5"}
    response = await http.get("/incidents/demo-1", headers=english)
    assert response.status_code == 503, response.text
    assert f"Temporal at {address} is unreachable" in response.json()["detail"]
    response = await http.post("/incidents", json=incident(), headers=who("chen.jing"))
    assert response.status_code == 503, response.text
    assert (await http.get("/health")).status_code == 200


async def test_errors_speak_chinese_first(without_temporal: tuple[httpx.AsyncClient, str]) -> None:
    """An official's error is in Chinese unless they ask for English; what a program reads
    (the status, the field's `loc`, the limit) is the same in both."""
    http, _ = without_temporal
    en = {"Accept-Language": "en"}
    response = await http.get("/incidents/demo-1")
    assert response.status_code == 401
    assert response.json()["detail"].startswith("未提供令牌")
    response = await http.get("/incidents/demo-1", headers=en)
    assert response.json()["detail"].startswith("no token")

    too_long = incident(summary="长" * 5000)
    for headers, said in (({}, "最多"), (en, "at most")):
        response = await http.post(
            "/incidents", json=too_long, headers={**who("chen.jing"), **headers}
        )
        assert response.status_code == 422, response.text
        (error,) = response.json()["detail"]
        assert error["loc"] == ["body", "summary"] and error["type"] == "string_too_long"
        limit = error["ctx"]["max_chars"]
        assert said in error["msg"] and str(limit) in error["msg"], error

    huge = b"{" + b" " * (3 * 1024 * 1024) + b"}"
    for headers, said in (({}, "最多接受"), (en, "takes at most")):
        response = await http.post(
            "/incidents/demo-1/close",
            content=huge,
            headers={**who("li.ming"), "Content-Type": "application/json", **headers},
        )
        assert response.status_code == 413
        assert said in response.json()["detail"] and "2097152" in response.json()["detail"]


def test_tokens_file_keeps_only_hashes(tmp_path: Path) -> None:
    shipped = load_tokens(PROJECT_ROOT / "config" / "tokens.toml")
    assert shipped.development_only
    assert shipped.person_for("dev-huang.wei") == "huang.wei"
    assert shipped.person_for("huang.wei") is None
    lines = (PROJECT_ROOT / "config" / "tokens.toml").read_text().splitlines()
    assert not [line for line in lines if "dev-" in line and not line.startswith("#")]

    bad = tmp_path / "tokens.toml"
    bad.write_text('[[tokens]]\nperson = "huang.wei"\nsha256 = "dev-huang.wei"\n')
    with pytest.raises(TokensError, match=r"tokens.0.sha256"):
        load_tokens(bad)
    bad.write_text(f'[[tokens]]\nperson = "nobody"\nsha256 = "{hash_token("t")}"\n')
    with pytest.raises(TokensError, match="names nobody, not in roster"):
        Directory.load(PROJECT_ROOT / "config" / "roster.toml", bad)
