"""Notices in the reader's language: Chinese by default, English on request, from the catalog.

Officials read the report to the leaders, the reminders and escalations of a deadline, the
notice to the propaganda department and the police, and the notice that a draft awaits their
approval: each names units, deadlines and people by their names, gives times in Beijing time
(labelled), and links to the incident's page in the console.
"""

from __future__ import annotations

import base64
import json
import uuid
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import pytest
from temporalio.testing import WorkflowEnvironment

from activities.notifications import NotificationActivities
from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from tests.receivers import MailCollector, delivery_env, write_channels
from tests.test_posts import at, post, post_notices
from worker import create_worker
from yuqing.channels import load_channels
from yuqing.effects import SendNotification
from yuqing.i18n.notices import NoticeText
from yuqing.i18n.render import RosterNames, render
from yuqing.roles import Role
from yuqing.roster import Recipient, load_roster
from yuqing.settings import PROJECT_ROOT, Settings

LINK = "在控制台查看并处理：http://localhost:8000/console/incidents/"


async def outbox(driver: IncidentDriver, kind: str) -> list[asyncpg.Record]:
    return [r for r in await driver.rows("notification_outbox") if r["kind"] == kind]


async def test_notices_are_in_chinese_by_default_with_names_beijing_times_and_a_link(
    driver: IncidentDriver,
) -> None:
    started = await driver.start(report())
    incident_id = started.incident_id
    # Nobody reports: the 4 h report deadline is reminded of, then missed.
    await driver.sleep(timedelta(hours=4, minutes=1))
    await driver.until(lambda s: any(n.kind == "escalation" for n in s.notifications))
    [escalation] = await outbox(driver, "escalation")
    assert escalation["subject"] == f"[{incident_id}] 已超时：报告时限 4 小时（重要敏感）"
    body = escalation["body"]
    assert "原定 " in body and "（北京时间） 到期，至今未完成" in body
    assert "责任单位：西乡塘分局" in body and "责任人：黄伟 (西乡塘分局局长)" in body
    assert "xixiangtang-branch" not in body and "huang.wei" not in body
    assert body.endswith(LINK + incident_id)
    reminders = await outbox(driver, "reminder")
    assert reminders and all(
        "时限提醒：报告时限 4 小时（重要敏感）将于" in r["subject"] for r in reminders
    )

    await driver.accepted("submit_report", UPWARD_REPORT)
    await driver.until(lambda s: any(n.kind == "report" for n in s.notifications))
    [upward] = await outbox(driver, "report")
    assert upward["subject"] == f"[{incident_id}] 舆情报告：网传西乡塘某超市销售过期食品"
    assert "媒体/平台：新浪微博\n" in upward["body"] and "报告人：李明 (办公室)" in upward["body"]
    assert "Medium" not in upward["body"]

    # Assessed major: the notice to the propaganda department and the police, in Chinese.
    await driver.accepted(
        "submit_assessment", {"assessor_id": "li.ming", "cross_district": True, "comment": "跨区"}
    )
    await driver.until(lambda s: any(n.kind == "major_notice" for n in s.notifications))
    [major] = await outbox(driver, "major_notice")
    assert major["subject"] == f"[{incident_id}] 重大敏感负面舆情通报：网传西乡塘某超市销售过期食品"
    assert "经研判为重大敏感负面舆情，符合以下情形：跨市区。" in major["body"]
    assert "责任单位：西乡塘分局" in major["body"] and "（北京时间）" in major["body"]
    assert {r["name"] for r in json.loads(major["recipients"])} == {
        "市委宣传部网络舆情处",
        "市公安局网安支队",
    }
    # The state and the trail show the notice's subject as sent.
    state = await driver.state()
    notice = next(n for n in state.notifications if n.kind == "major_notice")
    assert notice.subject == major["subject"]

    # A draft reaches the unit head's step, and after their signature the section head's.
    await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "情况通报（第1版）"})
    await driver.until(lambda s: any(n.kind == "approval_requested" for n in s.notifications))
    await driver.accepted("unit_head_approval", approval("huang.wei", 1))
    await driver.until(
        lambda s: len([n for n in s.notifications if n.kind == "approval_requested"]) == 2
    )
    asked = {
        r["idempotency_key"].rsplit("/", 1)[1]: r
        for r in await outbox(driver, "approval_requested")
    }
    assert set(asked) == {"unit_head_approval", "section_head_review"}
    section = asked["section_head_review"]
    assert section["subject"].endswith("第 1 稿待您审定：网传西乡塘某超市销售过期食品")
    assert "已到“业务股室主要负责人审核”环节，请您审定" in section["body"]
    assert [r["id"] for r in json.loads(section["recipients"])] == ["wu.hua"]

    # The trail keeps each line as its message, which reads in either language.
    names = RosterNames(load_roster(PROJECT_ROOT / "config" / "roster.toml"))
    said = {e.kind: e.message for e in await driver.trail() if e.message is not None}
    assert render(said["draft"], "zh", names) == "第 1 稿已提交"
    assert render(said["draft"], "en", names) == "Draft v1 submitted"
    breached = render(said["deadline_breached"], "zh", names)
    assert breached.startswith("报告时限 4 小时（重要敏感）：已超时（截止 ")
    assert "（北京时间）；责任单位：西乡塘分局；责任人：黄伟 (西乡塘分局局长)）" in breached
    assert render(said["graded"], "zh", names) == "定为重大：跨市区"
    assert render(said["approval"], "en", names) == "unit head signs: approved draft v1"
    assert render(said["notified"], "zh", names).startswith("待审定通知未发出（未配置发送渠道")
    await driver.save_history("console_notices_in_chinese")


