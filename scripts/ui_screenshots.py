"""Screenshots of the Temporal web UI showing Yuqing incidents, for docs/.

Takes two PNGs with headless Chromium:

  docs/ui-incidents-major.png   the workflow list filtered by the visibility query
                                IncidentGrade="major", with the incident search attributes
                                (grade, stage, sensitivity, unit, deadline breached) as columns;
  docs/ui-incident-history.png  one major incident's event history in the compact view, which
                                groups each activity and timer with its summary.

By default it starts its own stack (`python -m yuqing.stack`: PostgreSQL, a Temporal dev
server with its web UI, the worker and the HTTP API) in a temporary data directory on free
ports, creates three demo incidents through the HTTP API (one general; one upgraded to major by
25 reposts, its draft rejected by the section head, with a netizen post; one major from the
start, published, closed and reviewed), waits until the UI lists them, takes the screenshots and
stops everything it started. With --api-url and --ui-url it uses a running stack instead (one
that accepts the development tokens `dev-<person>`); the incidents it creates there are named
with --prefix so they don't collide with existing ones.

Chromium is driven over the DevTools protocol on a pipe (--remote-debugging-pipe), so the script
needs nothing beyond the project's own dependencies and the chromium binary. The UI settings
(compact history view, ascending order, search-attribute columns, collapsed navigation) are put
in the page's localStorage before the UI's scripts run; the UI then long-polls the history, so
the script waits for the rendered rows instead of for the network to go quiet.

Needs: chromium (Debian: apt-get install chromium) and CJK fonts so Chinese text renders
(Debian: apt-get install fonts-noto-cjk); without them Chinese shows as boxes, and the script
warns when `fc-list :lang=zh` finds no font.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import copy
import fcntl
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any
from urllib.parse import quote

import httpx

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEMO_DIR = PROJECT_ROOT / "demo"
DEFAULT_OUT_DIR = PROJECT_ROOT / "docs"
LIST_PNG = "ui-incidents-major.png"
HISTORY_PNG = "ui-incident-history.png"
DEFAULT_QUERY = 'IncidentGrade="major"'
MAX_HEIGHT = 8000  # px; a history page never grows beyond this

CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-quic",
    "--no-first-run",
    "--disable-sync",
    "--hide-scrollbars",
    "--mute-audio",
]

# The workflow list's columns (the UI keeps them per namespace in localStorage).
LIST_COLUMNS = [
    "Status",
    "Workflow ID",
    "IncidentGrade",
    "IncidentStage",
    "IncidentSensitivity",
    "IncidentUnit",
    "DeadlineBreached",
    "Start",
]


class ScreenshotError(RuntimeError):
    """Something the screenshots depend on failed; the message says what and where to look."""


class ProtocolError(ScreenshotError):
    """Chromium answered a command with an error (e.g. a page script during navigation)."""


def say(message: str) -> None:
    sys.stderr.write(f"ui_screenshots: {message}\n")
    sys.stderr.flush()


def wait_for(what: str, check: Callable[[], Any], timeout: float, interval: float = 0.5) -> Any:
    """Call `check` until it returns something truthy; raise naming `what` after `timeout` s."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while True:
        try:
            result = check()
        except (httpx.HTTPError, ProtocolError, OSError) as err:
            last_error = err
            result = None
        if result:
            return result
        if time.monotonic() >= deadline:
            detail = f" (last error: {last_error})" if last_error else ""
            raise ScreenshotError(f"timed out after {timeout:.0f} s waiting for {what}{detail}")
        time.sleep(interval)


# --------------------------------------------------------------------------------------------
# Fonts


