"""How many incidents a worker keeps in its sticky cache: sized from the memory it may use.

A cached incident answers its next signal, timer or update from memory; an evicted one is
replayed from its whole history first (the SDK's default cache of 1,000 evicted, with 10,000
incidents parked, 9,140 times, 140 of them in the middle of an intake). So the cache should hold
every incident the worker has open, as far as its memory allows.

- `YUQING_STICKY_CACHE` (a number) sets it outright;
- otherwise half the worker's memory limit (the cgroup's, in a container; else the machine's,
  or `YUQING_WORKER_MEMORY_MIB`) divided by what one cached incident costs (`PER_INCIDENT_MIB`,
  measured by `bench/`'s parked section), between `SMALLEST` and `LARGEST`.

`bench/RESULTS.md` has the measured cost per incident; deploy/README.md "Sizing" says what to
give a worker for a given number of open incidents. An evicted incident is not lost: it is
replayed from its history at its next task (a parked one's: ~30 ms of CPU), and since the cache
evicts the incident idle longest, one in the middle of its intake is evicted only if the cache
is smaller than the intakes under way at once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

CACHE_ENV = "YUQING_STICKY_CACHE"
MEMORY_ENV = "YUQING_WORKER_MEMORY_MIB"
# What one parked, cached incident adds to the worker's RSS: 0.26–0.30 MiB since the workflow
# modules are passed through and the configuration shared (0.47–0.52 MiB before); 302 KiB with
# 10,000 cached on 4 December, the bare Temporal worker's 285 KiB (bench/RESULTS.md): no
# headroom left above it. About 0.15 MiB of it is the SDK's own (sdk-core's state of the run).
PER_INCIDENT_MIB = 0.3
SHARE = 0.5  # of the memory limit, for the cache; the rest is the process and its bursts
SMALLEST = 500
LARGEST = 20_000

_CGROUP_LIMITS = (
    Path("/sys/fs/cgroup/memory.max"),  # cgroup v2
    Path("/sys/fs/cgroup/memory/memory.limit_in_bytes"),  # cgroup v1
)


@dataclass(frozen=True)
class CacheSize:
    size: int
    why: str


def _cgroup_limit() -> int | None:
    for path in _CGROUP_LIMITS:
        try:
            text = path.read_text().strip()
        except OSError:
            continue
        if text.isdigit() and int(text) < 2**60:  # v1 says "no limit" with a huge number
            return int(text)
    return None


def _machine_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")


def sticky_cache_size(env: Mapping[str, str] | None = None) -> CacheSize:
    env = os.environ if env is None else env
    given = env.get(CACHE_ENV, "").strip()
    if given:
        if not given.isdigit() or int(given) < 1:
            raise ValueError(f"{CACHE_ENV}={given!r}: give the number of incidents (1 or more)")
        return CacheSize(int(given), f"{CACHE_ENV}")
    memory_mib = env.get(MEMORY_ENV, "").strip()
    if memory_mib:
        if not memory_mib.isdigit():
            raise ValueError(f"{MEMORY_ENV}={memory_mib!r}: give the memory in MiB")
        limit, source = int(memory_mib) * 2**20, MEMORY_ENV
    else:
        cgroup = _cgroup_limit()
        limit, source = (cgroup, "the cgroup's limit") if cgroup else (_machine_memory(), "RAM")
    fits = int(limit * SHARE / (PER_INCIDENT_MIB * 2**20))
    size = max(SMALLEST, min(LARGEST, fits))
    return CacheSize(size, f"{SHARE:.0%} of {limit / 2**30:.1f} GiB ({source})")
