"""The rest of the plan from the command line (issue 12): drills (§5.3), their reports and
simulations; whether to respond, interviews, downgrade, the leading group's members, contacts;
re-planning provisional due times once a year's schedule is loaded."""

from __future__ import annotations

import asyncio
import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel

from api.routes.plan import (
    ContactBody,
    DepartmentNoticeBody,
    DowngradeBody,
    GroupMembersBody,
    InterviewDecisionBody,
    InterviewHeldBody,
    InterviewRequestBody,
    NoResponseApprovalBody,
)
from yuqing import log
from yuqing.cli.api_client import Api
from yuqing.cli.options import (
    DEFAULT_API_URL,
    ApiUrlOption,
    FileArg,
    IncidentArg,
    JsonOption,
    TokenOption,
    checked,
)
from yuqing.cli.output import EXIT_INPUT, Failure, err, fail, out, print_json
from yuqing.settings import PROJECT_ROOT, Settings

app = typer.Typer()


class ReportFormat(StrEnum):
    text = "text"
    json = "json"
    html = "html"


@app.command()
def drill(
    scenario: Annotated[Path, typer.Argument(help="A scenario file (drills/*.toml).")],
    simulate: Annotated[
        bool,
        typer.Option(
            "--simulate",
            help="Run it unattended on a time-skipping server of its own (needs no API, no "
            "token): each step at its time, every deadline let come due.",
        ),
    ] = False,
    policy: Annotated[
        list[Path] | None,
        typer.Option(
            help="With --simulate: a policy file to run it under; repeat it to compare "
            "policies. Default: YUQING_POLICY (the Nanning plan).",
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(help="How many times faster the drill's clocks run (the file's if unset)."),
    ] = None,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", help="With --simulate: how to write the reports.")
    ] = ReportFormat.text,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Start a drill (演练, §5.3) from a scenario file, as the Office; or --simulate it.

    A drill is an incident marked 演练 in every line, notice and record, on clocks `speed`
    times faster (12: a 4 h deadline falls due in 20 minutes). Nothing leaves for a real
    channel: notices and statements are kept in the drill sink, and the propaganda department
    and the police are never told. People then act on it as on any incident; `yuqing
    drill-report` says who acted when against the scaled deadlines.
    """
    from yuqing.drill.scenario import ScenarioError, load_scenario

    try:
        loaded = load_scenario(scenario)
    except ScenarioError as error:
        fail(as_json, Failure(EXIT_INPUT, str(error)))
    if simulate:
        _simulate(scenario, loaded, policy or [], fmt if not as_json else ReportFormat.json)
        return
    api = Api(api_url, token, as_json)
    body = {
        "file_name": scenario.name,
        "scenario": loaded.model_dump(mode="json"),
        "speed": speed,
    }
    started = api.fetch("POST", "/drills", body)
    if as_json:
        print_json(started)
        return
    out.print(
        f"演练 drill started: {started['incident_id']} ({loaded.name}); clocks "
        f"×{started['speed']:g}. Act on it as on any incident; the report: "
        f"yuqing drill-report {started['incident_id']}"
    )


def _simulate(path: Path, scenario: Any, policies: list[Path], fmt: ReportFormat) -> None:
    from yuqing.drill.report import render
    from yuqing.drill.simulate import SimulationError, simulate
    from yuqing.policy import PolicyError

    log.configure("WARNING")  # the report is the output; the service's own lines would bury it
    settings = Settings.from_env()
    try:
        runs = asyncio.run(
            simulate([(path, scenario)], policies or [settings.policy_path], settings)
        )
    except (SimulationError, PolicyError) as error:
        err.print(str(error))
        raise typer.Exit(EXIT_INPUT) from error
    if fmt is ReportFormat.json:
        reports = [json.loads(render(run.report, "json")) for run in runs]
        for run, report in zip(runs, reports, strict=True):
            report["policy_file"] = run.policy_file
            report["refused"] = run.refused
        sys.stdout.write(json.dumps(reports, ensure_ascii=False, indent=2) + "\n")
        return
    for run in runs:
        sys.stdout.write(f"== policy {_short(run.policy_file)}\n")
        sys.stdout.write(render(run.report, fmt.value))
        for refusal in run.refused:
            sys.stdout.write(f"  refused: {refusal}\n")
        sys.stdout.write("\n")
    if len(runs) > 1:
        keys = list(dict.fromkeys(c.key for run in runs for c in run.report.clocks))
        sys.stdout.write("outcome per policy:\n")
        for key in keys:
            cells = []
            for run in runs:
                clock = next((c for c in run.report.clocks if c.key == key), None)
                cells.append(clock.outcome if clock else "-")
            sys.stdout.write(f"  {key:<40} " + "  ".join(f"{c:<10}" for c in cells) + "\n")
        sys.stdout.write("  " + " " * 40 + "  ".join(_short(r.policy_file) for r in runs) + "\n")


def _short(path: str) -> str:
    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return path


@app.command("drill-report")
def drill_report(
    incident_id: IncidentArg,
    fmt: Annotated[ReportFormat, typer.Option("--format")] = ReportFormat.text,
    output: Annotated[Path | None, typer.Option(help="Write it to this file.")] = None,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """The drill report: who acted when, against the drill's scaled deadlines."""
    import httpx

    api = Api(api_url, token, fmt is ReportFormat.json)
    if not token:
        fail(api.as_json, Failure(EXIT_INPUT, "no token: set YUQING_TOKEN or pass --token"))
    try:
        response = httpx.get(
            f"{api_url.rstrip('/')}/drills/{incident_id}/report",
            params={"format": fmt.value},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
    except httpx.TransportError:
        api.fetch("GET", f"/drills/{incident_id}/report")  # says where it tried, exit 3
        return
    if not response.is_success:
        api.fetch("GET", f"/drills/{incident_id}/report")  # the refusal, with its exit code
        return
    if output is not None:
        output.write_text(response.text, encoding="utf-8")
        err.print(f"wrote the drill report to {output}")
    else:
        sys.stdout.write(response.text)


def _valid(body: dict[str, Any], model: type[BaseModel], as_json: bool) -> dict[str, Any]:
    """`body` as the API takes it; exit 2 naming the field when it is not."""
    try:
        checked(body, model, "the input")
    except Failure as failure:
        fail(as_json, failure)
    return body


def _signal_file(
    path: str, file: Path, model: type[BaseModel], as_json: bool, token: str | None, url: str
) -> None:
    Api(url, token, as_json).signal_file(path, file, model)


@app.command("no-response-approval")
def no_response_approval(
    incident_id: IncidentArg,
    reject: Annotated[bool, typer.Option(help="Refuse it: a statement is due after all.")] = False,
    comment: Annotated[str, typer.Option(help="Why (needed to refuse).")] = "",
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Approve (or refuse) the assessment's "no response needed" (§4.3): approved, the
    statement deadline is waived and the incident stays under monitoring."""
    body = {"decision": "reject" if reject else "approve", "comment": comment}
    _valid(body, NoResponseApprovalBody, as_json)
    Api(api_url, token, as_json).signal(f"/incidents/{incident_id}/no-response-approval", body)


@app.command("interview-request")
def interview_request(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Ask the leading group for a media interview (§4.4): interviewee, medium, scheduled_at,
    topic (a JSON file)."""
    path = f"/incidents/{incident_id}/interviews"
    _signal_file(path, file, InterviewRequestBody, as_json, token, api_url)


@app.command("interview-decision")
def interview_decision(
    incident_id: IncidentArg,
    interview_id: Annotated[str, typer.Argument(help="The interview, e.g. i1.")],
    reject: Annotated[bool, typer.Option(help="Refuse it.")] = False,
    comment: Annotated[str, typer.Option(help="Why (needed to refuse).")] = "",
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Authorise or refuse an interview, for the leading group."""
    body = {"decision": "reject" if reject else "approve", "comment": comment}
    path = f"/incidents/{incident_id}/interviews/{interview_id}/decision"
    _valid({**body, "interview_id": interview_id}, InterviewDecisionBody, as_json)
    Api(api_url, token, as_json).signal(path, body)


@app.command("interview-held")
def interview_held(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Record an interview that took place (a JSON file); one held without the leading group's
    authorisation is recorded as a breach of §4.4."""
    path = f"/incidents/{incident_id}/interviews/held"
    _signal_file(path, file, InterviewHeldBody, as_json, token, api_url)


@app.command()
def downgrade(
    incident_id: IncidentArg,
    reason: Annotated[str, typer.Option(help="Why the grade is lowered.")],
    to_grade: Annotated[str, typer.Option(help="The new grade.")] = "general",
    against: Annotated[bool, typer.Option(help="Vote against it (a quorum policy).")] = False,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Lower the incident's grade, for the leading group; approvals the new grade's chain
    lacks are voided."""
    body = {
        "to_grade": to_grade,
        "reason": reason,
        "decision": "reject" if against else "approve",
    }
    _valid(body, DowngradeBody, as_json)
    Api(api_url, token, as_json).signal(f"/incidents/{incident_id}/downgrade", body)


@app.command("group-members")
def group_members(
    incident_id: IncidentArg,
    member: Annotated[list[str], typer.Option(help="A member (roster id); repeat it.")],
    reason: Annotated[str, typer.Option(help="Why these members.")] = "",
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Choose the leading group's members for this incident (§5.1), for its head; each
    member is notified."""
    body = {"members": member, "reason": reason}
    _valid(body, GroupMembersBody, as_json)
    Api(api_url, token, as_json).signal(f"/incidents/{incident_id}/group-members", body)


@app.command()
def contact(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Record a contact with a department outside the bureau (§4.4): department,
    contacted_at, contact_person, said (a JSON file)."""
    _signal_file(f"/incidents/{incident_id}/contacts", file, ContactBody, as_json, token, api_url)


@app.command("notify-department")
def notify_department(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Send a notice to a named department (§4.4): department, message, request_id (a JSON
    file); the same request_id again sends nothing twice."""
    path = f"/incidents/{incident_id}/department-notices"
    _signal_file(path, file, DepartmentNoticeBody, as_json, token, api_url)


@app.command("calendar-changed")
def calendar_changed(
    reason: Annotated[str, typer.Option(help="e.g. the State Council notice now loaded.")],
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """After loading a year's official schedule into the override file: every running incident
    with a due time planned provisionally (Monday–Friday) plans it again, in either direction."""
    api = Api(api_url, token, as_json)
    told = api.fetch("POST", "/calendar/changed", {"reason": reason})
    if as_json:
        print_json(told)
        return
    if not told:
        out.print("no running incident had a provisional due time")
    for item in told:
        out.print(f"{item['incident_id']}: {item['entry']['detail']}")