def check_cjk_fonts() -> None:
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        say("warning: fc-list not found, cannot check for CJK fonts (Debian: fontconfig)")
        return
    found = subprocess.run(
        [fc_list, ":lang=zh", "family"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if not found:
        say(
            "warning: no font with Chinese glyphs (fc-list :lang=zh is empty); Chinese text "
            "will render as boxes. Install one: apt-get install -y fonts-noto-cjk"
        )


# --------------------------------------------------------------------------------------------
# The stack


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Endpoints:
    api_url: str
    ui_url: str


class OwnStack:
    """`python -m yuqing.stack` in a temporary data directory on free ports."""

    def __init__(self, data_dir: Path, timeout: float) -> None:
        self.data_dir = data_dir
        self.timeout = timeout
        self.log_path = data_dir / "stack.log"
        self.grpc_port, self.ui_port, self.api_port = free_port(), free_port(), free_port()
        self.endpoints = Endpoints(
            api_url=f"http://127.0.0.1:{self.api_port}", ui_url=f"http://127.0.0.1:{self.ui_port}"
        )
        self.proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    def start(self) -> None:
        # Only this stack's own servers: no settings of another stack, no real channels.
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("YUQING_", "TEMPORAL_")) and key != "DATABASE_URL"
        }
        command = [
            sys.executable,
            "-m",
            "yuqing.stack",
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.grpc_port),
            "--ui-port",
            str(self.ui_port),
            "--api-port",
            str(self.api_port),
        ]
        say(
            f"starting the stack in {self.data_dir} (gRPC {self.grpc_port}, "
            f"UI {self.ui_port}, API {self.api_port}); log: {self.log_path}"
        )
        self._log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # our Ctrl-C reaches it only through stop()
        )
        wait_for("the stack to start its worker", self._worker_started, self.timeout)

    def _worker_started(self) -> bool:
        assert self.proc is not None
        if self.proc.poll() is not None:
            raise ScreenshotError(f"the stack exited with status {self.proc.returncode}")
        return b'"worker started"' in self.log_path.read_bytes()

    def log_tail(self, lines: int = 25) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(line[:300] for line in text.splitlines()[-lines:])

    def stop(self) -> None:
        proc = self.proc
        if proc is None:
            return
        if proc.poll() is None:
            say("stopping the stack")
            # SIGINT is the stack's Ctrl-C: it stops the API and the worker, then Temporal,
            # then PostgreSQL.
            for sig, grace in ((signal.SIGINT, 45.0), (signal.SIGTERM, 10.0)):
                with contextlib.suppress(ProcessLookupError):
                    proc.send_signal(sig)
                try:
                    proc.wait(grace)
                    break
                except subprocess.TimeoutExpired:
                    say(f"the stack did not stop within {grace:.0f} s after {sig.name}")
            else:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                proc.wait(10)
        if self._log is not None:
            self._log.close()
        self.proc = None


# --------------------------------------------------------------------------------------------
# Demo incidents, through the HTTP API


def load_demo(name: str) -> dict[str, Any]:
    path = DEMO_DIR / name
    try:
        data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as err:
        raise ScreenshotError(f"cannot read demo file {path}: {err}") from err
    return data


class Api:
    def __init__(self, base_url: str, timeout: float) -> None:
        self.base_url = base_url.rstrip("/")
        self.http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def call(
        self,
        person: str,
        path: str,
        body: dict[str, Any],
        expect: tuple[int, ...] = (200,),
    ) -> dict[str, Any]:
        try:
            response = self.http.post(
                path, json=body, headers={"Authorization": f"Bearer dev-{person}"}
            )
        except httpx.HTTPError as err:
            raise ScreenshotError(f"POST {self.base_url}{path} failed: {err}") from err
        if response.status_code not in expect:
            raise ScreenshotError(
                f"POST {self.base_url}{path} as {person} answered {response.status_code} "
                f"(expected {'/'.join(map(str, expect))}): {response.text[:500]}"
            )
        data: dict[str, Any] = response.json()
        return data

    def healthy(self) -> bool:
        return self.http.get("/health").status_code == 200


@dataclass
class Incident:
    incident_id: str
    grade: str
    closed: bool = False
    workflow_id: str = ""
    run_id: str = ""


def report_body(
    incident_id: str, title: str, summary: str, url: str, excerpt: str
) -> dict[str, Any]:
    body = load_demo("01-incident.json")
    body["incident_id"] = incident_id
    body["title"] = title
    body["summary"] = summary
    body["source_url"] = url
    evidence = copy.deepcopy(body["evidence"][0])
    evidence["source_url"] = url
    evidence["content_text"] = excerpt
    body["evidence"] = [evidence]
    return body


