"""Configuration files (policy, roster, channels, tokens): TOML read into a pydantic model.

Each is checked whole when read; an error names the file and every entry that is wrong, so an
operator can mend it without guessing.
"""

from __future__ import annotations

import tomllib
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

M = TypeVar("M", bound=BaseModel)
Describe = Callable[[ValidationError, dict[str, Any]], str]


def load_toml_model(
    path: Path,
    model: type[M],
    *,
    what: str,
    error: type[ValueError],
    missing_hint: str = "",
    describe: Describe | None = None,
) -> M:
    """`path` read as TOML into `model`; `error` (naming `what` file) when it cannot be."""
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise error(f"{what} file {path} does not exist{missing_hint}") from err
    except tomllib.TOMLDecodeError as err:
        raise error(f"{what} file {path} is not valid TOML: {err}") from err
    try:
        return model.model_validate(data)
    except ValidationError as err:
        problems = (describe or entry_problems)(err, data)
        raise error(f"{what} file {path} is invalid:\n{problems}") from err


def entry_problems(err: ValidationError, data: dict[str, Any]) -> str:
    """One line per problem, e.g. `  chains.major.1.role: Input should be 'office', ...`."""
    lines = []
    for problem in err.errors():
        where = ".".join(str(part) for part in problem["loc"]) or "(top level)"
        lines.append(f"  {where}: {problem['msg']}")
    return "\n".join(lines)
