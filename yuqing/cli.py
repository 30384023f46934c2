"""`yuqing`: the command line of the HTTP API (`api/`), for officials and for scripts.

Every command talks to the API at YUQING_API_URL (or --api-url) with the token in
YUQING_TOKEN (or --token), which says who you are. Files are checked against the same models
the API uses before anything is sent. --json prints the API's answer as it came.

Exit codes: 0 done; 1 refused (the reason is printed); 2 bad input (the file or field is
named); 3 the API, or Temporal behind it, cannot be reached.
"""

from __future__ import annotations

import json
import secrets
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, NoReturn, TypeVar

import asyncpg
import httpx
import typer
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.table import Table

from api.auth import hash_token
from api.schemas import (
    ApprovalBody,
    AssessmentBody,
    CloseBody,
    DraftBody,
    ExtensionBody,
    FormalReplyBody,
    IncidentReportBody,
    InitialResponseBody,
    LegalOpinionBody,
    MetricsUpdateBody,
    NetizenPostBody,
    ReviewBody,
    UpwardReportBody,
)
from yuqing.decider import describe
from yuqing.roster import RosterError, load_roster
from yuqing.settings import Settings
from yuqing.working_time import SHANGHAI

T = TypeVar("T")
EXIT_REFUSED = 1
EXIT_INPUT = 2
EXIT_UNREACHABLE = 3

app = typer.Typer(
    name="yuqing",
    help="Report, approve, publish, close and review public-opinion incidents through the "
    "Yuqing HTTP API. The token (YUQING_TOKEN or --token) says who you are. Exit codes: "
    "1 refused, 2 bad input, 3 API unreachable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# Markup off: statements, comments and names are shown as written, brackets and all.
out = Console(markup=False, highlight=False, emoji=False)
err = Console(stderr=True, markup=False, highlight=False, emoji=False)

JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the API's JSON answer (machine-readable).")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="YUQING_TOKEN",
        help="Your API token; it names the person you act as.",
        show_default=False,
    ),
]
ApiUrlOption = Annotated[
    str,
    typer.Option("--api-url", envvar="YUQING_API_URL", help="Where the Yuqing API listens."),
]
IncidentArg = Annotated[str, typer.Argument(help="The incident's id, e.g. demo-1.")]
FileArg = Annotated[Path, typer.Argument(help="A JSON file, or - for standard input.")]
DEFAULT_API_URL = Settings().api_url


