"""The `yuqing` command line against the real API (uvicorn on a loopback port, the
time-skipping server and a real worker behind it): report → draft → approve → status."""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import structlog.testing
from click.testing import Result
from temporalio.testing import WorkflowEnvironment
from typer.testing import CliRunner

from api import create_app
from api.server import serving
from tests.driver import UPWARD_REPORT, IncidentDriver
from worker import create_worker
from workflows.incident import IncidentWorkflow
from yuqing import incident_workflow_id
from yuqing.cli import app
from yuqing.settings import Settings


class Cli:
    def __init__(self, url: str, tmp_path: Path) -> None:
        self.url = url
        self.tmp_path = tmp_path
        self.runner = CliRunner()
        self.incidents: list[str] = []

    async def __call__(self, person: str | None, *args: str, lang: str = "en") -> Result:
        # English unless a test reads what an official reads by default (Chinese).
        env = {
            "YUQING_API_URL": self.url,
            "YUQING_TOKEN": f"dev-{person}" if person else "",
            "YUQING_LANG": lang,
        }
        # The API serves from this event loop: the command must run beside it, not block it.
        return await asyncio.to_thread(
            self.runner.invoke, app, list(args), env=env, catch_exceptions=False
        )

    def file(self, name: str, content: Any) -> str:
        path = self.tmp_path / name
        path.write_text(
            content if isinstance(content, str) else json.dumps(content, ensure_ascii=False)
        )
        return str(path)