def upward_report(place: str, course: str, outcome: str) -> dict[str, Any]:
    body = load_demo("02-report.json")
    body["facts"].update(place=place, course=course, outcome=outcome)
    return body


def approval(decision: str, version: int, comment: str) -> dict[str, Any]:
    return {"decision": decision, "draft_version": version, "comment": comment}


def create_demo_incidents(api: Api, prefix: str) -> list[Incident]:
    """Three incidents with some history: one general, two major (one of them finished)."""
    milk, market, pharmacy = f"{prefix}-1", f"{prefix}-2", f"{prefix}-3"

    # 1. General: reported, assessed, approved by the wrong unit head (refused, 403), then by
    #    the right one and the publicity lead; the statement is published and it is monitored.
    say(f"incident {milk}: general, published")
    body = load_demo("01-incident.json")
    body["incident_id"] = milk
    if prefix != "demo":  # a running stack may know demo/01's story already
        body["source_url"] = body["evidence"][0]["source_url"] = (
            f"https://weibo.example/status/{prefix}-milk"
        )
    created = api.call("chen.jing", "/incidents", body, expect=(201,))
    if not created.get("created", True):
        raise ScreenshotError(f"{milk} joined an existing incident; choose another --prefix")
    api.call("li.ming", f"/incidents/{milk}/report", load_demo("02-report.json"))
    api.call("li.ming", f"/incidents/{milk}/assessment", load_demo("03-assessment.json"))
    api.call("chen.jing", f"/incidents/{milk}/drafts", load_demo("04-draft.json"))
    api.call(
        "liu.yang",
        f"/incidents/{milk}/approvals/unit_head",
        load_demo("wrong-unit-head-approval.json"),
        expect=(403,),
    )
    api.call(
        "huang.wei",
        f"/incidents/{milk}/approvals/unit_head",
        load_demo("05-unit-head-approval.json"),
    )
    api.call(
        "zhou.min",
        f"/incidents/{milk}/approvals/publicity_lead",
        load_demo("06-publicity-lead-approval.json"),
    )

    # 2. Upgraded to major by 25 reposts after a general assessment; the section head rejects
    #    the first draft; a netizen post arrives and gets its initial response.
    say(f"incident {market}: upgraded to major, draft rejected, a netizen post")
    api.call(
        "chen.jing",
        "/incidents",
        report_body(
            market,
            "网传西乡塘区某农贸市场商户缺斤短两",
            "A Weibo video shows a stall at a Xixiangtang farmers' market selling short weight.",
            f"https://weibo.example/status/{prefix}-market",
            "【视频】西乡塘某农贸市场称重一斤的猪肉只有八两，摊主拒不退款。#南宁#",
        ),
        expect=(201,),
    )
    api.call(
        "li.ming",
        f"/incidents/{market}/report",
        upward_report(
            "西乡塘区某农贸市场",
            "网民发布视频称市场摊位缺斤短两，转发6次",
            "分局执法人员已到场，对涉事电子秤先行登记保存",
        ),
    )
    api.call("li.ming", f"/incidents/{market}/assessment", load_demo("03-assessment.json"))
    api.call("li.ming", f"/incidents/{market}/metrics", load_demo("metrics-reposts-25.json"))
    draft = {"text": "关于网民反映西乡塘区某农贸市场缺斤短两的情况通报：我局已对涉事摊位立案调查。"}
    api.call("chen.jing", f"/incidents/{market}/drafts", draft)
    api.call(
        "huang.wei", f"/incidents/{market}/approvals/unit_head", approval("approve", 1, "同意")
    )
    api.call(
        "wu.hua",
        f"/incidents/{market}/approvals/section_head",
        approval("reject", 1, "请写明计量检定结果和处罚依据"),
    )
    draft = {
        "text": "关于网民反映西乡塘区某农贸市场缺斤短两的情况通报：经计量检定，涉事摊位电子秤"
        "不准确，我局已依据《计量法》立案查处，并对市场全部电子秤开展检定。"
    }
    api.call("chen.jing", f"/incidents/{market}/drafts", draft)
    post = load_demo("post-p1.json")
    post["content"] = "那个缺斤短两的摊位查处了吗？市场其他的秤准不准？"
    post["url"] = f"https://liuyan.example/thread/{prefix}-market"
    api.call("chen.jing", f"/incidents/{market}/posts", post)
    api.call(
        "chen.jing",
        f"/incidents/{market}/posts/{post['post_id']}/initial-response",
        load_demo("post-initial-response.json"),
    )

    # 3. Major from the assessment (mainstream media), through the whole major chain,
    #    published, closed and reviewed: a completed workflow.
    say(f"incident {pharmacy}: major, published, closed and reviewed")
    api.call(
        "chen.jing",
        "/incidents",
        report_body(
            pharmacy,
            "媒体报道西乡塘区某药店无处方销售处方药",
            "A city newspaper reports a Xixiangtang pharmacy selling prescription drugs freely.",
            f"https://news.example/{prefix}-pharmacy",
            "记者暗访发现，西乡塘区某药店无需处方即可购买抗生素。",
        ),
        expect=(201,),
    )
    api.call(
        "li.ming",
        f"/incidents/{pharmacy}/report",
        upward_report(
            "西乡塘区某药店",
            "市级媒体报道记者暗访，药店无处方销售抗生素",
            "分局已对药店现场检查，责令停止销售处方药",
        ),
    )
    assessment = load_demo("03-assessment.json")
    assessment.update(mainstream_media_exposure=True, comment="市级媒体已报道")
    api.call("li.ming", f"/incidents/{pharmacy}/assessment", assessment)
    draft = {
        "text": "关于媒体报道西乡塘区某药店违规销售处方药的情况通报：我局已责令整改并立案调查。"
    }
    api.call("chen.jing", f"/incidents/{pharmacy}/drafts", draft)
    api.call(
        "huang.wei", f"/incidents/{pharmacy}/approvals/unit_head", approval("approve", 1, "同意")
    )
    api.call(
        "wu.hua",
        f"/incidents/{pharmacy}/approvals/section_head",
        load_demo("section-head-review.json"),
    )
    api.call(
        "tang.guo",
        f"/incidents/{pharmacy}/approvals/leadership_group",
        load_demo("leadership-group-approval.json"),
    )
    close = load_demo("07-close.json")
    close.pop("closed_by", None)  # the API fills in the token's person: the leading group
    api.call("tang.guo", f"/incidents/{pharmacy}/close", close)
    api.call("li.ming", f"/incidents/{pharmacy}/review", load_demo("08-review.json"))

    return [
        Incident(milk, "general"),
        Incident(market, "major"),
        Incident(pharmacy, "major", closed=True),
    ]


