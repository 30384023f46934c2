"""What the commands share: their group factory, options and arguments, reading JSON files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from typer.core import TyperArgument, TyperCommand

from yuqing import tool
from yuqing.cli import language
from yuqing.settings import Settings


class _Argument(TyperArgument):
    """An argument shown as click shows it: `INCIDENT_ID` in the usage line and the help, with
    no `<str>` beside it."""

    def display_type_rich(self, ctx: Any) -> str | None:
        return None

    def _usage_display_name(self) -> str:
        return self.display_name_raw + ("..." if self.nargs != 1 else "")


class _Command(TyperCommand):
    context_class = language.Context  # help in the reader's language (yuqing.cli.language)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        for param in self.params:
            if type(param) is TyperArgument:
                param.__class__ = _Argument

    def get_help(self, ctx: Any) -> str:
        language.localize(self, self.name or "", ctx)
        return str(super().get_help(ctx))


class _Commands(typer.Typer):
    def command(self, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("cls", _Command)
        return super().command(*args, **kwargs)


def commands() -> typer.Typer:
    """A group of commands, merged into `yuqing`: plain help (no markup to escape, nothing to
    import for it), names in capitals where values go, no `<str>`."""
    return _Commands(rich_markup_mode=None)


JsonOption = Annotated[
    bool, typer.Option("--json", help="Print the API's JSON answer (machine-readable).")
]
TokenOption = Annotated[
    str | None,
    typer.Option(
        "--token",
        envvar="YUQING_TOKEN",
        metavar="TOKEN",
        help="Your API token; it names the person you act as.",
        show_default=False,
    ),
]
ApiUrlOption = Annotated[
    str,
    typer.Option(
        "--api-url", envvar="YUQING_API_URL", metavar="URL", help="Where the Yuqing API listens."
    ),
]
IncidentArg = Annotated[
    str, typer.Argument(metavar="INCIDENT_ID", help="The incident's id, e.g. demo-1.")
]
FileArg = Annotated[
    Path, typer.Argument(metavar="FILE", help="A JSON file, or - for standard input.")
]
DEFAULT_API_URL = Settings().api_url


def source_name(path: Path) -> str:
    return tool.said("cli.stdin") if str(path) == "-" else str(path)


def read_json(path: Path) -> Any:
    """The file's JSON; exit 2 naming the file when it cannot be read or is not JSON."""
    name = source_name(path)
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as error:
        why = error.strerror or str(error)
        raise tool.bad_input(tool.said("cli.cannot_read", name=name, why=why)) from error
    except UnicodeDecodeError as error:
        said = tool.said("cli.not_utf8", name=name, why=error.reason)
        raise tool.bad_input(said) from error
    try:
        return json.loads(text)
    except json.JSONDecodeError as error:
        raise tool.bad_input(tool.said("cli.not_json", name=name, why=str(error))) from error