@pytest.fixture
async def cli(
    env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> AsyncIterator[Cli]:
    task_queue = f"test-{uuid.uuid4()}"
    own = replace(settings, task_queue=task_queue)
    # The service's own log lines would otherwise land in the command's captured stdout.
    with structlog.testing.capture_logs():
        async with (
            create_worker(env.client, pool, own, task_queue=task_queue),
            serving(create_app(env.client, pool, own), access_log=False) as url,
        ):
            runner = Cli(url, tmp_path)
            try:
                yield runner
            finally:
                for incident_id in runner.incidents:
                    driver = IncidentDriver(env, pool, task_queue)
                    driver.handle = env.client.get_workflow_handle_for(
                        IncidentWorkflow.run, incident_workflow_id(incident_id)
                    )
                    await driver.terminate_if_running()


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


async def test_report_approve_and_status_through_the_cli(cli: Cli) -> None:
    incident = {
        "title": "网传西乡塘某超市销售过期食品",
        "channel": "weibo",
        "unit": "xixiangtang-branch",
        "sensitivity": "important",
        "source_url": f"https://weibo.example/status/{uuid.uuid4().int % 10**12}",
    }
    result = await cli("chen.jing", "report", cli.file("incident.json", incident), "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    incident_id = answer["incident_id"]
    cli.incidents.append(incident_id)
    assert answer["created"] is True

    result = await cli("li.ming", "upward-report", incident_id, cli.file("r.json", UPWARD_REPORT))
    assert result.exit_code == 0, result.output
    assert result.stdout.startswith("accepted: upward report via 新浪微博")
    result = await cli("li.ming", "assess", incident_id, cli.file("a.json", {"comment": "本地"}))
    assert result.exit_code == 0, result.output
    result = await cli("chen.jing", "draft", incident_id, cli.file("d.json", {"text": "通报"}))
    assert "draft version 1 submitted" in result.stdout

    approve = ["approve", incident_id, "--step", "unit_head", "--version", "1"]
    # The head of another unit: refused, with the reason, exit 1.
    result = await cli("liu.yang", *approve)
    assert result.exit_code == 1
    assert "refused (forbidden): liu.yang is unit_head of qingxiu-branch" in result.stderr
    result = await cli("liu.yang", *approve, "--json")
    assert result.exit_code == 1 and json.loads(result.stdout)["refusal_kind"] == "forbidden"
    # A rejection without its reason never leaves the machine.
    result = await cli("huang.wei", *approve, "--reject")
    assert result.exit_code == 2
    assert "a rejection must give its reason in comment" in result.stderr
    result = await cli("huang.wei", *approve, "--comment", "同意", "--json")
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["actor"] == "huang.wei"
    lead = ["--step", "publicity_lead", "--version", "1", "--token", "dev-zhou.min"]
    result = await cli(None, "approve", incident_id, *lead)
    assert result.exit_code == 0, result.output
    assert "publicity lead approves: approved draft version 1" in result.stdout

    for _ in range(100):
        result = await cli("li.ming", "status", incident_id, "--json")
        assert result.exit_code == 0, result.output
        state = json.loads(result.stdout)
        # Published on every channel: the stage moves on before the last channel has answered.
        published = [
            p for p in state["publications"] if p.get("status", "published") == "published"
        ]
        if state["stage"] == "monitoring" and len(published) == 3:
            break
        await asyncio.sleep(0.05)
    assert state["stage"] == "monitoring" and len(published) == 3
    result = await cli("li.ming", "status", incident_id)
    assert result.exit_code == 0, result.output
    for shown in ("monitoring", "publications", "approvals", "huang.wei", "2 refused signal"):
        assert shown in result.stdout
    # In 80 columns (not a terminal), names and steps stay whole: nothing is cut to "…".
    assert "publicity_lead" in result.stdout and "…" not in result.stdout

    # Closing with a malformed --open-post is bad input; the Office closes a general incident.
    result = await cli("li.ming", "close", incident_id, "--reason", "平息", "--open-post", "p1")
    assert result.exit_code == 2 and "POST_ID=WHY" in result.stderr
    result = await cli("li.ming", "close", incident_id, "--reason", "事态平息")
    assert result.exit_code == 0, result.output
    review = {"what_happened": "传言", "what_worked": "及时", "what_to_change": "巡查"}
    result = await cli("li.ming", "review", incident_id, cli.file("v.json", review))
    assert result.exit_code == 0, result.output


async def test_cli_errors_name_the_file_field_or_address(cli: Cli) -> None:
    """In Chinese, as an official reads them without asking (English: YUQING_LANG=en)."""
    result = await cli("chen.jing", "report", str(cli.tmp_path / "missing.json"), lang="zh")
    assert result.exit_code == 2 and "missing.json" in result.stderr
    assert result.stderr.startswith("错误：无法读取")
    result = await cli("chen.jing", "report", cli.file("bad.json", "{not json"), lang="zh")
    assert result.exit_code == 2 and "bad.json 不是 JSON" in result.stderr
    incomplete = {"title": "t", "channel": "weibo", "unit": "xixiangtang-branch"}
    result = await cli("chen.jing", "report", cli.file("incomplete.json", incomplete), lang="zh")
    assert result.exit_code == 2
    assert "incomplete.json 有误：sensitivity: 必填" in result.stderr
    result = await cli("chen.jing", "report", cli.file("incomplete.json", incomplete))
    assert "incomplete.json is invalid: sensitivity: Field required" in result.stderr
    result = await cli(None, "status", "demo-1", lang="zh")
    assert result.exit_code == 2 and "未提供令牌" in result.stderr
    result = await cli("nobody", "status", "demo-1", lang="zh")
    assert result.exit_code == 1 and "未通过认证：令牌无效" in result.stderr
    result = await cli("li.ming", "status", "no-such-incident", lang="zh")
    assert result.exit_code == 1 and "事件 no-such-incident不存在" in result.stderr
    result = await cli("li.ming", "status", "no-such-incident")
    assert result.exit_code == 1 and "incident no-such-incident does not exist" in result.stderr

    # Nothing listening: exit 3, saying where it tried. (A real process, for its exit code.)
    nowhere = f"http://127.0.0.1:{closed_port()}"
    finished = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "yuqing.cli", "status", "demo-1", "--api-url", nowhere],
        capture_output=True,
        text=True,
        env={"YUQING_TOKEN": "dev-li.ming", "PATH": ""},
        timeout=60,
    )
    assert finished.returncode == 3, finished.stderr
    assert f"无法连接位于 {nowhere} 的舆情平台接口" in finished.stderr


async def test_report_email_through_the_cli(cli: Cli) -> None:
    fixture = Path(__file__).parent / "fixtures" / "report-with-screenshot.eml"
    # A story of its own: the e-mail intake tests report the fixture's link as it is.
    story = f"https://weibo.example/status/{uuid.uuid4().int % 10**12}".encode()
    eml = Path(cli.file("report.eml", "")).with_name("own-story.eml")
    eml.write_bytes(fixture.read_bytes().replace(b"https://weibo.example/status/5000000001", story))
    result = await cli("li.ming", "report-email", str(eml), "--json")
    assert result.exit_code == 0, result.output
    answer = json.loads(result.stdout)
    cli.incidents.append(answer["incident_id"])
    assert answer["stage"] == "discovered"
    status = await cli("li.ming", "status", answer["incident_id"], "--json")
    state = json.loads(status.stdout)
    assert state["channel"] == "email"
    assert any(e["kind"] == "screenshot" for e in state["evidence"])

    missing = await cli("li.ming", "report-email", str(eml.with_name("no-such.eml")))
    assert missing.exit_code == 2 and "cannot read" in missing.output
    garbage = await cli("li.ming", "report-email", cli.file("broken.eml", "not an e-mail"))
    assert garbage.exit_code == 2, garbage.output
    assert "not an RFC 822 message" in garbage.output
