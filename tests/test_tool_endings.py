"""How `yuqing` and `python -m starter` end, as a script sees them: real processes against
real servers. Every failure is one line on standard error with the documented exit code (1
refused, 2 bad input, 3 a service unreachable), never a traceback; a frozen Temporal is said
within two seconds; and no run aborts at exit (the SDK's exit-time crash, `yuqing.tool`)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import sys
import tempfile
import time
import uuid
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import pytest
import structlog.testing
from temporalio.client import KeepAliveConfig

from api import create_app
from api.server import serving
from worker import create_worker
from yuqing import tool
from yuqing.cli.api_client import Api
from yuqing.client import connect
from yuqing.settings import PROJECT_ROOT, Settings
from yuqing.stack import EmbeddedPostgres, TemporalDevServer, start_temporal

DEMO = PROJECT_ROOT / "demo"
# Runs of each command for the exit-time check (the abort came 1 run in 3 to 1 in 20), and
# this many more as fresh interpreters, as a script starts them.
RUNS = 50
FRESH_RUNS = 1


@dataclass
class Ended:
    code: int
    stdout: str
    stderr: str
    # Seconds from the start to each line of standard error.
    stderr_at: list[tuple[float, str]]


async def run(args: Sequence[str], env: dict[str, str], patience: float = 120) -> Ended:
    """One real process, as a script runs it; standard error is timed line by line."""
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *args,
        cwd=PROJECT_ROOT,
        env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1", **env},
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert process.stdout is not None and process.stderr is not None
    lines: list[tuple[float, str]] = []

    async def timed(stream: asyncio.StreamReader) -> None:
        async for raw in stream:
            lines.append((time.monotonic() - started, raw.decode("utf-8", "replace")))

    async with asyncio.timeout(patience):
        out, _, code = await asyncio.gather(
            process.stdout.read(), timed(process.stderr), process.wait()
        )
    return Ended(code, out.decode("utf-8", "replace"), "".join(t for _, t in lines), lines)


YUQING = [sys.executable, "-m", "yuqing.cli"]
STARTER = [sys.executable, "-m", "starter"]


def one_line(ended: Ended, code: int, says: str) -> None:
    """Exit `code`, and the failure said in one line that contains `says`, no traceback."""
    assert ended.code == code, ended
    assert "Traceback" not in ended.stderr and "Fatal Python error" not in ended.stderr, ended
    errors = [line for line in ended.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, ended
    # Besides the error, at most a line saying what was waited for.
    others = [line for line in ended.stderr.splitlines() if not line.startswith("error: ")]
    assert all(line.startswith("waiting for ") for line in others), ended
    assert says in errors[0], ended


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
    return port


@dataclass
class Stack:
    temporal: str
    api: str
    database_url: str
    incident_id: str


async def reported(api: str, directory: Path, *, drafted: bool = True) -> str:
    """A new incident, reported through the API (and given its upward report and a draft)."""
    incident_id = f"endings-{uuid.uuid4().hex[:10]}"
    report = json.loads((DEMO / "01-incident.json").read_text(encoding="utf-8"))
    report["incident_id"] = incident_id
    report["source_url"] = f"https://weibo.example/status/{uuid.uuid4().int % 10**12}"
    file = directory / f"{incident_id}.json"
    file.write_text(json.dumps(report), encoding="utf-8")
    steps: list[tuple[str, ...]] = [("chen.jing", "report", str(file))]
    if drafted:
        steps += [
            ("li.ming", "upward-report", incident_id, str(DEMO / "02-report.json")),
            ("chen.jing", "draft", incident_id, str(DEMO / "04-draft.json")),
        ]
    for person, *command in steps:
        made = await run(
            [*YUQING, *command], {"YUQING_API_URL": api, "YUQING_TOKEN": f"dev-{person}"}
        )
        assert made.code in (0, 1), made  # a draft before the assessment is refused
    return incident_id


@pytest.fixture(scope="module")
async def stack(
    dev_server: TemporalDevServer,
    postgres: EmbeddedPostgres,
    pool: asyncpg.Pool,
    settings: Settings,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[Stack]:
    """The suite's dev server with a worker and the API, and one incident on its way: one for
    the module's tests, which leave it as it is."""
    task_queue = f"endings-{uuid.uuid4()}"
    own = replace(
        settings,
        temporal_address=dev_server.address,
        temporal_namespace=dev_server.namespace,
        task_queue=task_queue,
    )
    client = await connect(own)
    with structlog.testing.capture_logs():
        async with (
            create_worker(client, pool, own, task_queue=task_queue),
            serving(create_app(client, pool, own), access_log=False) as url,
        ):
            incident_id = await reported(url, tmp_path_factory.mktemp("endings"))
            yield Stack(dev_server.address, url, postgres.url, incident_id)
            await client.get_workflow_handle(f"incident-{incident_id}").terminate()


