"""How the `yuqing` commands speak: the exit codes, the two consoles, the shared renderings."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, NoReturn

import typer
from rich.console import Console
from rich.table import Table

from yuqing.working_time import SHANGHAI

EXIT_REFUSED = 1
EXIT_INPUT = 2
EXIT_UNREACHABLE = 3

# Markup off: statements, comments and names are shown as written, brackets and all.
out = Console(markup=False, highlight=False, emoji=False)
err = Console(stderr=True, markup=False, highlight=False, emoji=False)


class Failure(Exception):
    def __init__(self, code: int, message: str, body: Any = None) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.body = body


def fail(as_json: bool, failure: Failure) -> NoReturn:
    if as_json and failure.body is not None:
        out.print(json.dumps(failure.body, ensure_ascii=False, indent=2), soft_wrap=True)
    err.print(f"error: {failure.message}", soft_wrap=True)
    raise typer.Exit(failure.code)


def print_json(answer: Any) -> None:
    out.print(json.dumps(answer, ensure_ascii=False, indent=2), soft_wrap=True)


def when(value: str | None) -> str:
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(SHANGHAI).strftime("%Y-%m-%d %H:%M")


def show_entry(entry: dict[str, Any]) -> None:
    out.print(f"accepted: {entry['detail']}", soft_wrap=True)
    table = Table("at (Beijing)", "kind", "by", "role", "signal")
    table.add_row(
        when(entry["at"]),
        entry["kind"],
        entry.get("actor") or "",
        entry.get("role") or "",
        entry.get("signal") or "",
    )
    out.print(table)
