"""The README's walk-throughs, run as written, in order, against a fresh stack of the suite's
own servers on free ports: a Temporal dev server, a database of its own in the suite's
PostgreSQL, the worker and the HTTP API. How the README marks commands, exit codes and output
is in `tests/readme_runner.py`.

Each command is a real process (`temporal`, `yuqing`, `curl`, `python -m starter`) in one bash
session whose environment is what the README's set-up gives a reader: `.venv/bin` on PATH,
TEMPORAL_ADDRESS, DATABASE_URL and YUQING_API_URL pointing at this stack (as `./dev serve` logs
them). It runs in a directory of its own, so files the README writes land there.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
import structlog.testing

from api import create_app
from api.server import serving
from tests.readme_runner import Outcome, Shell, Step, says, steps
from worker import create_worker
from yuqing import codec, db
from yuqing.audit.sweeper import sweeping
from yuqing.client import connect
from yuqing.settings import PROJECT_ROOT, Settings
from yuqing.stack import EmbeddedPostgres, start_temporal
from yuqing.stack.keys import ensure_dev_keys

README = PROJECT_ROOT / "README.md"
# A command gets this long; a decision waits for the worker, which may be busy.
STEP_TIMEOUT_S = 120.0
# A `# once …` command is run again until it holds, for this long: slack for a loaded
# machine (the test's sweeper runs every 2 s, yet with the full suite beside it the archive
# once took more than 30 s).
EVENTUALLY_S = 60.0
ARCHIVE_SWEEP = timedelta(seconds=2)


@dataclass
class Stack:
    env: dict[str, str]
    cwd: Path


async def fresh_database(postgres: EmbeddedPostgres) -> str:
    name = f"readme_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(postgres.admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    return urlunsplit(urlsplit(postgres.url)._replace(path=f"/{name}"))


def reader_directory() -> Path:
    """Where the reader stands: the project's files the README names, nothing else."""
    here = Path(tempfile.mkdtemp(prefix="yuqing-readme-"))
    for name in (".venv", "demo", "drills", "tests", "config", "policies"):
        (here / name).symlink_to(PROJECT_ROOT / name)
    return here


@pytest.fixture
async def stack(postgres: EmbeddedPostgres) -> AsyncIterator[Stack]:
    temporal = await start_temporal(
        Path(tempfile.mkdtemp(prefix="yuqing-readme-temporal-")),
        port=0,
        headless=True,
        persist=False,
    )
    database_url = await fresh_database(postgres)
    pool = await db.create_pool(database_url)
    cwd = reader_directory()
    try:
        await db.migrate(pool)
        settings = replace(
            Settings.from_env({"DATABASE_URL": database_url}),
            temporal_address=temporal.address,
            temporal_namespace=temporal.namespace,
        )
        # The keys `./dev serve` makes on its first start, where the README finds them: the
        # signing keys, and the payload keys (`yuqing` reads them from the data directory).
        settings = ensure_dev_keys(cwd / ".data", settings)
        payload_keys = cwd / ".data" / "keys" / "payload-keys.toml"
        codec.ensure_key_file(payload_keys)
        settings = replace(settings, payload_keys_file=payload_keys)
        client = await connect(settings)
        # The service's log lines stay out of the test's output.
        with structlog.testing.capture_logs():
            async with serving(create_app(client, pool, settings), access_log=False) as url:
                settings = replace(settings, statement_base_url=f"{url}/statements")
                # The worker process's sweeper archives closed incidents, here every 2 s
                # rather than every minute.
                async with (
                    create_worker(client, pool, settings),
                    sweeping(client, pool, every=ARCHIVE_SWEEP),
                ):
                    env = {
                        "PATH": f"{PROJECT_ROOT / '.venv' / 'bin'}:{os.environ['PATH']}",
                        "HOME": str(cwd),
                        "LANG": "C.UTF-8",
                        "TERM": "dumb",
                        "TEMPORAL_ADDRESS": temporal.address,
                        "DATABASE_URL": database_url,
                        "YUQING_API_URL": url,
                        "YUQING_DATA_DIR": str(cwd / ".data"),
                        "PYTHONDONTWRITEBYTECODE": "1",
                    }
                    yield Stack(env=env, cwd=cwd)
    finally:
        await pool.close()
        await temporal.stop()
        shutil.rmtree(cwd, ignore_errors=True)


def test_the_readme_marks_its_walk_throughs() -> None:
    found = steps(README.read_text(encoding="utf-8"))
    sections = {step.section for step in found}
    assert len(found) > 40, "the README's walk-throughs are `sh` blocks"
    for walk_through in ("A demo incident", "The demo over HTTP", "The same with `yuqing`"):
        assert any(s.startswith(walk_through) for s in sections), walk_through
    assert any(step.exit_code for step in found), "some commands are meant to fail"


def test_the_readme_begins_with_the_two_commands_that_do_all_set_up() -> None:
    """Its first lines: one command runs the service, one the tests, and CI runs the latter;
    both make `.venv` themselves from nothing but Python and pip, and the test command
    installs the system packages the tests need."""
    lines = README.read_text(encoding="utf-8").splitlines()
    assert lines[0].startswith("# "), "the title"
    opened = next(n for n, text in enumerate(lines) if text.startswith("```"))
    closed = next(n for n in range(opened + 1, len(lines)) if lines[n].startswith("```"))
    assert opened <= 3, "the commands come first, before any prose"
    commands = [text.split("#")[0].strip() for text in lines[opened + 1 : closed]]
    assert commands == ["./dev serve", "./dev test"]
    ci = (PROJECT_ROOT / ".ci" / "run").read_text(encoding="utf-8").splitlines()
    assert [text for text in ci if text.strip() and not text.startswith("#")][-1] == (
        "exec ./dev test"
    )
    dev = (PROJECT_ROOT / "dev").read_text(encoding="utf-8")
    assert "-m venv" in dev and "pip install" in dev
    assert ".ci/system-packages" in dev, "the test command installs the tests' system packages"


def failure(step: Step, outcome: Outcome) -> str | None:
    """What is wrong with the outcome of `step`, if anything."""
    if outcome.exit_code != step.exit_code:
        return f"exit code {outcome.exit_code}, the README says {step.exit_code}"
    for expected in step.says:
        if not says(outcome.output, expected):
            return f"its output does not say {expected!r}"
    return None


async def test_readme_walk_throughs_run_as_written(stack: Stack) -> None:
    transcript = os.environ.get("YUQING_README_TRANSCRIPT")  # a file to write every output to
    shown: list[str] = []
    async with Shell(stack.cwd, stack.env) as shell:
        for step in steps(README.read_text(encoding="utf-8")):
            began = time.monotonic()
            give_up = began + (EVENTUALLY_S if step.eventually else 0)
            while True:
                outcome = await shell.run(step.command, STEP_TIMEOUT_S)
                wrong = failure(step, outcome)
                if wrong is None or time.monotonic() > give_up:
                    break
                await asyncio.sleep(0.5)
            took = time.monotonic() - began
            shown.append(
                f"$ {step.command}\n{outcome.output}(exit {outcome.exit_code}, {took:.2f} s)\n"
            )
            if transcript:
                Path(transcript).write_text("\n".join(shown), encoding="utf-8")  # noqa: ASYNC240
            if wrong is not None:
                pytest.fail(
                    f"{step.where()}: {wrong}\n$ {step.command}\n"
                    f"(exit {outcome.exit_code})\n{outcome.output}"
                )