async def test_no_run_aborts_at_exit(stack: Stack) -> None:
    """`yuqing status`, `yuqing audit` and `python -m starter state`, 50 runs each: every one
    ends with exit 0, none with the SDK's abort at exit (134) or a segmentation fault (139).

    Each run is a process of its own; `tests/exit_runs.py` forks them from one that has
    imported what the command imports once (the abort came at the end of a run, not at its
    start), and one more each is a fresh interpreter, as a script starts it."""
    env = {
        "TEMPORAL_ADDRESS": stack.temporal,
        "YUQING_API_URL": stack.api,
        "YUQING_TOKEN": "dev-li.ming",
    }
    commands = {
        "yuqing status": ["yuqing", "status", stack.incident_id],
        "yuqing audit": ["yuqing", "audit", stack.incident_id],
        "starter state": ["starter", "state", stack.incident_id],
    }
    runs = [sys.executable, str(PROJECT_ROOT / "tests" / "exit_runs.py"), str(RUNS)]
    # Generous: on a loaded machine 50 runs take minutes.
    forked = await asyncio.gather(
        *(run([*runs, *args], env, patience=900) for args in commands.values())
    )
    for name, ended in zip(commands, forked, strict=True):
        assert ended.code == 0, ended
        report = json.loads(ended.stdout)
        assert report["codes"] == [0] * RUNS, (name, report)
    fresh = {"yuqing": YUQING, "starter": STARTER}
    for name, (which, *args) in commands.items():
        for _ in range(FRESH_RUNS):
            ended = await run([*fresh[which], *args], env)
            assert ended.code == 0, (name, ended)
            assert "Fatal Python error" not in ended.stderr, (name, ended)


async def test_temporal_unreachable(tmp_path: Path) -> None:
    nowhere = f"127.0.0.1:{closed_port()}"
    env = {"TEMPORAL_ADDRESS": nowhere}
    says = f"Temporal at {nowhere} cannot be reached (connection refused"
    one_line(await run([*YUQING, "audit", "demo-1"], env), tool.UNREACHABLE, says)
    one_line(await run([*STARTER, "state", "demo-1"], env), tool.UNREACHABLE, says)
    report = str(DEMO / "02-report.json")
    one_line(
        await run([*STARTER, "signal", "demo-1", "submit_report", report], env),
        tool.UNREACHABLE,
        says,
    )


async def test_the_api_cannot_reach_temporal(pool: asyncpg.Pool, settings: Settings) -> None:
    """Through the API: its 503 is exit 3, naming the API and what it could not reach."""
    nowhere = replace(settings, temporal_address=f"127.0.0.1:{closed_port()}")
    client = await connect(nowhere, lazy=True)
    with structlog.testing.capture_logs():
        async with serving(create_app(client, pool, nowhere), access_log=False) as url:
            ended = await run(
                [*YUQING, "status", "demo-1"],
                {"YUQING_API_URL": url, "YUQING_TOKEN": "dev-li.ming"},
            )
    one_line(ended, tool.UNREACHABLE, f"the Yuqing API at {url} answered 503")


async def test_postgres_unreachable(stack: Stack) -> None:
    nowhere = f"postgresql://yuqing@127.0.0.1:{closed_port()}/yuqing"
    env = {"DATABASE_URL": nowhere, "TEMPORAL_ADDRESS": stack.temporal}
    says = f"PostgreSQL at {nowhere} cannot be reached"
    one_line(await run([*YUQING, "audit-verify"], env), tool.UNREACHABLE, says)
    one_line(await run([*YUQING, "compliance"], env), tool.UNREACHABLE, says)
    # Before anything else: no timeline printed first.
    checked = await run([*YUQING, "audit", stack.incident_id, "--check"], env)
    one_line(checked, tool.UNREACHABLE, says)
    assert checked.stdout == ""
    # Not set at all: bad input, named, before any work.
    unset = await run([*YUQING, "audit", stack.incident_id, "--check"], {"DATABASE_URL": ""})
    one_line(unset, tool.BAD_INPUT, "DATABASE_URL is not set")
    assert unset.stdout == ""


