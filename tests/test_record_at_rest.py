"""The record at rest (SPEC §8), on a real Temporal dev server persisted to a file:

- after a full incident, `temporal.sqlite` and `temporal workflow show` (no codec) hold none of
  the report's personal data in clear, while `yuqing audit`, the codec endpoint and the
  server's own web UI (in a real browser, pointed at that endpoint) show it;
- keys rotate: an incident begun under the old key goes on, and reads, under the new ring;
- after `temporal workflow delete` of the completed incident and its posts, `yuqing audit ID`,
  `--check` and `--replay` give the same answers from the archive in PostgreSQL.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import hashlib
import json
import tempfile
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path

import asyncpg
import httpx
import pytest
from temporalio.api.history.v1 import History
from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode
from typer.testing import CliRunner

from api import create_app
from api.server import serving
from tests.browser import FLAGS, chromium_path
from tests.conftest import installed_binary
from tests.driver import UPWARD_REPORT, IncidentDriver, approval, report
from worker import create_worker
from workflows.incident import IncidentWorkflow
from yuqing import search_attributes, tool
from yuqing.audit.history import decoded, load_runs, trail_head
from yuqing.audit.sweeper import sweeping
from yuqing.cli import app
from yuqing.client import connect
from yuqing.codec import EncryptionCodec, KeyRing, key_tag
from yuqing.settings import Settings
from yuqing.stack import TemporalDevServer, free_port, start_temporal
from yuqing.stack.record import codec_endpoint

# Personal data of the kind a report carries: a caller's mobile number and a netizen's name.
PHONE = "13907710000"
NETIZEN = "网民王某某"


@dataclass
class Done:
    """One full incident, run to its end on the persisted server."""

    server: TemporalDevServer
    sqlite: Path
    client: Client
    driver: IncidentDriver
    incident_id: str
    settings: Settings
    ring: KeyRing
    codec: str  # the API's codec endpoint, which the server's UI is pointed at


def cli_env(done: Done, ring: KeyRing | None = None) -> dict[str, str]:
    return {
        "TEMPORAL_ADDRESS": done.server.address,
        "TEMPORAL_NAMESPACE": done.server.namespace,
        "DATABASE_URL": done.settings.database_url or "",
        "YUQING_PAYLOAD_KEYS": (ring or done.ring).to_env(),
    }


async def temporal_cli(done: Done, *args: str) -> str:
    """The `temporal` CLI as an operator runs it against the server: no codec, no key."""
    process = await asyncio.create_subprocess_exec(
        installed_binary("temporal"),
        *args,
        "--address",
        done.server.address,
        "--namespace",
        done.server.namespace,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode == 0, err.decode()
    return out.decode()


async def yuqing(env: dict[str, str], *args: str) -> tuple[int, str, str]:
    result = await asyncio.to_thread(CliRunner().invoke, app, list(args), env=env)
    return result.exit_code, result.stdout, result.stderr


@pytest.fixture(scope="module")
async def done(pool: asyncpg.Pool, settings: Settings) -> AsyncIterator[Done]:
    data_dir = Path(tempfile.mkdtemp(prefix="yuqing-test-at-rest-"))
    # The stack's arrangement: the server's web UI decodes through the API's codec endpoint.
    api_port = free_port()
    server = await start_temporal(
        data_dir,
        port=0,
        ui_port=0,
        persist=True,
        ui_codec_endpoint=codec_endpoint(api_port),
    )
    try:
        assert server.ui_url is not None
        ring = KeyRing.generate("at-rest-1")
        own = replace(
            settings,
            temporal_address=server.address,
            temporal_namespace=server.namespace,
            codec_origins=(server.ui_url,),
            codec_trust_local_ui=True,
        )
        client = await connect(own, ring=ring)
        task_queue = f"at-rest-{uuid.uuid4()}"
        driver = IncidentDriver(client, pool, task_queue)
        incident = report(
            title=f"来电反映西乡塘某超市销售过期牛奶（来电人手机 {PHONE}）",
            summary=f"市民王女士（{PHONE}）来电称在西乡塘某超市买到过期三天的牛奶。",
        )
        async with (
            create_worker(client, pool, own, task_queue=task_queue),
            serving(create_app(client, pool, own), port=api_port, access_log=False),
        ):
            await driver.start(incident)
            await driver.accepted("submit_report", UPWARD_REPORT)
            await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
            await driver.accepted(
                "netizen_post",
                {
                    "post_id": "p1",
                    "platform": "留言板",
                    "author": NETIZEN,
                    "content": f"我也买到了，电话 {PHONE}，请回复",
                    "received_by": "chen.jing",
                },
            )
            await driver.accepted("submit_draft", {"author_id": "chen.jing", "text": "情况通报"})
            await driver.accepted("unit_head_approval", approval("huang.wei", 1))
            await driver.accepted("publicity_lead_approval", approval("zhou.min", 1))
            await driver.until_published()
            await driver.to_post(
                "p1",
                "initial_response",
                {"responder_id": "chen.jing", "text": "已核查", "needs_formal_handling": False},
            )
            await driver.until_post("p1", lambda p: p.status == "answered")
            await driver.accepted("close_incident", {"closed_by": "li.ming", "reason": "平息"})
            await driver.accepted(
                "submit_review",
                {
                    "author_id": "li.ming",
                    "what_happened": "a",
                    "what_worked": "b",
                    "what_to_change": "c",
                },
            )
            await asyncio.wait_for(driver.result(), 60)
            # Its history (and its post's), decrypted, for the replay test: they ask for no
            # archive (patch record-swept-at-start); the worker's sweeper archives them.
            await driver.save_history("record_swept_at_start_general_with_post")
            assert driver.handle is not None
            async with sweeping(client, pool, every=SWEEP):
                await until_archived(pool, [driver.handle.id, f"{driver.handle.id}-post-p1"])
            yield Done(
                server=server,
                sqlite=data_dir / "temporal.sqlite",
                client=client,
                driver=driver,
                incident_id=incident.incident_id,
                settings=own,
                ring=ring,
                codec=codec_endpoint(api_port),
            )
    finally:
        await server.stop()


# The sweeper's pace in these tests (the worker's default is a minute).
SWEEP = timedelta(milliseconds=200)


async def until_archived(pool: asyncpg.Pool, workflow_ids: list[str], runs: int = 1) -> None:
    """Wait until the archive holds `runs` runs of each workflow."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 60
    while True:
        counts = await pool.fetch(
            "SELECT workflow_id, count(*) AS runs FROM history_archive"
            " WHERE workflow_id = ANY($1::text[]) GROUP BY workflow_id",
            workflow_ids,
        )
        if len(counts) == len(workflow_ids) and all(row["runs"] >= runs for row in counts):
            return
        assert loop.time() < give_up, f"not archived: {workflow_ids} ({[tuple(r) for r in counts]})"
        await asyncio.sleep(0.1)


