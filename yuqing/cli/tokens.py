"""Administration: API tokens."""

from __future__ import annotations

import secrets
from typing import Annotated

import typer

from api.auth import hash_token
from yuqing.cli.output import EXIT_INPUT, Failure, err, fail, out
from yuqing.roster import RosterError, load_roster
from yuqing.settings import Settings

app = typer.Typer()


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
        fail(False, Failure(EXIT_INPUT, str(error)))
    if not known:
        fail(False, Failure(EXIT_INPUT, f"{person} is not in the roster {settings.roster_path}"))
    token = secrets.token_urlsafe(32)
    err.print(f"token for {person} (shown once, kept nowhere):")
    out.print(token)
    err.print("add to the tokens file:")
    err.print(f'[[tokens]]\nperson = "{person}"\nsha256 = "{hash_token(token)}"')