# --------------------------------------------------------------------------------------------
# The UI's own HTTP API: is everything visible yet?


class UiApi:
    def __init__(self, ui_url: str, namespace: str, timeout: float) -> None:
        self.ui_url = ui_url.rstrip("/")
        self.namespace = namespace
        self.http = httpx.Client(base_url=self.ui_url, timeout=timeout)

    def close(self) -> None:
        self.http.close()

    def serving(self) -> bool:
        return self.http.get("/api/v1/settings").status_code == 200

    def list(self, query: str) -> list[dict[str, Any]]:
        response = self.http.get(
            f"/api/v1/namespaces/{quote(self.namespace)}/workflows", params={"query": query}
        )
        response.raise_for_status()
        executions: list[dict[str, Any]] = response.json().get("executions") or []
        return executions


def search_attribute(execution: dict[str, Any], name: str) -> Any:
    payload = execution.get("searchAttributes", {}).get("indexedFields", {}).get(name)
    if not payload:
        return None
    return json.loads(base64.b64decode(payload["data"]))


def wait_until_visible(ui: UiApi, incidents: list[Incident], timeout: float) -> None:
    """Wait until the UI lists each incident with its grade (and closed ones as completed)."""
    missing: list[str] = []

    def all_visible() -> bool:
        ids = " OR ".join(f'WorkflowId="incident-{i.incident_id}"' for i in incidents)
        seen = {e["execution"]["workflowId"]: e for e in ui.list(ids)}
        missing.clear()
        for incident in incidents:
            workflow_id = f"incident-{incident.incident_id}"
            execution = seen.get(workflow_id)
            if execution is None:
                missing.append(f"{workflow_id} is not listed")
                continue
            grade = search_attribute(execution, "IncidentGrade")
            status = str(execution.get("status", "")).removeprefix("WORKFLOW_EXECUTION_STATUS_")
            if grade != incident.grade:
                missing.append(f"{workflow_id} has IncidentGrade {grade!r}, not {incident.grade!r}")
            elif incident.closed and status != "COMPLETED":
                missing.append(f"{workflow_id} is {status}, not yet COMPLETED")
            incident.workflow_id = workflow_id
            incident.run_id = execution["execution"]["runId"]
        return not missing

    say("waiting until the UI lists the incidents with their grades")
    try:
        wait_for("the UI's visibility to list the demo incidents", all_visible, timeout)
    except ScreenshotError as err:
        raise ScreenshotError(f"{err}: {'; '.join(missing)}") from err


