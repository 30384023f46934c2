"""What the `yuqing` command shows before it does anything: clean help, shell completion, and
nothing imported that a command does not need; and how the service logs, in a terminal and
elsewhere."""

from __future__ import annotations

import json
import os
import pty
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime

import asyncpg
import pytest
import structlog.testing
from temporalio.testing import ActivityEnvironment
from typer.main import get_command
from typer.testing import CliRunner

import activities.audit
from activities.audit import AuditActivities
from yuqing.cli import app
from yuqing.effects import RecordTrail
from yuqing.settings import PROJECT_ROOT
from yuqing.state import TrailEntry

COMMANDS = sorted(get_command(app).commands)  # type: ignore[attr-defined]


def python(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        cwd=PROJECT_ROOT,
        env={**os.environ, **env},
        timeout=60,
        check=False,
    )


def test_help_names_values_in_capitals_and_shows_no_type_noise() -> None:
    runner = CliRunner()
    for command in ["", *COMMANDS]:
        shown = runner.invoke(app, [*command.split(), "--help"], prog_name="yuqing")
        assert shown.exit_code == 0, (command, shown.output)
        # typer's own `<bool>`, `<str>`, `<int range>` and `{INCIDENT_ID}` stay out.
        noise = r"<(bool|str|int|float|path|file|datetime|uuid)( range)?>|\{[A-Z_]+\}"
        assert not re.search(noise, shown.output, re.IGNORECASE), (command, shown.output)
    chinese = {"YUQING_LANG": "", "LC_ALL": "", "LC_MESSAGES": "", "LANG": "C.UTF-8"}
    approve = runner.invoke(app, ["approve", "--help"], prog_name="yuqing", env=chinese).output
    assert "用法：yuqing approve [OPTIONS] INCIDENT_ID" in approve
    assert "--version N" in approve and "--token TOKEN" in approve
    assert "您批准的稿件版本" in approve and "显示本帮助并退出" in approve
    for env in ({"YUQING_LANG": "en"}, {**chinese, "LANG": "en_GB.UTF-8"}):
        english = runner.invoke(app, ["approve", "--help"], prog_name="yuqing", env=env).output
        assert "Usage: yuqing approve [OPTIONS] INCIDENT_ID" in english, env
        assert "The draft version you approve." in english, env


def test_shell_completion_is_on() -> None:
    runner = CliRunner()
    helped = runner.invoke(app, ["--help"], prog_name="yuqing").output
    assert "--install-completion" in helped and "--show-completion" in helped
    # The completion protocol as bash's completion function drives it.
    completed = subprocess.run(
        [sys.executable, "-m", "yuqing.cli"],
        capture_output=True,
        text=True,
        env={
            **os.environ,
            "_YUQING_COMPLETE": "complete_bash",
            "COMP_WORDS": "yuqing aud",
            "COMP_CWORD": "1",
        },
        timeout=60,
        check=False,
    )
    assert "audit" in completed.stdout.split(), completed


def test_commands_import_only_what_they_need() -> None:
    """`yuqing --help` and an API command import no Temporal SDK, no web framework, no HTTP
    library beyond the standard one, no database driver and no model of the workflows."""
    heavy = ("temporalio", "fastapi", "httpx", "asyncpg", "structlog", "workflows", "api")
    report = (
        "import atexit, sys\n"
        "atexit.register(lambda: sys.stderr.write('MODULES ' + ' '.join(sys.modules) + '\\n'))\n"
        "from yuqing.cli import main\n"
        "sys.argv = ['yuqing', *sys.argv[1:]]\n"
        "main()\n"
    )
    for args in (["--help"], ["status", "demo-1", "--api-url", "http://127.0.0.1:9"]):
        ended = subprocess.run(
            [sys.executable, "-c", report, *args],
            capture_output=True,
            text=True,
            env={**os.environ, "YUQING_TOKEN": "dev-li.ming"},
            timeout=60,
            check=False,
        )
        line = next(x for x in ended.stderr.splitlines() if x.startswith("MODULES "))
        loaded = {name.split(".")[0] for name in line.split()[1:]}
        assert not loaded & set(heavy), (args, sorted(loaded & set(heavy)))
        assert "yuqing.models" not in line.split(), args


LOG = (
    "import logging, structlog\n"
    "from yuqing.log import configure\n"
    "configure()\n"
    "structlog.get_logger('yuqing.test').info('signal accepted', incident_id='demo-1')\n"
    "logging.getLogger('temporalio.worker').warning('from the SDK')\n"
)


def in_a_terminal(code: str, **env: str) -> str:
    """Run `code` with standard error on a pseudo-terminal; what it wrote there."""
    leader, follower = pty.openpty()
    try:
        subprocess.run(
            [sys.executable, "-c", code],
            stderr=follower,
            stdout=subprocess.DEVNULL,
            cwd=PROJECT_ROOT,
            env={**os.environ, **env, "YUQING_LOG_FORMAT": env.get("YUQING_LOG_FORMAT", "")},
            timeout=60,
            check=True,
        )
        os.close(follower)
        follower = -1
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the terminal's other end is closed: all is read
                break
            if not chunk:
                break
            chunks.append(chunk)
        return b"".join(chunks).decode("utf-8", "replace")
    finally:
        os.close(leader)
        if follower >= 0:
            os.close(follower)


def test_logs_are_for_people_in_a_terminal_and_json_elsewhere() -> None:
    shown = in_a_terminal(LOG)
    assert "signal accepted" in shown and "incident_id" in shown and "demo-1" in shown
    assert "from the SDK" in shown and '{"' not in shown  # the console renderer, not JSON

    piped = python(LOG, YUQING_LOG_FORMAT="")
    lines = [json.loads(line) for line in piped.stderr.splitlines()]
    assert [(x["event"], x["level"]) for x in lines] == [
        ("signal accepted", "info"),
        ("from the SDK", "warning"),
    ]
    assert lines[0]["incident_id"] == "demo-1" and lines[0]["logger"] == "yuqing.test"

    # Chosen either way, whatever standard error is.
    assert '"event": "signal accepted"' in in_a_terminal(LOG, YUQING_LOG_FORMAT="json")
    assert "{" not in python(LOG, YUQING_LOG_FORMAT="console").stderr


async def test_recording_a_trail_is_no_line_of_its_own(
    pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One line per unit of work: the decision is logged where it is taken; recording the
    lines it added to the trail is debug detail, not a third of the log."""
    entry = TrailEntry(at=datetime.now(UTC), kind="stage", detail="stage: reported")
    request = RecordTrail(
        workflow_id=f"incident-log-{uuid.uuid4().hex[:8]}",
        incident_id="log",
        first_seq=0,
        entries=[entry],
        deadlines=[],
    )
    with structlog.testing.capture_logs() as logged:
        # A logger made now: one cached by an earlier test's configuration would not be seen.
        monkeypatch.setattr(activities.audit, "log", structlog.get_logger("activities.audit"))
        await ActivityEnvironment().run(AuditActivities(pool).record_trail, request)
    recorded = [e for e in logged if e["event"] == "decision trail recorded"]
    assert [e["log_level"] for e in recorded] == ["debug"]
    assert not [e for e in logged if e["log_level"] == "info"]
