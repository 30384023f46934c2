"""Netizen posts: taking one up, and acting on it."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

import typer

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

app = commands()


@app.command()
def post(
    incident_id: IncidentArg,
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Take up a netizen post (a NetizenPost JSON file); it gets its own deadlines."""
    Api(api_url, token, as_json).signal_file(f"/incidents/{incident_id}/posts", file)


class PostAction(StrEnum):
    initial_response = "initial-response"
    formal_reply = "formal-reply"
    extension = "extension"


@app.command("post-action")
def post_action(
    incident_id: IncidentArg,
    post_id: Annotated[str, typer.Argument(metavar="POST_ID", help="The post's id.")],
    action: Annotated[
        PostAction,
        typer.Argument(
            metavar="ACTION",
            help="What you do on the post: initial-response, formal-reply or extension.",
        ),
    ],
    file: FileArg,
    as_json: JsonOption = False,
    token: TokenOption = None,
    api_url: ApiUrlOption = DEFAULT_API_URL,
) -> None:
    """Act on a netizen post: initial-response, formal-reply or extension.

    The file is an InitialResponse, a FormalReply or an ExtensionRequest JSON object.
    """
    path = f"/incidents/{incident_id}/posts/{post_id}/{action.value}"
    Api(api_url, token, as_json).signal_file(path, file)
