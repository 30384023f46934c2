"""How the payload codec's deflate dictionary 1 (`yuqing/payload_dictionaries/1.txt`) was made.

    python -m bench.dictionary tests/histories/*-lean*.json tests/histories/*plan*.json \
        tests/histories/console_*.json tests/histories/delivery_*.json > dictionary.txt

(dictionary 1: the histories of the lean shape, hist-lean-history, and of plan's, console's and
delivery's scenarios, as they were on 2026-12-01.)

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


def build(paths: list[str]) -> bytes:
    seen: Counter[str] = Counter()
    for path in paths:
        history = History()
        with open(path, encoding="utf-8") as source:
            json_format.Parse(source.read(), history, ignore_unknown_fields=True)
        for event in history.events:
            for payload in walk_payloads(event):
                if payload.metadata.get("encoding") != b"json/plain":
                    continue
                try:
                    value = json.loads(payload.data)
                except ValueError:
                    continue
                text = json.dumps(skeleton(value), ensure_ascii=False, separators=(",", ":"))
                if len(text) <= 4000:  # a configuration's skeleton would crowd out the rest
                    seen[text] += 1
    # The commonest last: deflate finds what is nearer more cheaply.
    ordered = sorted(seen, key=lambda text: (seen[text], text))
    return "".join(ordered).encode()[-SIZE:]


def main() -> None:
    sys.stdout.buffer.write(build(sys.argv[1:]))


if __name__ == "__main__":
    main()