def stored_bytes(sqlite: Path) -> bytes:
    """The server's database file and its write-ahead log, as a disk thief would read them."""
    parts = [sqlite, sqlite.with_name(sqlite.name + "-wal")]
    return b"".join(p.read_bytes() for p in parts if p.exists())


def base64_strings(value: object) -> list[bytes]:
    """Every base64 string in a JSON document, decoded: payload data is kept base64 there."""
    found: list[bytes] = []
    if isinstance(value, dict):
        for item in value.values():
            found += base64_strings(item)
    elif isinstance(value, list):
        for item in value:
            found += base64_strings(item)
    elif isinstance(value, str) and len(value) >= 8:
        try:
            found.append(base64.b64decode(value, validate=True))
        except ValueError:
            pass
    return found


async def test_temporal_holds_ciphertext_and_the_audit_reads_it(done: Done) -> None:
    assert done.sqlite.exists()
    stored = stored_bytes(done.sqlite)
    assert len(stored) > 100_000  # the incident is in there
    for secret in (PHONE, NETIZEN, "王女士"):
        assert secret.encode() not in stored, f"{secret} is in temporal.sqlite in clear"

    # The temporal CLI, without the codec: what an operator holding a Temporal client sees.
    assert done.driver.handle is not None
    shown = await temporal_cli(
        done, "workflow", "show", "--workflow-id", done.driver.handle.id, "--output", "json"
    )
    history = json.loads(shown)
    blobs = base64_strings(history)
    assert PHONE not in shown and not any(PHONE.encode() in blob for blob in blobs)
    assert not any(NETIZEN.encode() in blob for blob in blobs)
    started = history["events"][0]["workflowExecutionStartedEventAttributes"]["input"]
    assert not started["payloads"][0].get("metadata")  # format 3: no metadata beside it
    data = base64.b64decode(started["payloads"][0]["data"])
    assert data[1:5] == key_tag("at-rest-1")  # the key's tag, in the envelope's header

    # Search attributes are not payloads (Temporal indexes them, in clear): only values from
    # fixed sets go there, never a report's words.
    described = await done.client.get_workflow_handle(done.driver.handle.id).describe()
    attributes = {pair.key.name: pair.value for pair in described.typed_search_attributes}
    ours = {key.name for key in search_attributes.ALL}
    assert set(attributes) & ours == ours
    assert {k: v for k, v in attributes.items() if k in ours} == {
        "IncidentGrade": "general",
        "IncidentStage": "reviewed",
        "IncidentSensitivity": "important",
        "IncidentUnit": "xixiangtang-branch",
        "DeadlineBreached": False,
    }
    assert PHONE not in repr(described.raw_description.workflow_execution_info.search_attributes)

    # The audit, with the key ring, reads it all.
    code, text, _ = await yuqing(cli_env(done), "audit", done.incident_id)
    assert code == 0
    # The stage line reads as its message ("Stage: Reviewed" in English).
    assert PHONE in text and "post p1" in text and "reviewed" in text.lower()

    # So does the codec endpoint, for a person who may read every incident.
    api = create_app(done.client, done.driver.pool, done.settings)
    transport = httpx.ASGITransport(app=api)
    async with httpx.AsyncClient(transport=transport, base_url="http://api") as http:
        body = {"payloads": [started["payloads"][0]]}
        answer = await http.post(
            "/codec/decode", json=body, headers={"Authorization": "Bearer dev-li.ming"}
        )
        assert answer.status_code == 200, answer.text
        plain = base64.b64decode(answer.json()["payloads"][0]["data"]).decode()
        assert PHONE in plain and json.loads(plain)["incident_id"] == done.incident_id
        refused = await http.post(
            "/codec/decode", json=body, headers={"Authorization": "Bearer dev-chen.jing"}
        )
        assert refused.status_code == 403
        assert (await http.post("/codec/decode", json=body)).status_code == 401


