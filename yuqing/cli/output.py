"""How the commands show what they got: JSON as it came, times in Beijing time, tables that
fit a terminal without cutting names short."""

from __future__ import annotations

import json
import sys
from datetime import datetime
from typing import TYPE_CHECKING, Any
from zoneinfo import ZoneInfo

if TYPE_CHECKING:
    from rich.console import Console
    from rich.table import Table


# Where the bureau works (as yuqing.working_time.SHANGHAI, without importing the calendar).
BEIJING = ZoneInfo("Asia/Shanghai")


def print_json(answer: Any) -> None:
    sys.stdout.write(json.dumps(answer, ensure_ascii=False, indent=2) + "\n")


def line(text: str) -> None:
    sys.stdout.write(text + "\n")


def when(value: str | None) -> str:
    """An API time as the bureau reads it: Beijing time, to the minute."""
    if not value:
        return ""
    return datetime.fromisoformat(value).astimezone(BEIJING).strftime("%Y-%m-%d %H:%M")


def console() -> Console:
    from rich.console import Console

    # Markup off: statements, comments and names are shown as written, brackets and all.
    return Console(markup=False, highlight=False, emoji=False)


def table(*columns: str, title: str | None = None, wrap: tuple[str, ...] = ()) -> Table:
    """A table whose columns keep names whole (identifiers, times) and wrap only the `wrap`
    ones (free text), so nothing is cut to `…` in 80 columns."""
    from rich import box
    from rich.table import Table

    shown = Table(title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for name in columns:
        if name in wrap:
            shown.add_column(name, overflow="fold", ratio=1)
        else:
            shown.add_column(name, no_wrap=True)
    return shown


def show_entry(entry: dict[str, Any]) -> None:
    """A decision the incident took: what it decided, then who, as what, and when."""
    line(f"accepted: {entry['detail']}")
    who = entry.get("actor") or ""
    if entry.get("role"):
        who += f" ({entry['role']})"
    facts = [f"{entry.get('signal') or entry['kind']}", who, f"at {when(entry['at'])} (Beijing)"]
    line("  " + " · ".join(fact for fact in facts if fact.strip()))
