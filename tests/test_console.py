"""The console in a real browser, against real servers: the Temporal dev server (its visibility
store answers the list of incidents), an embedded PostgreSQL, a worker and the API over
uvicorn. People sign in with their tokens and do what the plan asks of them.

`YUQING_SCREENSHOTS=1` also writes each page's screenshot, desktop and phone, into docs/.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import pytest
from axe_playwright_python.async_playwright import Axe
from fastapi import FastAPI
from playwright.async_api import Browser, Page, Route, async_playwright
from temporalio.client import Client, WorkflowExecutionStatus
from temporalio.service import RPCError

from api import create_app
from api.server import serving
from tests.browser import (
    DOCS,
    FLAGS,
    chromium_path,
    csrf_of,
    new_context,
    reload_until,
    sign_in,
)
from tests.driver import UPWARD_REPORT
from worker import create_worker
from yuqing import incident_workflow_id
from yuqing.client import connect
from yuqing.settings import Settings
from yuqing.stack import TemporalDevServer

FIRST = "经核查，涉事超市已下架相关商品。\n欢迎社会各界监督。"
SECOND = "经核查，涉事超市已下架全部过期牛奶，依法立案查处。\n欢迎社会各界监督。"
LEGAL = "涉事超市涉嫌违反《食品安全法》第三十四条，我局依法查处并无不当。"


def who(person: str) -> dict[str, str]:
    return {"Authorization": f"Bearer dev-{person}"}


@dataclass
class Console:
    """The running API and console, and the incidents a test made (ended afterwards)."""

    url: str
    http: httpx.AsyncClient
    client: Client
    app: FastAPI
    made: set[str] = field(default_factory=set)

    async def post(self, path: str, body: Any, person: str) -> dict[str, Any]:
        response = await self.http.post(path, json=body, headers=who(person))
        assert response.status_code in (200, 201), response.text
        data: dict[str, Any] = response.json()
        return data

    async def state(self, incident_id: str) -> dict[str, Any]:
        response = await self.http.get(f"/incidents/{incident_id}", headers=who("li.ming"))
        assert response.status_code == 200, response.text
        data: dict[str, Any] = response.json()
        return data

    async def incident(
        self, tag: str, *, hours_ago: float = 0.0, sensitivity: str = "important"
    ) -> str:
        """Report an incident discovered `hours_ago`; returns its id."""
        incident_id = f"c-{tag}-{uuid.uuid4().hex[:8]}"
        discovered = datetime.now(UTC) - timedelta(hours=hours_ago)
        await self.post(
            "/incidents",
            {
                "incident_id": incident_id,
                "title": f"网传西乡塘某超市销售过期牛奶（{tag}）",
                "channel": "weibo",
                "unit": "xixiangtang-branch",
                "sensitivity": sensitivity,
                "summary": "网民发帖称超市销售过期牛奶，配图三张。",
                "source_url": f"https://weibo.example/status/{uuid.uuid4().int % 10**12}",
                "discovered_at": discovered.isoformat(),
                "evidence": [
                    {"kind": "screenshot", "content_text": "帖子截图", "description": "原帖截图"}
                ],
            },
            "chen.jing",
        )
        self.made.add(incident_id)
        return incident_id

    async def assessed(self, tag: str, *, major: bool = False, **kw: Any) -> str:
        incident_id = await self.incident(tag, **kw)
        await self.post(f"/incidents/{incident_id}/report", UPWARD_REPORT, "li.ming")
        assessment = {"cross_district": major, "comment": "研判"}
        await self.post(f"/incidents/{incident_id}/assessment", assessment, "li.ming")
        return incident_id

    async def drafted(self, tag: str) -> str:
        incident_id = await self.assessed(tag)
        await self.post(f"/incidents/{incident_id}/drafts", {"text": FIRST}, "chen.jing")
        return incident_id

    async def end(self) -> None:
        for incident_id in self.made:
            handle = self.client.get_workflow_handle(incident_workflow_id(incident_id))
            try:
                if (await handle.describe()).status is WorkflowExecutionStatus.RUNNING:
                    await handle.terminate("test finished")
            except RPCError:
                pass


@pytest.fixture(scope="module")
async def console(
    dev_server: TemporalDevServer, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[Console]:
    client = await connect(
        replace(
            settings, temporal_address=dev_server.address, temporal_namespace=dev_server.namespace
        )
    )
    task_queue = f"console-{uuid.uuid4()}"
    own = replace(settings, task_queue=task_queue)
    app = create_app(client, pool, own)
    async with (
        serving(app, access_log=False) as url,
        # Notices link to this console's pages.
        create_worker(
            client, pool, replace(own, console_url=f"{url}/console"), task_queue=task_queue
        ),
        httpx.AsyncClient(base_url=url, timeout=60) as http,
    ):
        running = Console(url, http, client, app)
        try:
            yield running
        finally:
            await running.end()


@pytest.fixture(scope="session")
async def browser() -> AsyncIterator[Browser]:
    path = chromium_path()
    async with async_playwright() as playwright:
        launched = await playwright.chromium.launch(executable_path=path, args=FLAGS)
        try:
            yield launched
        finally:
            await launched.close()


async def page_for(browser: Browser, console: Console, person: str, **kw: Any) -> Page:
    context = await new_context(browser, console.url, **kw)
    page = await context.new_page()
    await sign_in(page, person)
    return page


async def shows(page: Page, selector: str, text: str) -> bool:
    return text in " ".join(await page.locator(selector).all_inner_texts())


async def test_a_returned_draft_then_the_publicity_lead_approves_from_todo(
    console: Console, browser: Browser
) -> None:
    incident_id = await console.drafted("approve")
    page_url = f"/console/incidents/{incident_id}"

    # The unit head returns the first draft, with the reason, from the incident's page.
    head = await page_for(browser, console, "huang.wei")
    await reload_until(
        head,
        "/console/todo",
        lambda p: shows(p, ".work", incident_id),
        "the draft in the unit head's work",
    )
    assert await shows(head, ".work", "第 1 稿待您审定")
    await head.click(f".work a[href='{page_url}']")
    await head.fill("#a-comment", "请补充处理结果")
    await head.click("button[name=decision][value=reject]")
    await head.wait_for_url(f"**{page_url}?done=reject")
    assert await shows(head, ".flash-done", "已退回")

    # The unit's work shows the returned draft with the reason; it submits the second draft.
    unit = await page_for(browser, console, "chen.jing")
    await reload_until(
        unit,
        "/console/todo",
        lambda p: shows(p, ".work", "请补充处理结果"),
        "the returned draft with its reason",
    )
    assert await shows(unit, ".work", "第 1 稿被退回")
    await unit.click(f".work a[href='{page_url}']")
    await unit.fill("#d-text", SECOND)
    await unit.click("form[action$='/draft'] button[type=submit]")
    await unit.wait_for_url(f"**{page_url}?done=draft")

    await console.post(f"/incidents/{incident_id}/legal-opinions", {"opinion": LEGAL}, "zhao.lei")
    approve = {"decision": "approve", "draft_version": 2, "comment": "同意"}
    await console.post(f"/incidents/{incident_id}/approvals/unit_head", approve, "huang.wei")

    # The publicity lead finds draft 2 in 待办, sees the diff and the legal opinion, approves.
    lead = await page_for(browser, console, "zhou.min")
    await reload_until(
        lead,
        "/console/todo",
        lambda p: shows(p, ".work", "第 2 稿待您审定"),
        "draft 2 in the publicity lead's work",
    )
    await lead.click(f".work a[href='{page_url}']")
    assert await lead.locator("#diff ins").count() >= 1
    assert "全部过期牛奶" in " ".join(await lead.locator("#diff ins").all_inner_texts())
    assert await shows(lead, "#h-legal + blockquote, .legal", "食品安全法")
    assert await shows(lead, ".drafts", FIRST.splitlines()[0])
    await lead.click("button[name=decision][value=approve]")
    await lead.wait_for_url(f"**{page_url}?done=approve")
    await reload_until(lead, page_url, _has_statement, "the published statement")
    assert (await lead.inner_text("#stage")) in ("已发布", "跟踪监测")
    await lead.click("a.statement")
    await lead.wait_for_url(f"**/statements/{incident_id}-v2")
    assert "依法立案查处" in await lead.inner_text("article")


async def test_each_approver_is_notified_in_turn_with_a_link_to_the_draft(
    console: Console, browser: Browser, pool: asyncpg.Pool
) -> None:
    incident_id = await console.drafted("asked")

    # Draft 1 reaches the unit head's step: "第 1 稿待您审定", in Chinese, to the unit head.
    notice = await _notice(pool, incident_id, "draft/1/awaits/unit_head_approval")
    assert [r["id"] for r in json.loads(notice["recipients"])] == ["huang.wei"]
    assert notice["subject"].endswith("第 1 稿待您审定：网传西乡塘某超市销售过期牛奶（asked）")
    assert "已到“单位主要负责人签署”环节，请您审定" in notice["body"]
    assert "陈静 (西乡塘分局)提交" in notice["body"] and "责任单位：西乡塘分局" in notice["body"]
    [link] = re.findall(r"在控制台查看并处理：(\S+)", notice["body"])
    assert link == f"{console.url}/console/incidents/{incident_id}"

    # The link opens the draft, with the approve button, for the person it was sent to.
    head = await page_for(browser, console, "huang.wei")
    response = await head.goto(link)
    assert response is not None and response.status == 200
    assert FIRST.splitlines()[0] in await head.inner_text(".drafts")
    await head.click("button[name=decision][value=approve]")
    await head.wait_for_url(f"**{incident_id}?done=approve")

    # Then the publicity lead's step: the next notice goes to them.
    notice = await _notice(pool, incident_id, "draft/1/awaits/publicity_lead_approval")
    assert [r["id"] for r in json.loads(notice["recipients"])] == ["zhou.min"]
    assert "已到“新闻宣传分管领导审定”环节" in notice["body"]


async def _notice(pool: asyncpg.Pool, incident_id: str, step: str) -> asyncpg.Record:
    key = f"{incident_workflow_id(incident_id)}/{step}"
    for _ in range(600):
        row = await pool.fetchrow(
            "SELECT * FROM notification_outbox WHERE idempotency_key = $1 AND status = 'sent'",
            key,
        )
        if row is not None:
            return row
        await asyncio.sleep(0.1)  # polling a real server's outbox, for a condition
    raise AssertionError(f"no notice {key}")


async def _has_statement(page: Page) -> bool:
    return await page.locator("a.statement").count() == 1


async def test_another_units_head_gets_no_button_and_a_forged_post_is_refused(
    console: Console, browser: Browser
) -> None:
    incident_id = await console.drafted("forged")
    page = await page_for(browser, console, "liu.yang")
    response = await page.goto(f"/console/incidents/{incident_id}")
    assert response is not None and response.status == 403
    assert await page.locator("button[name=decision]").count() == 0
    assert "青秀" not in await page.inner_text(".refusal")  # it names the incident's unit
    assert "西乡塘分局" in await page.inner_text(".refusal")

    # The form an approver would send, forged with liu.yang's own session and CSRF token.
    forged = await page.request.post(
        f"/console/incidents/{incident_id}/approve",
        form={
            "csrf": await csrf_of(page),
            "step": "unit_head",
            "draft_version": "1",
            "decision": "approve",
            "comment": "",
        },
        max_redirects=0,
    )
    assert forged.status == 403
    assert "qingxiu-branch" in await forged.text()
    trail = (await console.state(incident_id))["trail"]
    refusal = trail[-1]
    assert refusal["refused"] and refusal["actor"] == "liu.yang"
    assert refusal["refusal_kind"] == "forbidden" and refusal["signal"] == "unit_head_approval"

    # Without the session's CSRF token the form is refused before anything is sent.
    before = len(trail)
    no_token = await page.request.post(
        f"/console/incidents/{incident_id}/approve",
        form={"step": "unit_head", "draft_version": "1", "decision": "approve"},
        max_redirects=0,
    )
    assert no_token.status == 403
    assert len((await console.state(incident_id))["trail"]) == before


async def test_the_list_shows_each_clock_as_a_light_and_filters_by_grade(
    console: Console, browser: Browser
) -> None:
    late = await console.incident("red", hours_ago=5)  # its 4 h report deadline has passed
    soon = await console.incident("yellow", hours_ago=2.5)  # past its half-time reminder
    major = await console.assessed("major", major=True)
    general = await console.assessed("general")

    async def lights(incident_id: str) -> dict[str, str]:
        page = await console.http.get(
            "/incidents", params={"status": "open", "page_size": 100}, headers=who("li.ming")
        )
        assert page.status_code == 200, page.text
        for item in page.json()["incidents"]:
            if item["incident_id"] == incident_id:
                return {c["key"]: c["light"] for c in item["clocks"]}
        return {}

    li = await page_for(browser, console, "li.ming")
    await reload_until(
        li,
        "/console/incidents?status=open",
        lambda p: _row_light(p, late, "red"),
        "the breached report deadline in red",
    )
    assert (await lights(late))["report_important"] == "red"
    assert (await lights(soon))["report_important"] == "yellow"
    assert await _row_light(li, soon, "yellow")
    assert (await lights(major))["publish_statement"] == "green"
    assert await _row_light(li, major, "green")

    await li.select_option("#f-grade", "major")
    await li.click("form.filters button[type=submit]")
    await li.wait_for_url("**grade=major**")
    rows = await li.locator("tr[data-incident]").evaluate_all(
        "rows => rows.map(r => r.dataset.incident)"
    )
    assert major in rows and general not in rows and late not in rows
    assert all(g == "重大" for g in await li.locator("td[data-label='级别']").all_inner_texts())

    # The JSON list behind it: filtered and paged, with the caller's scope.
    first = await console.http.get(
        "/incidents", params={"grade": "major", "page_size": 1}, headers=who("li.ming")
    )
    assert first.status_code == 200
    body = first.json()
    assert [i["grade"] for i in body["incidents"]] == ["major"]
    seen = {body["incidents"][0]["incident_id"]}
    while body["next_page_token"] and major not in seen:
        more = await console.http.get(
            "/incidents",
            params={"grade": "major", "page_size": 1, "page_token": body["next_page_token"]},
            headers=who("li.ming"),
        )
        assert more.status_code == 200, more.text
        body = more.json()
        assert len(body["incidents"]) <= 1
        new = {i["incident_id"] for i in body["incidents"]}
        assert not new & seen, "a page repeats an incident"
        seen |= new
    assert major in seen
    forged = await console.http.get(
        "/incidents", params={"page_token": "not-a-token"}, headers=who("li.ming")
    )
    assert forged.status_code == 422
    other_unit = await console.http.get("/incidents", headers=who("liu.yang"))
    assert all(i["unit"] == "qingxiu-branch" for i in other_unit.json()["incidents"])
    bad = await console.http.get("/incidents", params={"grade": "huge"}, headers=who("li.ming"))
    assert bad.status_code == 422


async def _row_light(page: Page, incident_id: str, light: str) -> bool:
    row = page.locator(f"tr[data-incident='{incident_id}']")
    return await row.count() == 1 and await row.locator(f".light.{light}").count() >= 1


async def test_the_same_pages_in_english_after_the_switch(
    console: Console, browser: Browser
) -> None:
    incident_id = await console.drafted("english")
    page = await page_for(browser, console, "huang.wei")
    assert await page.inner_text("nav") == "待办\n事件\n统计"
    await page.click("a.lang")
    await page.wait_for_url("**/console/todo")
    assert "My work" in await page.inner_text("nav")
    await reload_until(
        page,
        "/console/todo",
        lambda p: shows(p, ".work", "awaits your approval"),
        "the English work list",
    )
    await page.goto(f"/console/incidents/{incident_id}")
    main = await page.inner_text("main")
    for words in (
        "Deadlines",
        "Statement drafts",
        "Approvals",
        "Evidence",
        "Timeline",
        "(Beijing time)",
        "Approve",
        "Return",
    ):
        assert words in main, words
    assert await page.get_attribute("html", "lang") == "en"
    await page.goto("/console/incidents")
    assert "Incidents" in await page.inner_text("h1")

    # A browser that prefers English gets it without the switch; the switch goes back.
    english = await page_for(browser, console, "li.ming", lang="en-GB")
    assert "My work" in await english.inner_text("h1")
    await english.click("a.lang")
    await english.wait_for_url("**/console/todo")
    assert await english.inner_text("h1") == "待办"


async def test_docs_render_with_the_network_blocked(console: Console, browser: Browser) -> None:
    context = await new_context(browser, console.url)
    elsewhere: list[str] = []

    async def only_the_api(route: Route) -> None:
        if route.request.url.startswith(console.url):
            await route.continue_()
        else:
            elsewhere.append(route.request.url)
            await route.abort()

    await context.route("**/*", only_the_api)
    page = await context.new_page()
    await page.goto("/docs")
    await page.wait_for_selector(".swagger-ui .info .title", timeout=20000)
    assert "Yuqing" in await page.inner_text(".swagger-ui .info .title")
    assert await page.locator(".opblock-summary-path").count() > 10
    assert elsewhere == [], elsewhere
    await page.goto("/redoc")
    await page.wait_for_selector("h1", timeout=20000)
    assert "Yuqing" in await page.inner_text("h1")
    # ReDoc's bundle links its own "by Redocly" logo; the page renders without it.
    assert all(url.startswith("https://cdn.redoc.ly/") for url in elsewhere), elsewhere
    await context.close()


async def test_a_sign_on_proxy_in_front_names_the_person(console: Console) -> None:
    """With YUQING_CONSOLE_TRUSTED_HEADER set, the header the proxy adds signs the person in."""
    console.app.state.console_trusted_header = "X-Forwarded-Email"
    try:
        page = await console.http.get(
            "/console/todo", headers={"X-Forwarded-Email": "Zhou.Min@aic.example"}
        )
        assert page.status_code == 200 and "周敏" in page.text
        stranger = await console.http.get(
            "/console/todo",
            headers={"X-Forwarded-Email": "someone@else.example"},
            follow_redirects=True,
        )
        assert "不在人员名册中" in stranger.text
        # A token no longer signs anyone in: the proxy is the only way in.
        bare = await console.http.get("/console/todo")
        assert bare.status_code == 303 and bare.headers["location"].startswith("/console/login")
    finally:
        console.app.state.console_trusted_header = None


PAGES = ("login", "todo", "incidents", "incident", "compliance")


async def test_every_page_is_accessible_and_shown_on_desktop_and_phone(
    console: Console, browser: Browser, tmp_path: Any
) -> None:
    """axe-core finds no serious or critical violation on any page, desktop or phone, and the
    Chinese is drawn with a CJK font; the screenshots in docs/ come from here."""
    incident_id = await console.drafted("pages")
    await console.post(
        f"/incidents/{incident_id}/approvals/unit_head",
        {"decision": "reject", "draft_version": 1, "comment": "请补充处理结果"},
        "huang.wei",
    )
    await console.post(f"/incidents/{incident_id}/drafts", {"text": SECOND}, "chen.jing")
    await console.post(f"/incidents/{incident_id}/legal-opinions", {"opinion": LEGAL}, "zhao.lei")
    await console.post(
        f"/incidents/{incident_id}/approvals/unit_head",
        {"decision": "approve", "draft_version": 2, "comment": "同意"},
        "huang.wei",
    )
    await console.incident("breached", hours_ago=5)
    write = os.environ.get("YUQING_SCREENSHOTS") == "1"
    out = DOCS if write else tmp_path
    axe = Axe()
    for phone in (False, True):
        context = await new_context(browser, console.url, phone=phone)
        page = await context.new_page()
        urls = {
            "login": "/console/login",
            "todo": "/console/todo",
            "incidents": "/console/incidents",
            "incident": f"/console/incidents/{incident_id}",
            "compliance": "/console/compliance",
        }
        for name in PAGES:
            if name == "todo":
                await sign_in(page, "zhou.min")
                await reload_until(
                    page, urls[name], lambda p: shows(p, ".work", "第 2 稿待您审定"), "the work"
                )
            else:
                await page.goto(urls[name])
            results = await axe.run(page)
            bad = [
                f"{v['id']} ({v['impact']}): {v['help']} at "
                + ", ".join(str(n["target"]) for n in v["nodes"][:3])
                for v in results.response["violations"]
                if v["impact"] in ("serious", "critical")
            ]
            assert not bad, f"{name} ({'phone' if phone else 'desktop'}): {bad}"
            assert await page.evaluate("document.fonts.check('16px \"Noto Sans CJK SC\"', '待办')")
            width = "phone" if phone else "desktop"
            await page.screenshot(path=str(out / f"console-{name}-{width}.png"), full_page=True)
        await context.close()


def test_screenshots_are_committed() -> None:
    for name in PAGES:
        for width in ("desktop", "phone"):
            path = DOCS / f"console-{name}-{width}.png"
            assert path.exists(), f"{path} is missing: run with YUQING_SCREENSHOTS=1"
            assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