async def test_officials_read_the_history_decoded_in_the_temporal_ui(done: Done) -> None:
    """The dev server's own web UI, in a real browser: it asks the codec endpoint, and shows the
    report as it was written, though the server holds only ciphertext."""
    from playwright.async_api import async_playwright

    assert done.driver.handle is not None and done.server.ui_url is not None
    run = (await done.client.get_workflow_handle(done.driver.handle.id).describe()).run_id
    asked: list[str] = []
    async with async_playwright() as playwright:
        browser = await playwright.chromium.launch(executable_path=chromium_path(), args=FLAGS)
        try:
            page = await browser.new_page()
            page.on("request", lambda r: asked.append(r.url) if "/codec/" in r.url else None)
            await page.goto(
                f"{done.server.ui_url}/namespaces/{done.server.namespace}/workflows/"
                f"{done.driver.handle.id}/{run}/history"
            )
            # The input of the first event: the report, with the caller's number in its title.
            await page.get_by_text(PHONE).first.wait_for(timeout=30_000)
        finally:
            await browser.close()
    assert asked and all(url.startswith(done.codec) for url in asked)


async def test_the_archive_is_the_history_as_temporal_held_it(done: Done) -> None:
    rows = await done.driver.pool.fetch(
        "SELECT * FROM history_archive WHERE incident_id = $1 ORDER BY workflow_id",
        done.incident_id,
    )
    assert [r["workflow_type"] for r in rows] == ["IncidentWorkflow", "NetizenPostWorkflow"]
    assert all(r["status"] == "completed" and r["trail_head"] for r in rows)
    assert all(r["format"] == "protobuf" for r in rows)
    raw = gzip.decompress(rows[0]["content"])
    assert hashlib.sha256(raw).hexdigest() == rows[0]["sha256"]
    # Still ciphertext: the archive is no easier to read than Temporal.
    assert PHONE.encode() not in raw
    kept = await done.client.get_workflow_handle(rows[0]["workflow_id"]).fetch_history()
    assert History.FromString(raw) == History(events=kept.events)
    # The trail head it was anchored with is the one the history recorded.
    plain = await decoded(kept, done.client.data_converter)
    assert rows[0]["trail_head"] == trail_head(plain)
    chain = await done.driver.pool.fetchrow(
        "SELECT * FROM audit_log WHERE id = $1", rows[0]["chain_row"]
    )
    assert chain is not None and chain["kind"] == "history_archived"
    assert f"sha256 {rows[0]['sha256']}" in chain["detail"]


