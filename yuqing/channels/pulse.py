"""A delivery attempt's heartbeats, begun only once the attempt has run for a while.

A notice or statement attempt heartbeats so that, if its worker dies, Temporal hands the
attempt to another worker within the heartbeat timeout (workflows/delivery.py). An attempt
that ends within seconds does not need to heartbeat.

perf (issue 9): the SDK sends an attempt's first heartbeat to Temporal at once and throttles
only the later ones (by its metrics, an attempt that ended at once sent one heartbeat whether
it called for one or five). Each
heartbeat sent costs Temporal a write of the workflow's state, measured at 2.5 to 5 ms of its
CPU (six activities with one heartbeat each, beside six without, 200 workflows, three rounds).
A general incident has six delivery attempts (three notices, three statements), and they
usually end in milliseconds.

So an attempt's first heartbeat waits until `BEAT_AFTER` of its heartbeat timeout has passed
since the attempt began; from then on, every call heartbeats and the SDK throttles them as
before. A copy takes at most `MAX_DEADLINE_SECONDS` plus `OVERRUN_SECONDS`, so the first
heartbeat comes within 3 + 22 s of a 30 s timeout, leaving 5 s for the database (a test holds
the three to that).
"""

from __future__ import annotations

from time import monotonic

from temporalio import activity

# Of the attempt's heartbeat timeout: how long it runs before its first heartbeat.
BEAT_AFTER = 1 / 10
# With no heartbeat timeout (a heartbeat then only lets a cancellation through).
BEAT_AFTER_SECONDS = 3.0


class Pulse:
    """One attempt's heartbeats; make it as the attempt begins, call `beat` after each copy."""

    def __init__(self) -> None:
        timeout = activity.info().heartbeat_timeout
        self.after = timeout.total_seconds() * BEAT_AFTER if timeout else BEAT_AFTER_SECONDS
        self._began = monotonic()
        self._beating = False

    def beat(self, *details: object) -> None:
        """Heartbeat (with `details`) once `after` seconds have passed since the attempt
        began, and at every call from then on."""
        if not self._beating:
            if monotonic() - self._began < self.after:
                return
            self._beating = True
        activity.heartbeat(*details)
