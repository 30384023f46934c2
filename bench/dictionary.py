"""How the payload codec's deflate dictionary 1 (`yuqing/payload_dictionaries/1.txt`) was made.

    python -m bench.dictionary tests/histories/*-lean*.json tests/histories/*plan*.json \
        tests/histories/console_*.json tests/histories/delivery_*.json > dictionary.txt

(dictionary 1: the histories of the lean shape, hist-lean-history, and of plan's, console's and
delivery's scenarios, as they were on 2026-12-01.) Dictionary 2 (`2.txt`, format 3's) is the
same made with `--with-phrases` first, from the same globs on 2026-12-01 22:00 UTC (the
`-leaner` histories among them): the skeletons, then the English phrases the workflow writes
itself (see `phrases`).

A preset dictionary lets deflate shrink even a small payload (a trail line, a memo, a notice's
input) by referring to the JSON it is made of: field names, enum values, `null`s, the shape
of a timestamp. It is built from the *skeletons* of the payloads of recorded histories: every
free text, name, number and id is blanked, only field names and values from fixed sets (kinds,
stages, grades, roles, message keys) stay, so it holds nothing of any incident.

A dictionary is part of the format: a payload deflated with dictionary 1 inflates only with
those exact bytes, so 1.txt never changes (tests/test_codec.py pins its digest). A better one
would be dictionary 2, with its own flag in the envelope (yuqing/codec.py).
"""

from __future__ import annotations

import json
import re
import sys
from collections import Counter
from typing import Any

from google.protobuf import json_format
from temporalio.api.history.v1 import History

from yuqing.codec import walk_payloads

SIZE = 32 * 1024  # deflate's window: what lies further back cannot be referred to
_TIME = re.compile(r"^\d{4}-\d\d-\d\dT")
# Values from fixed sets: lower-case words joined by '_' (kinds, stages, roles), message keys.
_FIXED = re.compile(r"^(msg\.)?[a-z]+(_[a-z]+)*$")
_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


def skeleton(value: Any) -> Any:
    if isinstance(value, dict):
        # A map's keys may be ids (people, units): those are blanked as well.
        return {(key if _NAME.match(key) else ""): skeleton(item) for key, item in value.items()}
    if isinstance(value, list):
        return [skeleton(item) for item in value[:2]]
    if isinstance(value, str):
        if _TIME.match(value):
            return "2000-01-01T00:00:00.000000Z"
        return value if _FIXED.match(value) and len(value) <= 40 else ""
    if isinstance(value, bool) or value is None:
        return value
    return 0


def _histories(paths: list[str]) -> list[History]:
    found = []
    for path in paths:
        history = History()
        with open(path, encoding="utf-8") as source:
            json_format.Parse(source.read(), history, ignore_unknown_fields=True)
        found.append(history)
    return found


def _values(history: History) -> list[tuple[bool, Any]]:
    """(is it an input people sent, its JSON) of every JSON payload of a history."""
    found = []
    for event in history.events:
        sent = (
            event.HasField("workflow_execution_started_event_attributes")
            or event.HasField("workflow_execution_update_accepted_event_attributes")
            or event.HasField("workflow_execution_signaled_event_attributes")
        )
        for payload in walk_payloads(event):
            if payload.metadata.get("encoding") != b"json/plain":
                continue
            try:
                found.append((sent, json.loads(payload.data)))
            except ValueError:
                continue
    return found


def build(paths: list[str]) -> bytes:
    """Dictionary 1: the skeletons alone."""
    return _skeletons(_histories(paths))[-SIZE:]


def _skeletons(histories: list[History]) -> bytes:
    seen: Counter[str] = Counter()
    for history in histories:
        for _, value in _values(history):
            text = json.dumps(skeleton(value), ensure_ascii=False, separators=(",", ":"))
            if len(text) <= 4000:  # a configuration's skeleton would crowd out the rest
                seen[text] += 1
    # The commonest last: deflate finds what is nearer more cheaply.
    ordered = sorted(seen, key=lambda text: (seen[text], text))
    return "".join(ordered).encode()


# Dictionary 2 adds the English the workflow writes itself: its trail lines' details ("draft
# v1 waiting at", "recorded for 1 recipient(s); no channel is configured"), the policy's
# deadline and step titles in the memo and the clocks. Only runs of printable ASCII with a
# space, digits and what holds them (ids, times, versions) cut out, found in at least two
# payloads, never in what people sent (a report, a decision: none of their words), and none
# naming an id of the roster (people, units).
_PHRASE_SPLIT = re.compile(r"[^\x20-\x7e]+")
_WITH_DIGITS = re.compile(r"\S*\d\S*")
PHRASES_AT_MOST = 4096
_ID = re.compile(r"[a-z]+(?:[.-][a-z]+)+")


def _strings(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [s for item in value.values() for s in _strings(item)]
    if isinstance(value, list):
        return [s for item in value for s in _strings(item)]
    return [value] if isinstance(value, str) else []


def phrases(histories: list[History], roster: str) -> bytes:
    sent_text: list[str] = []
    counted: Counter[str] = Counter()
    for history in histories:
        for sent, value in _values(history):
            for text in _strings(value):
                if sent:
                    sent_text.append(text)
                    continue
                for part in _PHRASE_SPLIT.split(text):
                    part = _WITH_DIGITS.sub("", part).strip()
                    if len(part) >= 8 and " " in part:
                        counted[part] += 1
    said = "\n".join(sent_text)
    ids = set(_ID.findall(roster))  # people's and units' ids: zhou.min, xixiangtang-branch
    kept = [
        p
        for p, n in counted.items()
        if n >= 2 and p not in said and not ids & set(_ID.findall(p.lower()))
    ]
    kept.sort(key=lambda p: (counted[p], p))  # the commonest last, as the skeletons
    out = b""
    for phrase in reversed(kept):
        if len(out) + len(phrase) > PHRASES_AT_MOST:
            break
        out = phrase.encode() + out
    return out


def build_2(paths: list[str], roster: str) -> bytes:
    """Dictionary 2: dictionary 1's skeletons, then the workflow's own English phrases."""
    histories = _histories(paths)
    tail = phrases(histories, roster)
    return (_skeletons(histories) + tail)[-SIZE:]


def main() -> None:
    args = sys.argv[1:]
    if args and args[0] == "--with-phrases":  # dictionary 2
        from yuqing.settings import PROJECT_ROOT

        roster = (PROJECT_ROOT / "config" / "roster.toml").read_text(encoding="utf-8").lower()
        sys.stdout.buffer.write(build_2(args[1:], roster))
        return
    sys.stdout.buffer.write(build(args))


if __name__ == "__main__":
    main()