async def test_unwritable_output(stack: Stack, tmp_path: Path) -> None:
    env = {"TEMPORAL_ADDRESS": stack.temporal, "DATABASE_URL": stack.database_url}
    missing = tmp_path / "no-such-dir" / "trail.html"
    one_line(
        await run(
            [*YUQING, "audit", stack.incident_id, "--format", "html", "--output", str(missing)], env
        ),
        tool.BAD_INPUT,
        f"cannot write {missing} (there is no directory {missing.parent})",
    )
    one_line(
        await run([*YUQING, "compliance", "--format", "csv", "--output", str(tmp_path)], env),
        tool.BAD_INPUT,
        f"cannot write {tmp_path} (it is a directory)",
    )
    # Checked first: even with Temporal unreachable, the path is what is wrong.
    nowhere = {"TEMPORAL_ADDRESS": f"127.0.0.1:{closed_port()}"}
    one_line(
        await run([*YUQING, "audit", "demo-1", "--output", str(missing)], nowhere),
        tool.BAD_INPUT,
        "cannot write",
    )


async def test_unknown_and_ended_incident(stack: Stack, settings: Settings, tmp_path: Path) -> None:
    env = {
        "TEMPORAL_ADDRESS": stack.temporal,
        "YUQING_API_URL": stack.api,
        "YUQING_TOKEN": "dev-li.ming",
    }
    one_line(
        await run([*YUQING, "audit", "no-such-incident"], env),
        tool.REFUSED,
        f"incident no-such-incident does not exist in Temporal at {stack.temporal}",
    )
    one_line(
        await run([*YUQING, "status", "no-such-incident"], env),
        tool.REFUSED,
        "incident no-such-incident does not exist",
    )
    one_line(
        await run([*STARTER, "state", "no-such-incident"], env),
        tool.REFUSED,
        "incident no-such-incident does not exist",
    )
    report = str(DEMO / "02-report.json")
    one_line(
        await run([*STARTER, "signal", "no-such-incident", "submit_report", report], env),
        tool.REFUSED,
        "incident no-such-incident does not exist",
    )
    # An incident that has ended is said so, by the starter as by the API.
    ended = await reported(stack.api, tmp_path, drafted=False)
    client = await connect(replace(settings, temporal_address=stack.temporal))
    await client.get_workflow_handle(f"incident-{ended}").terminate("test")
    one_line(
        await run([*STARTER, "signal", ended, "submit_report", report], env),
        tool.REFUSED,
        f"incident {ended} has ended",
    )
    one_line(
        await run([*YUQING, "upward-report", ended, report], env),
        tool.REFUSED,
        f"incident {ended} has ended",
    )


async def test_bad_input_is_named() -> None:
    env = {"YUQING_TOKEN": "dev-li.ming", "YUQING_API_URL": f"http://127.0.0.1:{closed_port()}"}
    one_line(
        await run([*YUQING, "approve", "demo-1"], env), tool.BAD_INPUT, "missing option '--step'"
    )
    one_line(await run([*YUQING, "frob"], env), tool.BAD_INPUT, "no such command 'frob'")
    one_line(
        await run([*YUQING, "assess", "demo-1", "no-such.json"], env),
        tool.BAD_INPUT,
        "cannot read no-such.json",
    )
    one_line(
        await run([*YUQING, "compliance", "--from", "yesterday"], env),
        tool.BAD_INPUT,
        "--from 'yesterday' is not a day: write it as YYYY-MM-DD",
    )
    one_line(await run([*STARTER, "frob"], env), tool.BAD_INPUT, "invalid choice: 'frob'")
    one_line(
        await run([*STARTER, "report", str(DEMO / "02-report.json")], env),
        tool.BAD_INPUT,
        "the incident report is invalid: incident_id: Field required",
    )


