"""A delivery attempt's heartbeat, sent only once the attempt has run for a while.

A notice or statement attempt heartbeats so that, if its worker dies, Temporal hands the
attempt to another worker within the heartbeat timeout (workflows/delivery.py). An attempt
that ends within seconds does not need to heartbeat.

perf (issue 9): the SDK throttles only the later heartbeats of an attempt, and sends the first
one to Temporal at once. Each one costs Temporal a write of the workflow's state, measured at
2.5 to 5 ms of its CPU (six attempts with one heartbeat each, beside six without, 200
workflows, three rounds). A general incident has six delivery attempts (three notices, three
statements), and they usually end in milliseconds.

So an attempt heartbeats only once `BEAT_AFTER` of its heartbeat timeout has passed since it
began or since it last heartbeated. A copy takes at most `MAX_DEADLINE_SECONDS` (20 s) plus
`OVERRUN_SECONDS` (2 s). With a 30 s timeout the threshold is 5 s, so a heartbeat still comes
within 5 + 22 s, inside the timeout.
"""

from __future__ import annotations

from time import monotonic

from temporalio import activity

# Of the attempt's heartbeat timeout: how long it runs before it heartbeats.
BEAT_AFTER = 1 / 6
# With no heartbeat timeout (a heartbeat then only lets a cancellation through).
BEAT_AFTER_SECONDS = 5.0


class Pulse:
    """One attempt's heartbeats. Each call to `beat` heartbeats only if it is due."""

    def __init__(self) -> None:
        timeout = activity.info().heartbeat_timeout
        self.every = timeout.total_seconds() * BEAT_AFTER if timeout else BEAT_AFTER_SECONDS
        self._last = monotonic()

    def beat(self, *details: object) -> bool:
        """Heartbeat (with `details`) if `every` seconds have passed since the attempt began or
        last heartbeated; whether it did."""
        now = monotonic()
        if now - self._last < self.every:
            return False
        activity.heartbeat(*details)
        self._last = now
        return True