class Failure(Exception):
    def __init__(self, code: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.body = body


@dataclass(frozen=True)
class Api:
    url: str
    token: str | None
    as_json: bool

    def call(self, method: str, path: str, body: Any = None, *, raw: bytes | None = None) -> Any:
        if not self.token:
            raise Failure(EXIT_INPUT, "no token: set YUQING_TOKEN or pass --token")
        url = self.url.rstrip("/") + path
        try:
            headers = {"Authorization": f"Bearer {self.token}"}
            if raw is not None:
                headers["Content-Type"] = "message/rfc822"
            response = httpx.request(
                method,
                url,
                json=body,
                content=raw,
                headers=headers,
                # A signal waits for the incident's decision, up to half a minute.
                timeout=httpx.Timeout(60, connect=5),
            )
        except httpx.TransportError as error:
            raise Failure(
                EXIT_UNREACHABLE,
                f"cannot reach the Yuqing API at {self.url} ({error or type(error).__name__}); "
                "is it running? (YUQING_API_URL or --api-url say where it is)",
            ) from error
        try:
            answer = response.json()
        except ValueError:
            answer = {"detail": response.text.strip() or response.reason_phrase}
        if response.is_success:
            return answer
        raise self._failure(response.status_code, answer)

    def _failure(self, status: int, answer: Any) -> Failure:
        detail = answer.get("detail") if isinstance(answer, dict) else answer
        if isinstance(detail, list):  # FastAPI's own 422: each problem with its field
            problems = "; ".join(
                f"{'.'.join(str(p) for p in e.get('loc', [])[1:]) or 'body'}: {e.get('msg')}"
                for e in detail
                if isinstance(e, dict)
            )
            return Failure(EXIT_INPUT, f"the API refused the input: {problems}", answer)
        if status == 503:
            return Failure(EXIT_UNREACHABLE, f"the API at {self.url}: {detail}", answer)
        kind = answer.get("refusal_kind") if isinstance(answer, dict) else None
        if kind:
            return Failure(EXIT_REFUSED, f"refused ({kind}): {detail}", answer)
        labels = {401: "not authenticated", 403: "forbidden", 404: "not found", 409: "conflict"}
        label = labels.get(status, f"the API answered {status}")
        return Failure(EXIT_REFUSED, f"{label}: {detail}", answer)


def _fail(api: Api | None, failure: Failure) -> NoReturn:
    if api is not None and api.as_json and failure.body is not None:
        out.print(json.dumps(failure.body, ensure_ascii=False, indent=2), soft_wrap=True)
    err.print(f"error: {failure.message}", soft_wrap=True)
    raise typer.Exit(failure.code)


def _read(path: Path, model: type[BaseModel]) -> dict[str, Any]:
    """The file's JSON, checked against `model`; exit 2 naming the file and the fields."""
    name = "standard input" if str(path) == "-" else str(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as error:
        raise Failure(EXIT_INPUT, f"cannot read {name}: {error.strerror}") from error
    try:
        data = json.loads(text)
    except json.JSONDecodeError as error:
        raise Failure(EXIT_INPUT, f"{name} is not JSON: {error}") from error
    return _checked(data, model, name)


def _checked(data: Any, model: type[BaseModel], name: str) -> dict[str, Any]:
    try:
        return model.model_validate(data).model_dump(mode="json", exclude_none=True)
    except ValidationError as error:
        raise Failure(EXIT_INPUT, f"{name} is invalid: {describe(error)}") from error


def _when(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def _show_entry(entry: dict[str, Any]) -> None:
    out.print(f"accepted: {entry['detail']}", soft_wrap=True)
    table = Table("at (Beijing)", "kind", "by", "role", "signal")
    table.add_row(
        _when(entry["at"]),
        entry["kind"],
        entry.get("actor") or "",
        entry.get("role") or "",
        entry.get("signal") or "",
    )
    out.print(table)


def _signal(api: Api, path: str, payload: dict[str, Any]) -> None:
    try:
        entry = api.call("POST", path, payload)
    except Failure as failure:
        _fail(api, failure)
    if api.as_json:
        out.print(json.dumps(entry, ensure_ascii=False, indent=2), soft_wrap=True)
    else:
        _show_entry(entry)


def _signal_file(api: Api, path: str, file: Path, model: type[BaseModel]) -> None:
    try:
        payload = _read(file, model)
    except Failure as failure:
        _fail(api, failure)
    _signal(api, path, payload)


# -- reporting and reading -----------------------------------------------------------------


@app.command()
def report(
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Report an incident from an IncidentReport JSON file (you are its reporter).

    Without incident_id, the story's source_url (or channel and external_id) names it, and a
    report of a story already open is added to that incident.
    """
    api = Api(api_url, token, as_json)
    try:
        answer = api.call("POST", "/incidents", _read(file, IncidentReportBody))
    except Failure as failure:
        _fail(api, failure)
    if as_json:
        out.print(json.dumps(answer, ensure_ascii=False, indent=2), soft_wrap=True)
        return
    how = "created" if answer["created"] else "added to the open"
    out.print(
        f"{how} incident {answer['incident_id']} (workflow {answer['workflow_id']}), "
        f"stage {answer['stage']}",
        soft_wrap=True,
    )


@app.command("report-email")
def report_email(
    file: Annotated[Path, typer.Argument(help="An e-mail as saved (.eml, RFC 822).")],
    unit: Annotated[
        str | None, typer.Option(help="The responsible unit (default: YUQING_EMAIL_UNIT).")
    ] = None,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Report an incident from a saved e-mail; its attachments are kept as evidence.

    The e-mail's first link names the story, so it joins the incident already open for it.
    """
    api = Api(api_url, token, as_json)
    try:
        data = file.read_bytes()
    except OSError as error:
        _fail(None, Failure(EXIT_INPUT, f"cannot read {file}: {error.strerror or error}"))
    path = "/intake/email" + (f"?unit={unit}" if unit else "")
    try:
        answer = api.call("POST", path, raw=data)
    except Failure as failure:
        _fail(api, failure)
    if as_json:
        out.print(json.dumps(answer, ensure_ascii=False, indent=2), soft_wrap=True)
        return
    how = "created" if answer["created"] else "added to the open"
    out.print(f"{how} incident {answer['incident_id']}, stage {answer['stage']}", soft_wrap=True)


@app.command()
def status(
    incident_id: IncidentArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Show an incident's state.

    Stage, grade, deadlines, drafts, approvals, publications, posts, and the latest entries
    of its decision trail; --json gives all of it.
    """
    api = Api(api_url, token, as_json)
    try:
        state = api.call("GET", f"/incidents/{incident_id}")
    except Failure as failure:
        _fail(api, failure)
    if as_json:
        out.print(json.dumps(state, ensure_ascii=False, indent=2), soft_wrap=True)
        return
    _show_state(state)


def _show_state(state: dict[str, Any]) -> None:
    grade = state.get("grade") or "not assessed"
    if state.get("grade_criteria"):
        grade += ": " + "; ".join(state["grade_criteria"])
    summary = Table(title=f"incident {state['incident_id']}", show_header=False)
    for label, value in (
        ("title", state["title"]),
        ("stage", state["stage"]),
        ("grade", grade),
        ("unit", state["unit"]),
        ("sensitivity", state["sensitivity"]),
        ("channel", state["channel"]),
        ("discovered", _when(state["discovered_at"])),
        ("policy", state.get("policy_version") or ""),
    ):
        summary.add_row(label, value)
    out.print(summary)
    if state["deadlines"]:
        deadlines = Table("deadline", "due (Beijing)", "status", "responsible", title="deadlines")
        for d in state["deadlines"]:
            deadlines.add_row(
                d["title"],
                _when(d["due_at"]),
                d["status"],
                d.get("responsible_person") or d["responsible_unit"],
            )
        out.print(deadlines)
    if state["drafts"]:
        drafts = Table("version", "status", "author", "submitted", title="drafts")
        for draft in state["drafts"]:
            drafts.add_row(
                str(draft["version"]),
                draft["status"],
                draft["author_id"],
                _when(draft["submitted_at"]),
            )
        out.print(drafts)
    if state["approvals"]:
        approvals = Table("version", "role", "by", "decision", "at", "comment", title="approvals")
        for a in state["approvals"]:
            decision = a["decision"] + (" (void)" if a.get("void") else "")
            approvals.add_row(
                str(a["draft_version"]),
                a["role"],
                a["approver_id"],
                decision,
                _when(a["at"]),
                a["comment"],
            )
        out.print(approvals)
    if state["publications"]:
        publications = Table("channel", "version", title="publications")
        publications.add_column("address", overflow="fold")
        for p in state["publications"]:
            publications.add_row(p["channel"], str(p["draft_version"]), p["address"])
        out.print(publications)
    if state["posts"]:
        posts = Table("post", "status", "platform", "author", title="netizen posts")
        for p in state["posts"]:
            posts.add_row(p["post_id"], p["status"], p["platform"], p["author"])
        out.print(posts)
    trail = Table("at", "kind", "by", "detail", title="trail (latest 10)")
    for entry in state["trail"][-10:]:
        kind = f"{entry['kind']} ({entry['refusal_kind']})" if entry["refused"] else entry["kind"]
        trail.add_row(_when(entry["at"]), kind, entry.get("actor") or "", entry["detail"])
    out.print(trail)
    refused = sum(1 for e in state["trail"] if e["refused"])
    if refused:
        out.print(f"{refused} refused signal(s) in the trail (--json shows them all)")


# -- the plan's steps ------------------------------------------------------------------------


@app.command("upward-report")
def upward_report(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Send the upward report (medium, basic facts, tendency of comments) from a JSON file."""
    api = Api(api_url, token, as_json)
    _signal_file(api, f"/incidents/{incident_id}/report", file, UpwardReportBody)


@app.command()
def assess(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Send the Office's assessment (an Assessment JSON file); the incident is graded."""
    api = Api(api_url, token, as_json)
    _signal_file(api, f"/incidents/{incident_id}/assessment", file, AssessmentBody)


@app.command()
def metrics(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Send new figures (a MetricsUpdate JSON file); they may upgrade the incident."""
    api = Api(api_url, token, as_json)
    _signal_file(api, f"/incidents/{incident_id}/metrics", file, MetricsUpdateBody)


@app.command()
def draft(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Submit a draft statement (a DraftSubmission JSON file); the incident numbers it."""
    api = Api(api_url, token, as_json)
    _signal_file(api, f"/incidents/{incident_id}/drafts", file, DraftBody)


@app.command("legal-opinion")
def legal_opinion(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Record Legal's opinion (a LegalOpinion JSON file)."""
    api = Api(api_url, token, as_json)
    _signal_file(api, f"/incidents/{incident_id}/legal-opinions", file, LegalOpinionBody)


class Step(StrEnum):
    unit_head = "unit_head"
    section_head = "section_head"
    publicity_lead = "publicity_lead"
    leadership_group = "leadership_group"


@app.command()
def approve(
    incident_id: IncidentArg,
    step: Annotated[
        Step, typer.Option("--step", help="Your step of the approval chain.", show_default=False)
    ],
    version: Annotated[
        int,
        typer.Option("--version", min=1, help="The draft version you approve.", show_default=False),
    ],
    reject: Annotated[
        bool, typer.Option("--reject", help="Return the draft instead (give --comment).")
    ] = False,
    comment: Annotated[
        str, typer.Option("--comment", help="Your opinion; why, if rejecting.")
    ] = "",
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Approve (or --reject) a draft version, as your step of the approval chain.

    Steps: unit_head signs; section_head reviews (major incidents); publicity_lead approves
    (general); leadership_group approves (major).
    """
    api = Api(api_url, token, as_json)
    body = {
        "decision": "reject" if reject else "approve",
        "draft_version": version,
        "comment": comment,
    }
    try:
        payload = _checked(body, ApprovalBody, "the approval")
    except Failure as failure:
        _fail(api, failure)
    _signal(api, f"/incidents/{incident_id}/approvals/{step.value}", payload)


@app.command()
def post(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Take up a netizen post (a NetizenPost JSON file); it gets its own deadlines."""
    api = Api(api_url, token, as_json)
    _signal_file(api, f"/incidents/{incident_id}/posts", file, NetizenPostBody)


class PostAction(StrEnum):
    initial_response = "initial-response"
    formal_reply = "formal-reply"
    extension = "extension"


POST_ACTION_BODIES: dict[PostAction, type[BaseModel]] = {
    PostAction.initial_response: InitialResponseBody,
    PostAction.formal_reply: FormalReplyBody,
    PostAction.extension: ExtensionBody,
}


@app.command("post-action")
def post_action(
    incident_id: IncidentArg,
    post_id: Annotated[str, typer.Argument(help="The post's id.")],
    action: Annotated[PostAction, typer.Argument(help="What you do on the post.")],
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Act on a netizen post: initial-response, formal-reply or extension.

    The file is an InitialResponse, a FormalReply or an ExtensionRequest JSON object.
    """
    api = Api(api_url, token, as_json)
    path = f"/incidents/{incident_id}/posts/{post_id}/{action.value}"
    _signal_file(api, path, file, POST_ACTION_BODIES[action])


@app.command()
def close(
    incident_id: IncidentArg,
    reason: Annotated[str, typer.Option("--reason", help="Why it is over.", show_default=False)],
    open_post: Annotated[
        list[str] | None,
        typer.Option(
            "--open-post",
            metavar="POST_ID=WHY",
            help="Leave a post unanswered, with why (the leading group only); repeatable.",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Close the incident: the leading group, or the Office for a general incident."""
    api = Api(api_url, token, as_json)
    open_posts: dict[str, str] = {}
    for item in open_post or []:
        post_id, sep, why = item.partition("=")
        if not sep or not post_id.strip() or not why.strip():
            _fail(api, Failure(EXIT_INPUT, f"--open-post {item!r}: write it as POST_ID=WHY"))
        open_posts[post_id.strip()] = why.strip()
    try:
        payload = _checked({"reason": reason, "open_posts": open_posts}, CloseBody, "the closing")
    except Failure as failure:
        _fail(api, failure)
    _signal(api, f"/incidents/{incident_id}/close", payload)


@app.command()
def review(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Submit the review of a closed incident (a Review JSON file); the incident ends."""
    api = Api(api_url, token, as_json)
    _signal_file(api, f"/incidents/{incident_id}/review", file, ReviewBody)


# -- the decision trail (SPEC §6): read from Temporal and PostgreSQL directly ----------------


class TrailFormat(StrEnum):
    text = "text"
    json = "json"
    md = "md"
    html = "html"


@app.command()
def audit(
    incident_id: IncidentArg,
    fmt: Annotated[
        TrailFormat, typer.Option("--format", help="How to write the timeline.")
    ] = TrailFormat.text,
    output: Annotated[
        Path | None, typer.Option(help="Write it to this file instead of standard output.")
    ] = None,
    check: Annotated[
        bool,
        typer.Option(help="Compare the timeline with the PostgreSQL projection, row for row."),
    ] = False,
    replay: Annotated[
        bool,
        typer.Option(help="Run the recorded history through today's code: same decisions?"),
    ] = False,
) -> None:
    """The incident's decision trail, rebuilt from its Temporal history alone.

    Every input, decision, deadline, notice, publication and refused signal, of the incident
    and its netizen posts, in time order. Reads TEMPORAL_ADDRESS (and DATABASE_URL for
    --check). Exit code 1 when --check or --replay finds a difference.
    """
    import asyncio

    differences = asyncio.run(_audit(incident_id, fmt, output, check, replay))
    raise typer.Exit(1 if differences else 0)


async def _audit(
    incident_id: str, fmt: TrailFormat, output: Path | None, check: bool, replay: bool
) -> int:
    from temporalio.service import RPCError

    from yuqing import db, incident_workflow_id
    from yuqing.audit.history import (
        REPLAY_CLOCK_SLACK,
        TrailLine,
        compare,
        load_history,
        recorded_trail,
    )
    from yuqing.audit.history import replay as replay_history
    from yuqing.audit.projection import projected_trail
    from yuqing.audit.timeline import render
    from yuqing.client import connect

    settings = Settings.from_env()
    try:
        client = await connect(settings)
        first = await load_history(client, incident_workflow_id(incident_id))
    except RPCError as error:
        _fail(None, Failure(EXIT_UNREACHABLE, f"Temporal at {settings.temporal_address}: {error}"))
    loaded = {incident_workflow_id(incident_id): first}
    for event in first.events:
        if event.HasField("start_child_workflow_execution_initiated_event_attributes"):
            child = event.start_child_workflow_execution_initiated_event_attributes.workflow_id
            loaded[child] = await load_history(client, child)
    trails = {wf: recorded_trail(history) for wf, history in loaded.items()}
    lines = [line for trail in trails.values() for line in trail]
    text = render(incident_id, lines, fmt.value)
    if output is not None:
        output.write_text(text, encoding="utf-8")  # noqa: ASYNC240 - one small file, once
        err.print(f"wrote {len(lines)} line(s) to {output}")
    else:
        out.print(text, end="", soft_wrap=True, markup=False)
    if not lines:
        err.print("no trail is recorded in this history (it began before the projection)")
    found = 0
    if check:
        if not settings.database_url:
            _fail(None, Failure(EXIT_INPUT, "--check needs DATABASE_URL (./dev serve logs it)"))
        pool = await db.create_pool(settings.database_url)
        try:
            for workflow_id, recorded in trails.items():
                rows = await projected_trail(pool, workflow_id)
                diffs = compare(recorded, [TrailLine(**row) for row in rows])
                found += len(diffs)
                verdict = "matches" if not diffs else f"differs in {len(diffs)} row(s)"
                err.print(f"projection of {workflow_id}: {verdict} ({len(rows)} rows)")
                for diff in diffs:
                    err.print(f"  {diff.describe('the projection')}", soft_wrap=True)
        finally:
            await pool.close()
    if replay:
        for workflow_id, history in loaded.items():
            replayed = await replay_history(history)
            diffs = (
                compare(trails[workflow_id], replayed.trail, clock_slack=REPLAY_CLOCK_SLACK)
                if trails[workflow_id]
                else []
            )
            found += len(diffs) + (1 if replayed.error else 0)
            if replayed.error:
                err.print(
                    f"replay of {workflow_id}: today's code cannot follow it: {replayed.error}",
                    soft_wrap=True,
                )
            elif diffs:
                err.print(f"replay of {workflow_id}: {len(diffs)} decision(s) differ")
                for diff in diffs:
                    err.print(f"  {diff.describe('today' + chr(39) + 's code')}", soft_wrap=True)
            else:
                grade = getattr(replayed.state, "grade", None)
                err.print(
                    f"replay of {workflow_id}: the same decisions"
                    + (f" (grade {grade})" if grade else "")
                )
    return found


@app.command("audit-verify")
def audit_verify() -> None:
    """Check the PostgreSQL audit table's hash chain: any edited or removed row is named.

    Reads DATABASE_URL. Exit code 1 when the chain is broken.
    """
    import asyncio

    from yuqing.audit.projection import verify

    async def run() -> bool:
        report = await _with_pool(verify)
        for problem in report.problems:
            err.print(
                f"row {problem.row_id} ({problem.workflow_id} #{problem.seq}): {problem.what}",
                soft_wrap=True,
            )
        out.print(
            f"{report.rows_checked} row(s) checked: "
            + ("the chain is intact" if report.ok else "THE CHAIN IS BROKEN")
        )
        return report.ok

    raise typer.Exit(0 if asyncio.run(run()) else 1)


async def _with_pool(work: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
    """Run `work` on a pool to DATABASE_URL, closed afterwards; exit 2 when it is not set."""
    from yuqing import db

    url = Settings.from_env().database_url
    if not url:
        _fail(None, Failure(EXIT_INPUT, "DATABASE_URL is not set (./dev serve logs it)"))
    pool = await db.create_pool(url)
    try:
        return await work(pool)
    finally:
        await pool.close()


class ReportFormat(StrEnum):
    table = "table"
    csv = "csv"
    html = "html"


@app.command()
def compliance(
    start: Annotated[str, typer.Option("--from", help="First day, YYYY-MM-DD (Asia/Shanghai).")],
    end: Annotated[str, typer.Option("--to", help="Day after the last, YYYY-MM-DD.")],
    fmt: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.table,
    output: Annotated[Path | None, typer.Option(help="Write to this file.")] = None,
) -> None:
    """Every deadline due in the period: met or missed, by how much, and who was responsible.

    Per unit and per deadline kind (SPEC §2.10). Reads DATABASE_URL.
    """
    import asyncio

    from yuqing.audit import compliance as report

    try:
        first = datetime.fromisoformat(start).replace(tzinfo=SHANGHAI)
        last = datetime.fromisoformat(end).replace(tzinfo=SHANGHAI)
    except ValueError as error:
        _fail(None, Failure(EXIT_INPUT, f"--from/--to: {error}"))
    if last <= first:
        _fail(None, Failure(EXIT_INPUT, "--to must come after --from"))

    found = list(asyncio.run(_with_pool(lambda pool: report.deadlines_in(pool, first, last))))
    if fmt is ReportFormat.table:
        out.print(report.to_table(found))
        return
    if fmt is ReportFormat.csv:
        text = report.to_csv(found)
    else:
        text = report.to_html(found, report.summarise(found), start=first, end=last)
    if output is None:
        sys.stdout.write(text)  # as written: no markup, no wrapping
    else:
        output.write_text(text, encoding="utf-8")
        err.print(f"wrote {len(found)} deadline(s) to {output}")


# -- administration ------------------------------------------------------------------------


@app.command("new-token")
def new_token(
    person: Annotated[str, typer.Argument(help="The roster id of the token's holder.")],
) -> None:
    """Make a new API token for a roster person.

    Prints the token (give it to them; it is kept nowhere) and the entry to add to the
    tokens file (YUQING_TOKENS), which keeps only its SHA-256.
    """
    settings = Settings.from_env()
    try:
        known = load_roster(settings.roster_path).person(person) is not None
    except RosterError as error:
        _fail(None, Failure(EXIT_INPUT, str(error)))
    if not known:
        _fail(None, Failure(EXIT_INPUT, f"{person} is not in the roster {settings.roster_path}"))
    token = secrets.token_urlsafe(32)
    err.print(f"token for {person} (shown once, kept nowhere):")
    out.print(token)
    err.print("add to the tokens file:")
    err.print(f'[[tokens]]\nperson = "{person}"\nsha256 = "{hash_token(token)}"')


def main() -> None:
    app()


if __name__ == "__main__":
    main()
