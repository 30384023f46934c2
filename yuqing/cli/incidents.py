"""Reporting an incident, reading its state, and the plan's steps up to its review."""

from __future__ import annotations

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
    read_json,
    source_name,
)
from yuqing.cli.output import console, line, print_json, table, when

app = commands()


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
    answer = api.call("POST", "/incidents", read_json(file), source=source_name(file))
    if as_json:
        print_json(answer)
        return
    line(_reported(answer))


@app.command("report-email")
def report_email(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="An e-mail as saved (.eml, RFC 822).")
    ],
    unit: Annotated[
        str | None,
        typer.Option(
            metavar="UNIT",
            help="The responsible unit (default: YUQING_EMAIL_UNIT).",
            show_default=False,
        ),
    ] = None,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Report an incident from a saved e-mail; its attachments are kept as evidence.

    The e-mail's first link names the story, so it joins the incident already open for it.
    """
    from urllib.parse import quote

    api = Api(api_url, token, as_json)
    try:
        data = file.read_bytes()
    except OSError as error:
        raise tool.bad_input(f"cannot read {file}: {error.strerror or error}") from error
    path = "/intake/email" + (f"?unit={quote(unit)}" if unit else "")
    answer = api.call("POST", path, raw=data, source=str(file))
    if as_json:
        print_json(answer)
        return
    line(_reported(answer))


def _reported(answer: dict[str, Any]) -> str:
    where = f"incident {answer['incident_id']} (workflow {answer['workflow_id']})"
    if answer["created"]:
        return f"created {where}, stage {answer.get('stage') or 'discovered'}"
    entry = answer.get("entry") or {}
    return f"added to the open {where}: {entry.get('detail') or 'reported again'}"


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
    state = api.call("GET", f"/incidents/{incident_id}")
    if as_json:
        print_json(state)
        return
    _show_state(state)


def _show_state(state: dict[str, Any]) -> None:
    out = console()
    grade = state.get("grade") or "not assessed"
    if state.get("grade_criteria"):
        grade += ": " + "; ".join(state["grade_criteria"])
    summary = table("", "", title=f"incident {state['incident_id']}", wrap=("",))
    summary.show_header = False
    for label, value in (
        ("title", state["title"]),
        ("stage", state["stage"]),
        ("grade", grade),
        ("unit", state["unit"]),
        ("sensitivity", state["sensitivity"]),
        ("channel", state["channel"]),
        ("discovered", when(state["discovered_at"]) + " (Beijing)"),
        ("policy", state.get("policy_version") or ""),
    ):
        summary.add_row(label, value)
    out.print(summary)
    if state["deadlines"]:
        deadlines = table(
            "deadline",
            "due (Beijing)",
            "status",
            "responsible",
            title="deadlines",
            wrap=("deadline",),
        )
        for d in state["deadlines"]:
            deadlines.add_row(
                d["title"],
                when(d["due_at"]),
                d["status"],
                d.get("responsible_person") or d["responsible_unit"],
            )
        out.print(deadlines)
    if state["drafts"]:
        drafts = table("version", "status", "author", "submitted (Beijing)", title="drafts")
        for draft in state["drafts"]:
            drafts.add_row(
                str(draft["version"]),
                draft["status"],
                draft["author_id"],
                when(draft["submitted_at"]),
            )
        out.print(drafts)
    if state["approvals"]:
        approvals = table(
            "version",
            "step",
            "by",
            "decision",
            "at (Beijing)",
            "comment",
            title="approvals",
            wrap=("comment",),
        )
        for a in state["approvals"]:
            decision = a["decision"] + (" (void)" if a.get("void") else "")
            approvals.add_row(
                str(a["draft_version"]),
                a["role"],
                a["approver_id"],
                decision,
                when(a["at"]),
                a["comment"],
            )
        out.print(approvals)
    if state["publications"]:
        publications = table(
            "channel", "version", "status", "address", title="publications", wrap=("address",)
        )
        for p in state["publications"]:
            publications.add_row(
                p["channel"],
                str(p["draft_version"]),
                p.get("status") or "published",
                p.get("address") or p.get("last_error") or "",
            )
        out.print(publications)
    if state["posts"]:
        posts = table(
            "post",
            "status",
            "platform",
            "author",
            title="netizen posts",
            wrap=("platform", "author"),
        )
        for p in state["posts"]:
            posts.add_row(p["post_id"], p["status"], p["platform"], p["author"])
        out.print(posts)
    trail = table(
        "at (Beijing)", "kind", "by", "detail", title="trail (latest 10)", wrap=("detail",)
    )
    for entry in state["trail"][-10:]:
        kind = f"{entry['kind']} ({entry['refusal_kind']})" if entry["refused"] else entry["kind"]
        trail.add_row(when(entry["at"]), kind, entry.get("actor") or "", entry["detail"])
    out.print(trail)
    refused = sum(1 for e in state["trail"] if e["refused"])
    if refused:
        line(f"{refused} refused signal(s) in the trail (--json shows them all)")


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
    Api(api_url, token, as_json).signal_file(f"/incidents/{incident_id}/report", file)


@app.command()
def assess(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Send the Office's assessment (an Assessment JSON file); the incident is graded."""
    Api(api_url, token, as_json).signal_file(f"/incidents/{incident_id}/assessment", file)