# --------------------------------------------------------------------------------------------
# Chromium over the DevTools protocol, on a pipe (no websocket client needed)


class Chromium:
    """Headless Chromium with --remote-debugging-pipe: it reads commands on fd 3, answers on 4.

    Messages are JSON, each ended by a NUL byte. One page target, attached in flat mode.
    """

    def __init__(self, binary: str, timeout: float) -> None:
        self.timeout = timeout
        self.profile = Path(tempfile.mkdtemp(prefix="ui-screenshots-chromium-"))
        self.log_path = self.profile / "chromium.log"
        to_child_r, self._to_child = os.pipe()
        self._from_child, from_child_w = os.pipe()
        # Move the child's ends above 2..4 so the dup2 onto 3 and 4 cannot clobber them.
        child_r = fcntl.fcntl(to_child_r, fcntl.F_DUPFD_CLOEXEC, 10)
        child_w = fcntl.fcntl(from_child_w, fcntl.F_DUPFD_CLOEXEC, 10)
        os.close(to_child_r)
        os.close(from_child_w)

        def pipes_on_3_and_4() -> None:  # runs in the child, before exec
            os.dup2(child_r, 3)  # dup2 leaves 3 and 4 inheritable; the rest is close-on-exec
            os.dup2(child_w, 4)

        self._log = self.log_path.open("wb")
        try:
            self.proc = subprocess.Popen(
                [
                    binary,
                    *CHROMIUM_FLAGS,
                    f"--user-data-dir={self.profile}",
                    "--remote-debugging-pipe",
                    "about:blank",
                ],
                stdin=subprocess.DEVNULL,
                stdout=self._log,
                stderr=subprocess.STDOUT,
                close_fds=False,
                preexec_fn=pipes_on_3_and_4,
                start_new_session=True,
            )
        except OSError as err:
            raise ScreenshotError(f"cannot start {binary}: {err}") from err
        finally:
            os.close(child_r)
            os.close(child_w)
        self._buffer = b""
        self._next_id = 0
        self.session_id: str | None = None
        version = self.send("Browser.getVersion", browser=True)
        say(f"using {version.get('product', 'chromium')}")
        targets = self.send("Target.getTargets", browser=True)["targetInfos"]
        page = next((t for t in targets if t["type"] == "page"), None)
        if page is None:
            raise ScreenshotError("chromium opened no page")
        attached = self.send(
            "Target.attachToTarget", {"targetId": page["targetId"], "flatten": True}, browser=True
        )
        self.session_id = attached["sessionId"]

    def send(
        self,
        method: str,
        params: dict[str, Any] | None = None,
        *,
        browser: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        self._next_id += 1
        message: dict[str, Any] = {"id": self._next_id, "method": method, "params": params or {}}
        if not browser and self.session_id:
            message["sessionId"] = self.session_id
        data = json.dumps(message).encode() + b"\0"
        try:
            while data:
                data = data[os.write(self._to_child, data) :]
        except BrokenPipeError as err:
            raise ScreenshotError(self._died(f"chromium went away ({method})")) from err
        deadline = time.monotonic() + (timeout or self.timeout)
        while True:
            reply = self._receive(deadline, method)
            if reply.get("id") == self._next_id:
                if "error" in reply:
                    raise ProtocolError(f"chromium refused {method}: {reply['error']}")
                result: dict[str, Any] = reply.get("result", {})
                return result
            # otherwise an event (we enable no domain that we need events from): dropped

    def _receive(self, deadline: float, method: str) -> dict[str, Any]:
        while b"\0" not in self._buffer:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ScreenshotError(f"chromium did not answer {method} in time")
            ready, _, _ = select.select([self._from_child], [], [], left)
            if ready:
                chunk = os.read(self._from_child, 1 << 20)
                if not chunk:
                    raise ScreenshotError(self._died(f"chromium closed its pipe ({method})"))
                self._buffer += chunk
        message, _, self._buffer = self._buffer.partition(b"\0")
        reply: dict[str, Any] = json.loads(message)
        return reply

    def _died(self, what: str) -> str:
        tail = self.log_path.read_text(errors="replace").splitlines()[-15:]
        return f"{what}; chromium's log ({self.log_path}):\n" + "\n".join(tail)

    def evaluate(self, expression: str) -> Any:
        result = self.send(
            "Runtime.evaluate",
            {"expression": expression, "returnByValue": True, "awaitPromise": True},
        )
        if "exceptionDetails" in result:
            raise ProtocolError(f"script failed in the page: {result['exceptionDetails']}")
        return result.get("result", {}).get("value")

    def close(self) -> None:
        with contextlib.suppress(ScreenshotError, OSError):
            self.send("Browser.close", browser=True, timeout=5)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait(5)
        for fd in (self._to_child, self._from_child):
            with contextlib.suppress(OSError):
                os.close(fd)
        self._log.close()
        shutil.rmtree(self.profile, ignore_errors=True)


@dataclass
class Shot:
    name: str
    url: str
    width: int
    height: int
    ready: str  # a JS expression, true once the page shows its content
    expect: str  # a JS expression, true if the UI took our settings (else: a warning)
    expect_what: str
    clip_to: str | None = None  # a CSS selector: cut the image below its card


# The bottom of the element's highest ancestor that doesn't reach the viewport's bottom edge
# (the card with the table and its pagination), so the PNG ends where the content does.
CLIP_JS = """
(() => {
  let el = document.querySelector(%s);
  if (!el) return null;
  let bottom = el.getBoundingClientRect().bottom;
  for (let p = el.parentElement; p && p !== document.body; p = p.parentElement) {
    const b = p.getBoundingClientRect().bottom;
    if (b >= window.innerHeight - 2) break;
    bottom = Math.max(bottom, b);
  }
  return Math.ceil(bottom);
})()
"""

# Same text (the rows and their details) on two consecutive polls: rendering has settled.
TEXT_JS = "document.body ? document.body.innerText : ''"


def capture(browser: Chromium, shot: Shot, out: Path, settle: float, timeout: float) -> None:
    say(f"loading {shot.url}")
    browser.send(
        "Emulation.setDeviceMetricsOverride",
        {"width": shot.width, "height": shot.height, "deviceScaleFactor": 1, "mobile": False},
    )
    browser.send("Page.navigate", {"url": shot.url})
    try:
        wait_for(f"{shot.name} to render", lambda: browser.evaluate(shot.ready), timeout)
    except ScreenshotError as err:
        text = str(browser.evaluate(TEXT_JS))[:600]
        raise ScreenshotError(f"{err}; the page at {shot.url} shows:\n{text}") from err
    previous = None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:  # until nothing changes for `settle` seconds
        time.sleep(settle)
        current = browser.evaluate(TEXT_JS)
        if current == previous:
            break
        previous = current
    height = shot.height
    if shot.clip_to:  # a long history: grow the page until the whole table fits
        table_bottom = browser.evaluate(
            f"(document.querySelector({json.dumps(shot.clip_to)})"
            "?.getBoundingClientRect().bottom) || 0"
        )
        if table_bottom > height - 100 and height < MAX_HEIGHT:
            height = min(MAX_HEIGHT, int(table_bottom) + 200)
            say(f"the history is long: taking it {height} px high")
            browser.send(
                "Emulation.setDeviceMetricsOverride",
                {"width": shot.width, "height": height, "deviceScaleFactor": 1, "mobile": False},
            )
            time.sleep(settle)
    if not browser.evaluate(shot.expect):
        say(f"warning: {shot.name} does not show {shot.expect_what}; taking it as it is")
    params: dict[str, Any] = {"format": "png"}
    if shot.clip_to:
        bottom = browser.evaluate(CLIP_JS % json.dumps(shot.clip_to))
        if bottom:
            height = min(height, int(bottom) + 24)
            params["clip"] = {"x": 0, "y": 0, "width": shot.width, "height": height, "scale": 1}
    image = base64.b64decode(browser.send("Page.captureScreenshot", params)["data"])
    out.write_bytes(image)
    say(f"wrote {out} ({len(image) // 1024} KiB)")


def take_screenshots(
    args: argparse.Namespace, ui_url: str, incidents: list[Incident], query: str
) -> list[Path]:
    namespace = quote(args.namespace)
    history_of = next(i for i in incidents if i.grade == "major" and not i.closed)
    columns = {args.namespace: [{"label": label, "pinned": False} for label in LIST_COLUMNS]}
    # Before the UI's own scripts run on each page: its persisted settings.
    settings = {
        "namespace-workflow-table-columns": columns,
        "eventView": "compact",
        "eventFilterSort": "ascending",
        "navOpen": False,
    }
    setup = "".join(
        f"localStorage.setItem({json.dumps(key)}, {json.dumps(json.dumps(value))});"
        for key, value in settings.items()
    )
    # The list is ready once it shows the major incidents (or, for another query, any one).
    ids = [i.workflow_id for i in incidents if i.grade == "major"]
    if query != DEFAULT_QUERY:
        ids = []
    shots = [
        Shot(
            name="the workflow list",
            url=f"{ui_url}/namespaces/{namespace}/workflows?query={quote(query)}",
            width=args.width,
            height=args.list_height,
            ready=(
                f"({TEXT_JS}).includes('incident-')"
                f" && {json.dumps(ids)}.every(id => ({TEXT_JS}).includes(id))"
            ),
            expect=f"({TEXT_JS}).includes('IncidentStage')",
            expect_what="the search-attribute columns",
        ),
        Shot(
            name="the event history",
            url=(
                f"{ui_url}/namespaces/{namespace}/workflows/{quote(history_of.workflow_id)}/"
                f"{quote(history_of.run_id)}/history?sort=ascending"
            ),
            width=args.width,
            height=args.history_height,
            # the netizen post's child workflow is among the last events
            ready=f"({TEXT_JS}).includes('NetizenPostWorkflow')",
            expect=(
                "document.querySelectorAll('[data-testid=event-summary-row]').length >= 10"
                f" && ({TEXT_JS}).includes('Summary')"
            ),
            expect_what="the compact view with the activity and timer summaries",
            clip_to="[data-testid=event-summary-table]",
        ),
    ]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    browser = Chromium(args.chromium, timeout=args.timeout)
    try:
        browser.send("Page.enable")
        browser.send("Page.addScriptToEvaluateOnNewDocument", {"source": setup})
        browser.send("Emulation.setTimezoneOverride", {"timezoneId": args.timezone})
        browser.send(
            "Emulation.setEmulatedMedia",
            {"features": [{"name": "prefers-color-scheme", "value": "light"}]},
        )
        for shot, name in zip(shots, (LIST_PNG, HISTORY_PNG), strict=True):
            out = args.out_dir / name
            capture(browser, shot, out, settle=args.settle, timeout=args.timeout)
            written.append(out)
    finally:
        browser.close()
    return written


# --------------------------------------------------------------------------------------------
# Command line


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="scripts/ui_screenshots.py",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=(
            "examples:\n"
            "  .venv/bin/python scripts/ui_screenshots.py            # own stack, PNGs in docs/\n"
            "  .venv/bin/python scripts/ui_screenshots.py --api-url http://127.0.0.1:8000 \\\n"
            "      --ui-url http://127.0.0.1:8233                   # a running ./dev serve\n"
            "\n"
            "exit status: 0 done, 1 something failed (the message says what; with an own stack\n"
            "the end of its log is printed), 2 bad arguments."
        ),
    )
    parser.add_argument(
        "--out-dir",
        type=Path,
        default=DEFAULT_OUT_DIR,
        help=f"where the PNGs go (default: {DEFAULT_OUT_DIR})",
    )
    parser.add_argument(
        "--api-url",
        help="use the running stack whose HTTP API is here (needs --ui-url too); "
        "default: start an own stack",
    )
    parser.add_argument("--ui-url", help="the running stack's Temporal web UI (with --api-url)")
    parser.add_argument(
        "--prefix",
        help="incident ids are PREFIX-1, -2, -3 (default: demo with an own stack, "
        "ui-HHMMSS with a running one)",
    )
    parser.add_argument(
        "--namespace", default="default", help="Temporal namespace (default: %(default)s)"
    )
    parser.add_argument(
        "--query",
        default=DEFAULT_QUERY,
        help="the visibility query of the list screenshot; the file keeps its name "
        "(default: %(default)s)",
    )
    parser.add_argument("--chromium", default="/usr/bin/chromium", help="default: %(default)s")
    parser.add_argument("--width", type=int, default=1600, help="page width in px (default: 1600)")
    parser.add_argument(
        "--list-height", type=int, default=500, help="list page height in px (default: 500)"
    )
    parser.add_argument(
        "--history-height",
        type=int,
        default=2400,
        help="history page height in px; the image is cut below the events, and a longer "
        f"history grows the page up to {MAX_HEIGHT} px (default: 2400)",
    )
    parser.add_argument(
        "--timezone",
        default="Asia/Shanghai",
        help="time zone the UI shows times in (default: %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=90.0,
        help="seconds to wait for each step: the stack, the UI's listing, a page (default: 90)",
    )
    parser.add_argument(
        "--settle",
        type=float,
        default=1.5,
        help="a page counts as rendered when its text is unchanged this long (default: 1.5 s)",
    )
    parser.add_argument(
        "--keep-data",
        action="store_true",
        help="keep the own stack's temporary data directory (its logs, Temporal's database)",
    )
    args = parser.parse_args(argv)
    if bool(args.api_url) != bool(args.ui_url):
        parser.error("--api-url and --ui-url go together")
    if not Path(args.chromium).exists() and shutil.which(args.chromium) is None:
        parser.error(f"chromium not found at {args.chromium} (Debian: apt-get install chromium)")
    return args