async def test_after_temporal_deletes_it_the_audit_reads_the_archive(done: Done) -> None:
    env = cli_env(done)
    incident = done.incident_id
    before = [
        await yuqing(env, "audit", incident, *flags) for flags in ((), ("--check",), ("--replay",))
    ]
    # What the archive must give is the same answers as Temporal did (compared below). Whether
    # today's code replays the incident is test_audit_trail's: on main it fails now and then
    # (patch console-list-memo after a workflow-task heartbeat, REQUESTS.md), here as there.
    assert [code for code, _, _ in before[:2]] == [0, 0], before
    assert ": matches" in before[1][2]
    assert f"replay of {done.driver.handle.id}-post-p1: the same decisions" in before[2][2]  # type: ignore[union-attr]

    assert done.driver.handle is not None
    for workflow_id in (done.driver.handle.id, f"{done.driver.handle.id}-post-p1"):
        await temporal_cli(done, "workflow", "delete", "--workflow-id", workflow_id, "--yes")
        await until_gone(done.client, workflow_id)

    after = [
        await yuqing(env, "audit", incident, *flags) for flags in ((), ("--check",), ("--replay",))
    ]
    for (code, text, notes), (code_then, text_then, notes_then) in zip(after, before, strict=True):
        assert code == code_then
        assert text == text_then  # the same timeline, line for line
        assert "read from the archive" in notes
        # The same verdicts, once the notes on where the history came from are set aside.
        assert [n for n in notes.splitlines() if "read from the archive" not in n] == [
            n for n in notes_then.splitlines()
        ]
    # Nothing to read anywhere is a clear error, not a crash.
    code, _, notes = await yuqing(env, "audit", "never-reported")
    assert code == tool.REFUSED and "nor in the archive in PostgreSQL" in notes