@app.command()
def metrics(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Send new figures (a MetricsUpdate JSON file); they may upgrade the incident."""
    Api(api_url, token, as_json).signal_file(f"/incidents/{incident_id}/metrics", file)


@app.command()
def draft(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Submit a draft statement (a DraftSubmission JSON file); the incident numbers it."""
    Api(api_url, token, as_json).signal_file(f"/incidents/{incident_id}/drafts", file)


@app.command("legal-opinion")
def legal_opinion(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Record Legal's opinion (a LegalOpinion JSON file)."""
    Api(api_url, token, as_json).signal_file(f"/incidents/{incident_id}/legal-opinions", file)


class Step(StrEnum):
    unit_head = "unit_head"
    section_head = "section_head"
    publicity_lead = "publicity_lead"
    leadership_group = "leadership_group"


@app.command()
def approve(
    incident_id: IncidentArg,
    step: Annotated[
        Step,
        typer.Option(
            "--step",
            metavar="[unit_head|section_head|publicity_lead|leadership_group]",
            help="Your step of the approval chain.",
            show_default=False,
        ),
    ],
    version: Annotated[
        int,
        typer.Option(
            "--version",
            min=1,
            metavar="N",
            help="The draft version you approve.",
            show_default=False,
        ),
    ],
    reject: Annotated[
        bool, typer.Option("--reject", help="Return the draft instead (give --comment).")
    ] = False,
    comment: Annotated[
        str, typer.Option("--comment", metavar="TEXT", help="Your opinion; why, if rejecting.")
    ] = "",
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Approve (or --reject) a draft version, as your step of the approval chain.

    Steps: unit_head signs; section_head reviews (major incidents); publicity_lead approves
    (general); leadership_group approves (major).
    """
    body = {
        "decision": "reject" if reject else "approve",
        "draft_version": version,
        "comment": comment,
    }
    path = f"/incidents/{incident_id}/approvals/{step.value}"
    Api(api_url, token, as_json).signal(path, body, source="the approval")


@app.command()
def close(
    incident_id: IncidentArg,
    reason: Annotated[
        str,
        typer.Option("--reason", metavar="TEXT", help="Why it is over.", show_default=False),
    ],
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
    open_posts: dict[str, str] = {}
    for item in open_post or []:
        post_id, sep, why = item.partition("=")
        if not sep or not post_id.strip() or not why.strip():
            raise tool.bad_input(f"--open-post {item!r}: write it as POST_ID=WHY")
        open_posts[post_id.strip()] = why.strip()
    body = {"reason": reason, "open_posts": open_posts}
    Api(api_url, token, as_json).signal(
        f"/incidents/{incident_id}/close", body, source="the closing"
    )


@app.command()
def review(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Submit the review of a closed incident (a Review JSON file); the incident ends."""
    Api(api_url, token, as_json).signal_file(f"/incidents/{incident_id}/review", file)
