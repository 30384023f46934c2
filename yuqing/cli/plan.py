"""The rest of the plan from the command line (issue 12): drills (§5.3), their reports and
simulations; whether to respond, interviews, downgrade, the leading group's members, contacts;
re-planning provisional due times once a year's schedule is loaded."""

from __future__ import annotations

import json
import sys
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any

import typer

from yuqing import tool
from yuqing.cli.api_client import Api
from yuqing.cli.options import (
    DEFAULT_API_URL,
    ApiUrlOption,
    FileArg,
    IncidentArg,
    JsonOption,
    TokenOption,
    commands,
)
from yuqing.cli.output import line, print_json

app = commands()


class ReportFormat(StrEnum):
    text = "text"
    json = "json"
    html = "html"


@app.command()
def drill(
    scenario: Annotated[
        Path, typer.Argument(metavar="SCENARIO", help="A scenario file (drills/*.toml).")
    ],
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
            metavar="FILE",
            help="With --simulate: a policy file to run it under; repeat it to compare "
            "policies. Default: YUQING_POLICY (the Nanning plan).",
        ),
    ] = None,
    speed: Annotated[
        float | None,
        typer.Option(
            metavar="N", help="How many times faster the drill's clocks run (the file's if unset)."
        ),
    ] = None,
    fmt: Annotated[
        ReportFormat,
        typer.Option("--format", metavar="FORMAT", help="With --simulate: text, json or html."),
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
        raise tool.bad_input(str(error)) from error
    if simulate:
        _simulate(scenario, loaded, policy or [], fmt if not as_json else ReportFormat.json)
        return
    api = Api(api_url, token, as_json)
    body = {
        "file_name": scenario.name,
        "scenario": loaded.model_dump(mode="json"),
        "speed": speed,
    }
    started = api.call("POST", "/drills", body, source=str(scenario))
    if as_json:
        print_json(started)
        return
    line(
        f"演练 drill started: {started['incident_id']} ({loaded.name}); clocks "
        f"×{started['speed']:g}. Act on it as on any incident; the report: "
        f"yuqing drill-report {started['incident_id']}"
    )


def _simulate(path: Path, scenario: Any, policies: list[Path], fmt: ReportFormat) -> None:
    from yuqing import log
    from yuqing.drill.report import render
    from yuqing.drill.simulate import SimulationError, simulate
    from yuqing.policy import PolicyError
    from yuqing.settings import Settings

    log.configure("WARNING")  # the report is the output; the service's own lines would bury it
    settings = Settings.from_env()
    try:
        runs = tool.run(simulate([(path, scenario)], policies or [settings.policy_path], settings))
    except (SimulationError, PolicyError) as error:
        raise tool.bad_input(str(error)) from error
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
    from yuqing.settings import PROJECT_ROOT

    try:
        return str(Path(path).resolve().relative_to(PROJECT_ROOT))
    except ValueError:
        return path


@app.command("drill-report")
def drill_report(
    incident_id: IncidentArg,
    fmt: Annotated[
        ReportFormat, typer.Option("--format", metavar="FORMAT", help="text, json or html.")
    ] = ReportFormat.text,
    output: Annotated[
        Path | None, typer.Option(metavar="FILE", help="Write it to this file.")
    ] = None,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """The drill report: who acted when, against the drill's scaled deadlines."""
    api = Api(api_url, token, fmt is ReportFormat.json)
    text = _text(api, f"/drills/{incident_id}/report?format={fmt.value}")
    if output is not None:
        try:
            output.write_text(text, encoding="utf-8")
        except OSError as error:
            raise tool.cannot_write(output, error.strerror or str(error)) from error
        tool.say(f"wrote the drill report to {output}")
    else:
        sys.stdout.write(text)


def _text(api: Api, path: str) -> str:
    """The API's answer as text (a report in its format); a failure as every command's."""
    import urllib.error
    import urllib.request

    if not api.token:
        raise tool.bad_input("no token: set YUQING_TOKEN or pass --token")
    request = urllib.request.Request(
        api.url.rstrip("/") + path, headers={"Authorization": f"Bearer {api.token}"}
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:
            return str(response.read().decode("utf-8"))
    except urllib.error.HTTPError as error:
        with error:
            body = error.read()
        try:
            answer: Any = json.loads(body)
        except ValueError:
            answer = {"detail": body.decode("utf-8", "replace").strip() or error.reason}
        raise api._failure(error.code, answer, "the request") from None
    except (urllib.error.URLError, OSError) as error:
        raise api._unreachable(error) from None


@app.command("no-response-approval")
def no_response_approval(
    incident_id: IncidentArg,
    reject: Annotated[bool, typer.Option(help="Refuse it: a statement is due after all.")] = False,
    comment: Annotated[str, typer.Option(metavar="TEXT", help="Why (needed to refuse).")] = "",
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Approve (or refuse) the assessment's "no response needed" (§4.3): approved, the
    statement deadline is waived and the incident stays under monitoring."""
    body = {"decision": "reject" if reject else "approve", "comment": comment}
    path = f"/incidents/{incident_id}/no-response-approval"
    Api(api_url, token, as_json).signal(path, body, source="the options")


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
    Api(api_url, token, as_json).signal_file(path, file)


@app.command("interview-decision")
def interview_decision(
    incident_id: IncidentArg,
    interview_id: Annotated[
        str, typer.Argument(metavar="INTERVIEW_ID", help="The interview, e.g. i1.")
    ],
    reject: Annotated[bool, typer.Option(help="Refuse it.")] = False,
    comment: Annotated[str, typer.Option(metavar="TEXT", help="Why (needed to refuse).")] = "",
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Authorise or refuse an interview, for the leading group."""
    body = {"decision": "reject" if reject else "approve", "comment": comment}
    path = f"/incidents/{incident_id}/interviews/{interview_id}/decision"
    Api(api_url, token, as_json).signal(path, body, source="the options")


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
    Api(api_url, token, as_json).signal_file(path, file)


@app.command()
def downgrade(
    incident_id: IncidentArg,
    reason: Annotated[str, typer.Option(metavar="TEXT", help="Why the grade is lowered.")],
    to_grade: Annotated[str, typer.Option(metavar="GRADE", help="The new grade.")] = "general",
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
    path = f"/incidents/{incident_id}/downgrade"
    Api(api_url, token, as_json).signal(path, body, source="the options")


@app.command("group-members")
def group_members(
    incident_id: IncidentArg,
    member: Annotated[
        list[str], typer.Option(metavar="PERSON_ID", help="A member (roster id); repeat it.")
    ],
    reason: Annotated[str, typer.Option(metavar="TEXT", help="Why these members.")] = "",
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Choose the leading group's members for this incident (§5.1), for its head; each
    member is notified."""
    body = {"members": member, "reason": reason}
    path = f"/incidents/{incident_id}/group-members"
    Api(api_url, token, as_json).signal(path, body, source="the options")


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
    Api(api_url, token, as_json).signal_file(f"/incidents/{incident_id}/contacts", file)


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
    Api(api_url, token, as_json).signal_file(path, file)


@app.command("calendar-changed")
def calendar_changed(
    reason: Annotated[
        str, typer.Option(metavar="TEXT", help="e.g. the State Council notice now loaded.")
    ],
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """After loading a year's official schedule into the override file: every running incident
    with a due time planned provisionally (Monday–Friday) plans it again, in either direction."""
    api = Api(api_url, token, as_json)
    told = api.call("POST", "/calendar/changed", {"reason": reason}, source="the options")
    if as_json:
        print_json(told)
        return
    if not told:
        line("no running incident had a provisional due time")
    for item in told:
        line(f"{item['incident_id']}: {item['entry']['detail']}")
