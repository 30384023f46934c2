"""CPU time and memory of the stack's processes, read from /proc (Linux).

A server counts with every process under it: PostgreSQL forks a backend per connection, so its
CPU is the postmaster's, its live children's, and what the children that already ended left in
the postmaster's `cutime`/`cstime`.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

_TICK = os.sysconf("SC_CLK_TCK")
_PAGE = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Stat:
    pid: int
    ppid: int
    cpu: float  # seconds, user + system, of the process itself
    reaped: float  # seconds its ended children used (cutime + cstime)
    rss: int  # bytes


def _stat(pid: int) -> Stat | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name is in parentheses and may hold spaces: split after its closing one.
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 of proc(5) (state): field n is fields[n - 3].
    utime, stime, cutime, cstime = (int(fields[n - 3]) for n in (14, 15, 16, 17))
    return Stat(
        pid=pid,
        ppid=int(fields[4 - 3]),
        cpu=(utime + stime) / _TICK,
        reaped=(cutime + cstime) / _TICK,
        rss=int(fields[24 - 3]) * _PAGE,
    )


def _all() -> dict[int, Stat]:
    found = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            stat = _stat(int(entry))
            if stat is not None:
                found[stat.pid] = stat
    return found


def tree_cpu(root: int) -> float:
    """CPU seconds used so far by `root` and everything under it, ended children included."""
    stats = _all()
    if root not in stats:
        return 0.0
    children: dict[int, list[int]] = {}
    for stat in stats.values():
        children.setdefault(stat.ppid, []).append(stat.pid)
    total = 0.0
    todo = [root]
    while todo:
        pid = todo.pop()
        stat = stats[pid]
        total += stat.cpu + stat.reaped
        todo.extend(children.get(pid, ()))
    return total


def children_of(pid: int) -> list[int]:
    return [stat.pid for stat in _all().values() if stat.ppid == pid]


def rss(pid: int) -> int:
    """Resident memory of one process, in bytes (0 if it is gone)."""
    stat = _stat(pid)
    return 0 if stat is None else stat.rss


def load_average() -> tuple[float, float, float]:
    one, five, fifteen = os.getloadavg()
    return one, five, fifteen


class CpuMeter:
    """CPU seconds each named process tree used between `start()` and `stop()`."""

    def __init__(self, roots: dict[str, int]) -> None:
        self.roots = roots
        self._before: dict[str, float] = {}

    def start(self) -> None:
        self._before = {name: tree_cpu(pid) for name, pid in self.roots.items()}

    def stop(self) -> dict[str, float]:
        return {name: tree_cpu(pid) - self._before[name] for name, pid in self.roots.items()}
