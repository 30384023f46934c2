"""The options the API commands share, and reading their JSON files."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from pydantic import BaseModel, ValidationError

from yuqing.cli.output import EXIT_INPUT, Failure
from yuqing.decider import describe
from yuqing.settings import Settings

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


def read(path: Path, model: type[BaseModel]) -> dict[str, Any]:
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
    return checked(data, model, name)


def checked(data: Any, model: type[BaseModel], name: str) -> dict[str, Any]:
    try:
        return model.model_validate(data).model_dump(mode="json", exclude_none=True)
    except ValidationError as error:
        raise Failure(EXIT_INPUT, f"{name} is invalid: {describe(error)}") from error