@pytest.fixture
async def frozen() -> AsyncIterator[TemporalDevServer]:
    """A dev server of our own, stopped with SIGSTOP: it accepts connections, answers none."""
    server = await start_temporal(
        Path(tempfile.mkdtemp(prefix="yuqing-frozen-")), port=0, headless=True, persist=False
    )
    os.kill(server.process.pid, signal.SIGSTOP)
    try:
        yield server
    finally:
        os.kill(server.process.pid, signal.SIGCONT)
        await server.stop()


async def test_a_frozen_temporal_is_said_within_two_seconds(
    frozen: TemporalDevServer,
    pool: asyncpg.Pool,
    settings: Settings,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The processes end with exit 3, having said what they waited for; and the saying comes
    within two seconds of the wait's start, timed where the tools wait (connecting to Temporal,
    calling the API), so a slow interpreter start on a busy machine does not count, nor the time
    a loaded machine keeps a timer of the same length waiting."""
    own = replace(settings, temporal_address=frozen.address)
    # The API's own client, with the keep-alive its process gives it (api/server.py).
    keep_alive = KeepAliveConfig(
        interval_millis=tool.KEEP_ALIVE_INTERVAL_MS, timeout_millis=tool.KEEP_ALIVE_TIMEOUT_MS
    )
    client = await connect(own, lazy=True, keep_alive_config=keep_alive)
    said: list[tuple[float, str]] = []
    monkeypatch.setattr(tool, "say", lambda text: said.append((time.monotonic(), text)))
    token = {"YUQING_TOKEN": "dev-li.ming"}
    with structlog.testing.capture_logs():
        async with serving(create_app(client, pool, own), access_log=False) as url:
            api = Api(url, "dev-li.ming", as_json=False)
            starts: dict[str, float] = {}

            async def connecting() -> object:
                starts["temporal"] = time.monotonic()
                return await tool.connect_temporal(own)

            def calling() -> object:
                starts["api"] = time.monotonic()
                return api.call("GET", "/incidents/demo-1")

            # How late a timer of the tools' patience fires here, on a loop and on a thread:
            # the time a loaded machine keeps this process waiting, which no tool can help.
            lags: dict[str, float] = {}

            async def loop_lag() -> None:
                began = time.monotonic()
                await asyncio.sleep(tool.PATIENCE_S)
                lags["temporal"] = time.monotonic() - began - tool.PATIENCE_S

            def thread_lag() -> None:
                began = time.monotonic()
                time.sleep(tool.PATIENCE_S)
                lags["api"] = time.monotonic() - began - tool.PATIENCE_S

            ended = await asyncio.gather(
                run([*YUQING, "audit", "demo-1"], {"TEMPORAL_ADDRESS": frozen.address}),
                run([*STARTER, "state", "demo-1"], {"TEMPORAL_ADDRESS": frozen.address}),
                run([*YUQING, "status", "demo-1"], {"YUQING_API_URL": url, **token}),
                connecting(),
                asyncio.to_thread(calling),
                loop_lag(),
                asyncio.to_thread(thread_lag),
                return_exceptions=True,
            )
    audit, state, status, connected, called, *_ = ended
    for waited in (audit, state):
        assert isinstance(waited, Ended)
        assert f"waiting for Temporal at {frozen.address}" in waited.stderr, waited
        one_line(waited, tool.UNREACHABLE, f"Temporal at {frozen.address} cannot be reached")
    assert isinstance(status, Ended)
    assert f"waiting for the Yuqing API at {url}" in status.stderr, status
    one_line(status, tool.UNREACHABLE, f"the Yuqing API at {url} answered 503")
    # The same waits, in this process: each said within two seconds, then given up (exit 3).
    assert isinstance(connected, tool.ToolFailure) and connected.code == tool.UNREACHABLE
    assert isinstance(called, tool.ToolFailure) and called.code == tool.UNREACHABLE
    for wait, what in (
        ("temporal", f"waiting for Temporal at {frozen.address}"),
        ("api", f"waiting for the Yuqing API at {url}"),
    ):
        at = next(at for at, text in said if text.startswith(what))
        assert at - starts[wait] <= 2.0 + max(0.0, lags[wait]), (what, at - starts[wait], lags)