async def test_every_run_of_a_continued_then_terminated_incident_is_swept_and_outlives_temporal(
    done: Done, pool: asyncpg.Pool
) -> None:
    """An incident that continued as new (a small bound) and was then terminated: the sweeper
    archives each of its runs, and once Temporal has deleted every one the audit reads them all
    from the archive, with the same answers."""
    task_queue = f"swept-{uuid.uuid4()}"
    driver = IncidentDriver(done.client, pool, task_queue)
    incident = report()
    own = replace(done.settings, continue_after_decisions=3)
    async with create_worker(done.client, pool, own, task_queue=task_queue):
        await driver.start(incident)
        await driver.accepted("submit_report", UPWARD_REPORT)
        for number in range(8):
            assert (await driver.send("approve_everything", {"number": number})).refused
        await driver.settle()
        assert driver.handle is not None
        await driver.handle.terminate("an operator ended it")
    runs = await load_runs(done.client, driver.handle.id)
    assert len(runs) >= 2
    async with sweeping(done.client, pool, every=SWEEP):
        await until_archived(pool, [driver.handle.id], runs=len(runs))
    archived = await pool.fetch(
        "SELECT run_id, status FROM history_archive WHERE workflow_id = $1 ORDER BY started_at",
        driver.handle.id,
    )
    assert [r["status"] for r in archived] == ["continued_as_new"] * (len(runs) - 1) + [
        "terminated"
    ]

    env = cli_env(done)
    before = await yuqing(env, "audit", incident.incident_id, "--check", "--replay")
    assert ": matches" in before[2], before  # replayed or not: the same answer below
    run_ids = [row["run_id"] for row in archived]
    # First the earlier runs go (they closed first, so their retention ends first), then the
    # last: the same answers each time, read from wherever the runs are.
    for gone, source in ((run_ids[:-1], "Temporal and the archive"), (run_ids[-1:], "the archive")):
        for run_id in gone:
            await temporal_cli(
                done,
                "workflow",
                "delete",
                "--workflow-id",
                driver.handle.id,
                "--run-id",
                run_id,
                "--yes",
            )
            await until_gone(done.client, driver.handle.id, run_id)
        code, text, notes = await yuqing(env, "audit", incident.incident_id, "--check", "--replay")
        assert (code, text) == before[:2]
        assert f"read from {source} ({len(runs)} run(s))" in notes
        assert [n for n in notes.splitlines() if "read from " not in n] == before[2].splitlines()


async def until_gone(client: Client, workflow_id: str, run_id: str | None = None) -> None:
    """Deletion is asynchronous on the server: wait until it answers NOT_FOUND."""
    loop = asyncio.get_running_loop()
    give_up = loop.time() + 60
    while loop.time() < give_up:
        try:
            await client.get_workflow_handle(workflow_id, run_id=run_id).describe()
        except RPCError as err:
            if err.status == RPCStatusCode.NOT_FOUND:
                return
            raise
        await asyncio.sleep(0.2)
    raise AssertionError(f"{workflow_id} was not deleted")


async def test_keys_rotate_and_what_the_old_key_sealed_still_reads(
    done: Done, pool: asyncpg.Pool
) -> None:
    old = done.ring
    task_queue = f"rotation-{uuid.uuid4()}"
    incident = report()
    driver = IncidentDriver(done.client, pool, task_queue)
    async with create_worker(done.client, pool, done.settings, task_queue=task_queue):
        await driver.start(incident)
        await driver.accepted("submit_report", UPWARD_REPORT)
        await driver.settle()

    # The key is rotated; the worker and every client restart with the new ring.
    new = old.rotated("at-rest-2")
    client = await connect(done.settings, ring=new)
    driver.client = client
    assert driver.handle is not None
    driver.handle = client.get_workflow_handle_for(IncidentWorkflow.run, driver.handle.id)
    async with create_worker(client, pool, done.settings, task_queue=task_queue):
        await driver.accepted("submit_assessment", {"assessor_id": "li.ming"})
        await driver.settle()
        history = await client.get_workflow_handle(driver.handle.id).fetch_history()
        codec = EncryptionCodec(new)
        used = {
            codec.key_of(payload)
            for event in history.events
            if event.HasField("workflow_execution_signaled_event_attributes")
            or event.HasField("activity_task_scheduled_event_attributes")
            for payload in (
                event.workflow_execution_signaled_event_attributes.input.payloads
                or event.activity_task_scheduled_event_attributes.input.payloads
            )
        }
        assert used == {"at-rest-1", "at-rest-2"}

        # Old and new together read under the new ring; the old incident too.
        for incident_id in (incident.incident_id, done.incident_id):
            code, _, notes = await yuqing(cli_env(done, new), "audit", incident_id)
            assert code == 0, notes
        assert PHONE in (await yuqing(cli_env(done, new), "audit", done.incident_id))[1]
        # A ring without the new key says which key it lacks, by its tag (`payload-key list`).
        code, _, notes = await yuqing(cli_env(done, old), "audit", incident.incident_id)
        assert code == 2 and f"the key whose tag is {key_tag('at-rest-2').hex()}" in notes
        await driver.terminate_if_running()
