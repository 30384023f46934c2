"""Configuration files parsed once per version, not once per incident.

Every incident's `load_configuration` reads the policy, the roster, the authorization file and
the keys; parsing and validating them each time cost the worker about 2 % of its time (issue 9).
A file is parsed again only when its bytes change (their digest is the key: reading and hashing
a few kilobytes costs microseconds, parsing and validating them milliseconds), so an edited or
replaced file is taken at the next incident, as before.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T")

_PARSED: dict[tuple[Any, ...], Any] = {}
_DIGESTS: dict[int, tuple[Any, str]] = {}


def parsed(loader: Callable[[Path], T], path: Path) -> T:
    """`loader(path)`, from this process's cache while the file is unchanged."""
    try:
        content = Path(path).read_bytes()
    except OSError:
        return loader(path)  # let the loader say what is wrong, in its words
    key = (loader, str(path), hashlib.sha256(content).digest())
    if key not in _PARSED:
        if len(_PARSED) > 64:  # old versions of edited files: never many, but never kept forever
            _PARSED.clear()
        _PARSED[key] = loader(path)
    found: T = _PARSED[key]
    return found


def digest_of(model: T, compute: Callable[[T], str]) -> str:
    """`compute(model)`, once per parsed object (the cache above hands out the same one)."""
    kept = _DIGESTS.get(id(model))
    if kept is not None and kept[0] is model:
        return kept[1]
    if len(_DIGESTS) > 64:
        _DIGESTS.clear()
    value = compute(model)
    _DIGESTS[id(model)] = (model, value)
    return value


_RECENT: dict[tuple[Any, ...], tuple[float, Any]] = {}


def file_key(path: Path | None) -> bytes | None:
    """What identifies a file's version: the digest of its bytes (None: no file)."""
    if path is None:
        return None
    try:
        return hashlib.sha256(Path(path).read_bytes()).digest()
    except OSError:
        return None


def recent(key: tuple[Any, ...], compute: Callable[[], T], *, seconds: float = 60.0) -> T:
    """`compute()`, reused for `seconds` while `key` (its inputs) is the same: for what also
    depends on the date (the working calendar's years), so that a new day is seen within a
    minute and an edited file at once."""
    now = time.monotonic()
    kept = _RECENT.get(key)
    if kept is not None and now - kept[0] < seconds:
        found: T = kept[1]
        return found
    if len(_RECENT) > 64:
        _RECENT.clear()
    value = compute()
    _RECENT[key] = (now, value)
    return value