async def test_notices_in_english_when_the_notices_language_is_english(
    env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings
) -> None:
    task_queue = f"test-{uuid.uuid4()}"
    english = replace(settings, notice_language="en")
    async with create_worker(env.client, pool, english, task_queue=task_queue):
        driver = IncidentDriver(env, pool, task_queue)
        try:
            started = await driver.start(report())
            await driver.sleep(timedelta(hours=4, minutes=1))
            await driver.until(lambda s: any(n.kind == "escalation" for n in s.notifications))
            await driver.accepted("submit_report", UPWARD_REPORT)
            await driver.until(lambda s: any(n.kind == "report" for n in s.notifications))
        finally:
            await driver.terminate_if_running()
    [escalation] = await outbox(driver, "escalation")
    incident_id = started.incident_id
    assert escalation["subject"] == f"[{incident_id}] Missed: Report within 4 h (important)"
    assert "(Beijing time) and is not met." in escalation["body"]
    assert "Responsible unit: Xixiangtang branch" in escalation["body"]
    assert escalation["body"].endswith(
        f"Open the incident in the console: http://localhost:8000/console/incidents/{incident_id}"
    )
    [upward] = await outbox(driver, "report")
    assert upward["subject"] == f"[{incident_id}] Opinion report: 网传西乡塘某超市销售过期食品"
    assert "Medium: 新浪微博\n" in upward["body"]


async def test_each_mailbox_gets_the_notice_in_its_readers_language(
    pool: asyncpg.Pool, tmp_path: Path
) -> None:
    roster = load_roster(PROJECT_ROOT / "config" / "roster.toml")
    incident_id = f"n-{uuid.uuid4().hex[:8]}"
    text = NoticeText.about(
        "escalation",
        roster,
        label=incident_id,
        deadline="publish_statement",
        deadline_title="statement within 24 h",
        due="2026-12-01T04:00:00+00:00",
        unit="xixiangtang-branch",
        person=None,
    )
    request = SendNotification(
        idempotency_key=f"incident-{incident_id}/deadline/publish_statement/escalation",
        incident_id=incident_id,
        kind="escalation",
        subject="[old] missed",
        body="old English body",
        recipients=[
            Recipient(id="zhou.min", name="周敏", role=Role.publicity_lead, email="z@aic.example"),
            Recipient(
                id="visitor",
                name="Visitor",
                role=Role.principal_leader,
                email="v@aic.example",
                language="en",
            ),
        ],
        text=text,
    )
    async with MailCollector() as mail:
        channels = load_channels(
            write_channels(
                tmp_path / "channels.toml",
                f'[smtp]\nhost = "127.0.0.1"\nport = {mail.port}\n'
                'from_address = "yuqing@aic.example"\n',
            )
        )
        send = NotificationActivities(
            pool, channels, console_url="https://yuqing.example/console"
        ).send_notification
        sent = await delivery_env().run(send, request)
    assert sent.subject == f"[{incident_id}] 已超时：发布时限 24 小时"
    [chinese] = mail.to("z@aic.example")
    [english] = mail.to("v@aic.example")
    assert chinese["Subject"] == sent.subject
    assert "原定 2026-12-01 12:00（北京时间） 到期，至今未完成。" in chinese.get_content()
    assert "责任人：—" in chinese.get_content()  # nobody named: said so, not left blank
    assert english["Subject"] == f"[{incident_id}] Missed: Statement within 24 h"
    assert "was due 2026-12-01 12:00 (Beijing time) and is not met." in english.get_content()
    assert f"https://yuqing.example/console/incidents/{incident_id}" in english.get_content()


async def test_a_posts_escalation_quotes_the_post_in_chinese(own_clock: IncidentDriver) -> None:
    moment = at(2026, 12, 11, 16, 0)
    await own_clock.jump_to(moment)
    await own_clock.start(report())
    await own_clock.accepted("netizen_post", post("p1", learnt_at=moment.isoformat()))
    await own_clock.until_post("p1", lambda p: bool(p.deadlines))
    await own_clock.jump_to(at(2026, 12, 14, 9, 1))
    await own_clock.until_post("p1", lambda p: p.deadlines[0].status == "breached")
    [escalation] = await post_notices(own_clock, "escalation")
    assert "已超时：网民诉求初步回应" in escalation["subject"]
    body = escalation["body"]
    assert (
        "网民诉求 p1：网民诉求初步回应 3 个工作小时原定 2026-12-14 09:00（北京时间） 到期" in body
    )
    assert "南宁市政府网站留言板 · 网民p1：超市过期牛奶的事处理结果如何？" in body
    # The post's trail says where its notice went, in either language.
    post_trail = await own_clock.trail(f"{own_clock.handle.id}-post-p1")  # type: ignore[union-attr]
    said = [e.message for e in post_trail if e.kind == "notified" and e.message is not None]
    names = RosterNames(load_roster(PROJECT_ROOT / "config" / "roster.toml"))
    assert any(render(m, "zh", names).startswith("超时升级未发出（未配置发送渠道") for m in said)
    await own_clock.save_history("console_notices_post")


