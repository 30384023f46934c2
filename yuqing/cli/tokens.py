"""Administration: API tokens."""

from __future__ import annotations

from typing import Annotated

import typer

from yuqing import tool
from yuqing.cli.options import commands
from yuqing.cli.output import line

app = commands()


@app.command("new-token")
def new_token(
    person: Annotated[
        str, typer.Argument(metavar="PERSON", help="The roster id of the token's holder.")
    ],
) -> None:
    """Make a new API token for a roster person.

    Prints the token (give it to them; it is kept nowhere) and the entry to add to the
    tokens file (YUQING_TOKENS), which keeps only its SHA-256.
    """
    import secrets

    from api.auth import hash_token
    from yuqing.roster import RosterError, load_roster
    from yuqing.settings import Settings

    settings = Settings.from_env()
    try:
        known = load_roster(settings.roster_path).person(person) is not None
    except RosterError as error:
        raise tool.bad_input(str(error)) from error
    if not known:
        raise tool.bad_input(
            f"{person} is not in the roster {settings.roster_path}: use a person's roster id"
        )
    token = secrets.token_urlsafe(32)
    tool.say(f"token for {person} (shown once, kept nowhere):")
    line(token)
    tool.say("add to the tokens file:")
    tool.say(f'[[tokens]]\nperson = "{person}"\nsha256 = "{hash_token(token)}"')
