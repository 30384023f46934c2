"""How far back each sweep of the history sweeper looks (yuqing.audit.sweeper.run_sweeper), on
a clock of the test's own: the first over the retention, then a short look back before the
previous sweep, and once every OVERLAP a look back OVERLAP before the previous such sweep, so a
run visibility showed late is still listed. (The sweeps themselves: test_record_at_rest.py.)"""

from __future__ import annotations

import asyncio
import itertools
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from yuqing.audit import sweeper
from yuqing.audit.sweeper import OVERLAP, QUICK_LOOKBACK, Swept

START = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
RETENTION = timedelta(days=3)


async def test_each_sweep_looks_back_far_enough(monkeypatch: pytest.MonkeyPatch) -> None:
    every = timedelta(seconds=10)
    clock = [START]
    asked: list[tuple[datetime, datetime]] = []  # (when, since)
    failing: set[int] = {7}  # this sweep's run is not archived: the next look back to it

    class Clock(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return clock[0]

    async def sweep(
        client: Any, pool: Any, since: datetime, *, lookback: timedelta = OVERLAP
    ) -> Swept:
        began = clock[0]
        asked.append((began, since))
        swept = Swept(next_since=began - lookback, began=began)
        if len(asked) in failing:
            assert swept.next_since is not None
            swept.next_since = min(swept.next_since, began - timedelta(minutes=5))
        return swept

    async def retention(client: Any) -> timedelta:
        return RETENTION

    sweeps = 200

    async def sleep(seconds: float) -> None:
        if len(asked) >= sweeps:
            raise asyncio.CancelledError
        clock[0] += timedelta(seconds=seconds)

    monkeypatch.setattr(sweeper, "datetime", Clock)
    monkeypatch.setattr(sweeper, "sweep", sweep)
    monkeypatch.setattr(sweeper, "retention", retention)
    monkeypatch.setattr(sweeper.asyncio, "sleep", sleep)
    with pytest.raises(asyncio.CancelledError):
        await sweeper.run_sweeper(None, None, every=every)  # type: ignore[arg-type]

    quick = QUICK_LOOKBACK
    assert asked[0] == (START, START - RETENTION)
    # Every sweep looks back at least `quick` before the previous one began.
    for (before, _), (_, since) in itertools.pairwise(asked):
        assert since <= before - quick
    # One sweep every OVERLAP (give or take an interval) looks back OVERLAP before the
    # previous such one began; the others, not much further than `quick`.
    full = [0]
    for n, (_, since) in enumerate(asked[1:], start=1):
        if since <= asked[full[-1]][0] - OVERLAP:
            full.append(n)
    assert len(full) >= 1 + (asked[-1][0] - START) // (OVERLAP + every)
    for a, b in itertools.pairwise(full):
        assert OVERLAP <= asked[b][0] - asked[a][0] <= OVERLAP + every
    # The sweep after the failed one looks back to the run it could not archive.
    assert asked[7][1] <= asked[6][0] - timedelta(minutes=5)
    # Any run closed at T and listed by visibility up to OVERLAP later is asked for by a sweep
    # that began once visibility had it (the first full one after, at the latest).
    for minutes in range(0, 20):
        closed = START + timedelta(minutes=minutes, seconds=7)
        seen = closed + OVERLAP - timedelta(seconds=1)
        if seen > asked[-1][0]:
            break
        assert any(when >= seen and since <= closed for when, since in asked)
