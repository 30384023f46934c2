"""Where a history's bytes go: per kind of event (activities by name), and what the payload
codec adds to each payload.

    python -m bench.anatomy HISTORY.json             # a history as `temporal workflow show -o json`
                                                     # or tests/histories/*.json writes it

The bench prints the same for one of the incidents it ran (`--anatomy`), so that a history that
grows says where: a configuration carried whole, trail inputs, memos, the codec's envelope.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from google.protobuf import json_format
from temporalio.api.common.v1 import Payload
from temporalio.api.enums.v1 import EventType
from temporalio.api.history.v1 import History, HistoryEvent

from yuqing.codec import EncryptionCodec, KeyRing, PayloadKeyError, is_encrypted, walk_payloads


@dataclass
class Anatomy:
    events: int = 0
    bytes: int = 0
    # kind -> (count, bytes as stored)
    kinds: Counter[str] = field(default_factory=Counter)
    counts: Counter[str] = field(default_factory=Counter)
    payloads: int = 0
    payload_bytes: int = 0  # as stored (encrypted, when they are)
    plain_bytes: int = 0  # the same payloads, decrypted
    encrypted: int = 0

    @property
    def codec_overhead(self) -> int:
        return self.payload_bytes - self.plain_bytes

    def describe(self, top: int = 14) -> str:
        lines = [f"{self.events} events, {self.bytes} bytes"]
        for kind, size in self.kinds.most_common(top):
            lines.append(f"  {size:7d} B  {self.counts[kind]:3d} x {kind}")
        if self.payloads:
            lines.append(
                f"  payloads: {self.payloads} ({self.encrypted} encrypted),"
                f" {self.payload_bytes} B stored, {self.plain_bytes} B plain:"
                f" the codec adds {self.codec_overhead} B"
                f" ({self.codec_overhead / max(1, self.encrypted):.0f} B per encrypted payload)"
            )
        return "\n".join(lines)

    def to_json(self) -> dict[str, object]:
        return {
            "events": self.events,
            "bytes": self.bytes,
            "kinds": {k: [self.counts[k], v] for k, v in self.kinds.most_common()},
            "payloads": self.payloads,
            "encrypted": self.encrypted,
            "payload_bytes": self.payload_bytes,
            "plain_bytes": self.plain_bytes,
        }


def _kind(event: HistoryEvent, activities: dict[int, str]) -> str:
    name = EventType.Name(event.event_type).removeprefix("EVENT_TYPE_").lower()
    if event.HasField("activity_task_scheduled_event_attributes"):
        attributes = event.activity_task_scheduled_event_attributes
        activities[event.event_id] = attributes.activity_type.name
        return f"{name} {attributes.activity_type.name}"
    for field_name in (
        "activity_task_completed_event_attributes",
        "activity_task_failed_event_attributes",
        "activity_task_started_event_attributes",
    ):
        if event.HasField(field_name):
            scheduled = getattr(event, field_name).scheduled_event_id
            return f"{name} {activities.get(scheduled, '?')}"
    if event.HasField("marker_recorded_event_attributes"):
        return f"{name} {event.marker_recorded_event_attributes.marker_name}"
    return name


def _payloads(event: HistoryEvent) -> Iterable[Payload]:
    return walk_payloads(event)


def anatomy(history: History, codec: EncryptionCodec | None = None) -> Anatomy:
    found = Anatomy(events=len(history.events), bytes=history.ByteSize())
    activities: dict[int, str] = {}
    for event in history.events:
        kind = _kind(event, activities)
        found.kinds[kind] += event.ByteSize()
        found.counts[kind] += 1
        for payload in _payloads(event):
            found.payloads += 1
            stored = payload.ByteSize()
            found.payload_bytes += stored
            if is_encrypted(payload) and codec is not None:
                found.encrypted += 1
                found.plain_bytes += codec.decrypt(payload).ByteSize()
            else:
                found.plain_bytes += stored
    return found


def load(path: str) -> History:
    history = History()
    with open(path, encoding="utf-8") as source:
        json_format.Parse(source.read(), history, ignore_unknown_fields=True)
    return history


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.anatomy", description=__doc__)
    parser.add_argument("history", help="a history in Temporal's JSON form")
    args = parser.parse_args(argv)
    try:
        codec: EncryptionCodec | None = EncryptionCodec(KeyRing.from_environ())
    except PayloadKeyError:  # without keys, encrypted payloads are counted as stored
        codec = None
    sys.stdout.write(anatomy(load(args.history), codec).describe(top=40) + "\n")


if __name__ == "__main__":
    main()