def test_a_notices_language_other_than_chinese_or_english_stops_start_up() -> None:
    with pytest.raises(ValueError, match="YUQING_NOTICE_LANGUAGE='fr'"):
        Settings.from_env({"YUQING_NOTICE_LANGUAGE": "fr"})
    assert Settings.from_env({}).notice_language == "zh"


def test_the_consoles_patches_are_asked_before_any_activity() -> None:
    """Asked after an activity, a patch's marker can be missed on replay (sdk-core merges a
    workflow task that recorded only a local activity's marker into the next): so the
    console's are all asked at the top of `run`, in the first workflow task."""
    histories = PROJECT_ROOT / "tests" / "histories"
    for name in ("console_memo_general-at-start", "console_notices_in_chinese"):
        events = json.loads((histories / f"{name}.json").read_text())["events"]
        first_task_end = next(
            int(e["eventId"]) for e in events if e["eventType"].endswith("WORKFLOW_TASK_COMPLETED")
        )
        first_activity = next(
            int(e["eventId"])
            for e in events
            if e["eventType"].endswith("TASK_SCHEDULED")
            and "activityTaskScheduledEventAttributes" in e
        )
        patches = {
            json.loads(
                base64.b64decode(
                    e["markerRecordedEventAttributes"]["details"]["patch-data"]["payloads"][0][
                        "data"
                    ]
                )
            )["id"]: int(e["eventId"])
            for e in events
            if e.get("markerRecordedEventAttributes", {}).get("markerName") == "core_patch"
        }
        ours = {k: v for k, v in patches.items() if k.startswith("console-")}
        assert set(ours) == {
            "console-memo-at-start",
            "console-trail-messages",
            "console-notice-text",
        }
        assert all(first_task_end < at < first_activity for at in ours.values()), (name, ours)


def test_the_plans_notices_read_in_chinese_and_english() -> None:
    """The leading group's notices (issue 12) come from the catalog like the rest."""
    from tests.plan_support import Story
    from tests.test_plan_rules import INTERVIEW, held_without_authorisation
    from yuqing.outcomes import Notify

    story = Story()
    story.ok("request_interview", INTERVIEW)
    story.ok(
        "interview_decision",
        {"decided_by": "tang.guo", "interview_id": "i1", "decision": "reject", "comment": "不宜"},
    )
    story.later(30).ok("interview_held", held_without_authorisation(story))
    texts = {
        e.kind: NoticeText.model_validate(e.text)
        for e in story.effects
        if isinstance(e, Notify) and e.text is not None
    }
    asked = texts["interview_requested"]
    assert "须经领导小组批准后方可进行" in asked.body("zh")
    assert "黄伟 (西乡塘分局局长)接受南宁电视台采访" in asked.body("zh")
    assert "（北京时间）" in asked.body("zh") and "(Beijing time)" in asked.body("en")
    assert "采访 i1 未获批准" in texts["interview_refused"].subject("zh")
    assert "意见：不宜" in texts["interview_refused"].body("zh")
    breach = texts["breach"]
    assert "违反预案第 4.4 条" in breach.subject("zh")
    assert "Breach of §4.4" in breach.subject("en")


def test_the_plans_trail_lines_read_in_chinese_and_english() -> None:
    """The plan's own lines (issue 12) keep their message, like the core's: the console and
    the audit show them in the reader's language, times in Beijing time."""
    from tests.plan_support import MEMBERS, Story, group_roster
    from tests.test_plan_rules import INTERVIEW, held_without_authorisation
    from yuqing.i18n.render import render

    story = Story(roster=group_roster())
    story.ok("choose_group_members", {"chosen_by": "tang.guo", "members": list(MEMBERS[1:])})
    story.ok(
        "record_contact",
        {
            "recorded_by": "li.ming",
            "department": "stability_office",
            "contacted_at": story.now.isoformat(),
            "contact_person": "王科长",
            "said": "通报核查进展",
        },
    )
    story.ok("request_interview", INTERVIEW)
    story.later(30).ok("interview_held", held_without_authorisation(story))
    lines = {e.kind: e for e in story.state.trail}
    kinds = ("group_members", "contact", "interview_requested", "interview_held", "breach")
    assert all(lines[k].message is not None for k in kinds), [
        k for k in kinds if lines[k].message is None
    ]
    said = {k: render(lines[k].message or {}, "zh") for k in kinds}
    assert said["contact"].startswith("与") and "（北京时间）" in said["contact"]
    assert "申请尚待领导小组批准时即已进行" in said["interview_held"]
    assert render(lines["breach"].message or {}, "en").endswith(
        "held while its request still awaited the leading group"
    )