@contextlib.contextmanager
def stack(args: argparse.Namespace) -> Iterator[tuple[Endpoints, OwnStack | None]]:
    if args.api_url:
        yield Endpoints(api_url=args.api_url.rstrip("/"), ui_url=args.ui_url.rstrip("/")), None
        return
    data_dir = Path(tempfile.mkdtemp(prefix="ui-screenshots-stack-"))
    own = OwnStack(data_dir, timeout=args.timeout)
    try:
        own.start()
        yield own.endpoints, own
    except ScreenshotError:
        sys.stderr.write(f"the end of the stack's log ({own.log_path}):\n{own.log_tail()}\n")
        raise
    finally:
        own.stop()
        if args.keep_data:
            say(f"kept {data_dir}")
        else:
            shutil.rmtree(data_dir, ignore_errors=True)


def _on_sigterm(signum: int, frame: object) -> None:
    raise KeyboardInterrupt  # so that everything started is stopped on the way out


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    signal.signal(signal.SIGTERM, _on_sigterm)
    check_cjk_fonts()
    prefix = args.prefix or ("demo" if not args.api_url else time.strftime("ui-%H%M%S"))
    try:
        with stack(args) as (endpoints, _own):
            api = Api(endpoints.api_url, timeout=args.timeout)
            ui = UiApi(endpoints.ui_url, args.namespace, timeout=args.timeout)
            try:
                wait_for(f"the API at {endpoints.api_url}/health", api.healthy, args.timeout)
                wait_for(f"the Temporal UI at {endpoints.ui_url}", ui.serving, args.timeout)
                incidents = create_demo_incidents(api, prefix)
                wait_until_visible(ui, incidents, args.timeout)
                written = take_screenshots(args, endpoints.ui_url, incidents, args.query)
            finally:
                api.close()
                ui.close()
    except ScreenshotError as err:
        say(f"error: {err}")
        return 1
    except KeyboardInterrupt:
        say("interrupted")
        return 1
    for path in written:
        say(f"done: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
