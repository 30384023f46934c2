"""One story, one incident: the intake key that decides an incident's id.

A report that carries the address of what it is about (the Weibo post, the forum thread) is
keyed by that address, normalised, whatever channel brought it: the monitoring system and an
e-mail about the same post land in one incident. Without an address, the channel and the
channel's own id (a hotline ticket number, a message id) key it.
"""

from __future__ import annotations

import hashlib
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

# Query parameters that say how a link was shared, not what it points to.
_TRACKING = ("utm_", "spm", "from", "share", "isappinstalled", "scene", "vd_source")


def normalise_url(url: str) -> str:
    parts = urlsplit(url.strip())
    if not parts.scheme or not parts.netloc:
        raise ValueError(f"{url!r} is not an absolute URL")
    host = parts.netloc.lower().removeprefix("www.").removeprefix("m.")
    query = [
        (k, v)
        for k, v in parse_qsl(parts.query, keep_blank_values=True)
        if not k.lower().startswith(_TRACKING)
    ]
    path = parts.path.rstrip("/") or "/"
    return urlunsplit(("https", host, path, urlencode(sorted(query)), ""))


def intake_key(channel: str, *, external_id: str | None = None, url: str | None = None) -> str:
    if url:
        return f"url:{normalise_url(url)}"
    if external_id and external_id.strip():
        return f"{channel}:{external_id.strip().lower()}"
    raise ValueError("an intake needs the story's URL or the channel's own id for it")


def incident_id_for(key: str) -> str:
    """A stable incident id for an intake key (readable prefix, hashed rest)."""
    return "yq-" + hashlib.sha256(key.encode("utf-8")).hexdigest()[:16]
