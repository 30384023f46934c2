"""The bench's table: each figure the median over the runs (the spread beside it), Yuqing beside
bare, their ratio, and the target issue 9 sets for it."""

from __future__ import annotations

import math
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

Run = dict[str, Any]


@dataclass(frozen=True)
class Row:
    label: str
    yuqing: Callable[[Run], float | None]
    bare: Callable[[Run], float | None] | None
    unit: str
    # The ratio the target allows (yuqing / bare, or yuqing alone when there is no bare), and
    # whether higher is better (throughput) or lower (costs).
    target: float | None = None
    higher_is_better: bool = False
    absolute: bool = False  # the target applies to the Yuqing figure itself, not a ratio


def _get(*path: str) -> Callable[[Run], float | None]:
    def read(run: Run) -> float | None:
        value: Any = run
        for key in path:
            if not isinstance(value, dict) or key not in value:
                return None
            value = value[key]
        return float(value)

    return read


def _per_kib(*path: str) -> Callable[[Run], float | None]:
    read = _get(*path)

    def kib(run: Run) -> float | None:
        value = read(run)
        return None if value is None else value / 1024

    return kib


def _mib(*path: str) -> Callable[[Run], float | None]:
    read = _get(*path)

    def mib(run: Run) -> float | None:
        value = read(run)
        return None if value is None else value / 2**20

    return mib


def rows(settings: dict[str, Any]) -> list[Row]:
    n, c = settings.get("count"), settings.get("concurrency")
    parked = settings.get("parked")
    cache = settings.get("parked_cache")
    # A cache smaller than the count evicts by design: then the misses are the target, not
    # the evictions.
    holds_all = not cache or parked is None or cache >= parked
    return [
        Row(
            f"full general lifecycle, N={n} at C={c}, incidents/s",
            _get("lifecycle", "yuqing", "throughput"),
            _get("lifecycle", "bare", "throughput"),
            "/s",
            0.9,
            higher_is_better=True,
        ),
        Row(
            "worker CPU per incident",
            _get("lifecycle", "yuqing", "cpu_ms", "worker"),
            _get("lifecycle", "bare", "cpu_ms", "bare"),
            "ms",
            1.25,
        ),
        Row(
            "Temporal server CPU per incident",
            _get("lifecycle", "yuqing", "cpu_ms", "temporal"),
            _get("lifecycle", "bare", "cpu_ms", "temporal"),
            "ms",
        ),
        Row(
            "PostgreSQL CPU per incident (the bare one has no database)",
            _get("lifecycle", "yuqing", "cpu_ms", "postgres"),
            None,
            "ms",
        ),
        Row(
            "history events per incident",
            _get("lifecycle", "yuqing", "history_events"),
            _get("lifecycle", "bare", "history_events"),
            "",
        ),
        Row(
            "history bytes per incident",
            _per_kib("lifecycle", "yuqing", "history_bytes"),
            _per_kib("lifecycle", "bare", "history_bytes"),
            "KiB",
            1.5,
        ),
        Row(
            "  one closed history read whole (the archive's, once per incident), Temporal CPU",
            _get("lifecycle", "yuqing", "history_read_server_ms"),
            _get("lifecycle", "bare", "history_read_server_ms"),
            "ms",
        ),
        Row(
            "one lifecycle, p50 (driver's view)",
            _get("lifecycle", "yuqing", "lifecycle_p50_ms"),
            _get("lifecycle", "bare", "lifecycle_p50_ms"),
            "ms",
        ),
        Row(
            "one approval, HTTP API vs bare execute_update, C=1 p50",
            _get("approval_c1", "yuqing", "p50_ms"),
            _get("approval_c1", "bare", "p50_ms"),
            "ms",
            1.5,
        ),
        Row(
            "  C=1 p99",
            _get("approval_c1", "yuqing", "p99_ms"),
            _get("approval_c1", "bare", "p99_ms"),
            "ms",
        ),
        Row(
            "  C=1 p50, Yuqing through its Temporal client (no HTTP)",
            _get("approval_c1", "client", "p50_ms"),
            _get("approval_c1", "bare", "p50_ms"),
            "ms",
        ),
        Row(
            "one approval, C=10 p50",
            _get("approval_c10", "yuqing", "p50_ms"),
            _get("approval_c10", "bare", "p50_ms"),
            "ms",
            1.5,
        ),
        Row(
            "  C=10 p99",
            _get("approval_c10", "yuqing", "p99_ms"),
            _get("approval_c10", "bare", "p99_ms"),
            "ms",
        ),
        Row(
            "  C=10 p50, Yuqing through its Temporal client (no HTTP)",
            _get("approval_c10", "client", "p50_ms"),
            _get("approval_c10", "bare", "p50_ms"),
            "ms",
        ),
        Row(
            "POST /incidents -> 201 vs bare update-with-start, C=1 p50",
            _get("intake_c1", "yuqing", "p50_ms"),
            _get("intake_c1", "bare", "p50_ms"),
            "ms",
            2.0,
        ),
        Row(
            "  C=1 p99",
            _get("intake_c1", "yuqing", "p99_ms"),
            _get("intake_c1", "bare", "p99_ms"),
            "ms",
        ),
        Row(
            f"{parked} parked incidents: worker RSS",
            _mib("parked", "yuqing", "rss_after"),
            _mib("parked", "bare", "rss_after"),
            "MiB",
            1536,
            absolute=True,
        ),
        Row(
            "  RSS per cached parked incident"
            if holds_all
            else f"  RSS per parked incident ({cache} of them cached)",
            _per_kib("parked", "yuqing", "rss_per_incident"),
            _per_kib("parked", "bare", "rss_per_incident"),
            "KiB",
        ),
        Row(
            "  sticky cache size at the end",
            _get("parked", "yuqing", "cache_size"),
            _get("parked", "bare", "cache_size"),
            "",
        ),
        Row(
            "  forced evictions while parking (0 if the cache holds all)"
            if holds_all
            else f"  forced evictions while parking (expected: the cache holds {cache})",
            _get("parked", "yuqing", "evictions"),
            _get("parked", "bare", "evictions"),
            "",
            0 if holds_all else None,
            absolute=True,
        ),
        # An incident evicted before its intake was done is replayed at its next task, while
        # parking: a cache miss. One evicted once parked only replays when its timer fires.
        Row(
            "  cache misses while parking: replayed mid-intake (target 0)",
            _get("parked", "yuqing", "cache_misses"),
            _get("parked", "bare", "cache_misses"),
            "",
            0,
            absolute=True,
        ),
        # With a cache smaller than the count: one decision to an incident parked first
        # (evicted: replayed, then decided) beside one to an incident parked last (cached).
        Row(
            "  a decision to an evicted parked incident: worker CPU",
            _get("parked", "yuqing", "decision_evicted", "worker_cpu_ms"),
            _get("parked", "bare", "decision_evicted", "worker_cpu_ms"),
            "ms",
        ),
        Row(
            "    the same to a cached one",
            _get("parked", "yuqing", "decision_cached", "worker_cpu_ms"),
            _get("parked", "bare", "decision_cached", "worker_cpu_ms"),
            "ms",
        ),
        Row(
            "  a decision to an evicted parked incident: p50",
            _get("parked", "yuqing", "decision_evicted", "p50_ms"),
            _get("parked", "bare", "decision_evicted", "p50_ms"),
            "ms",
        ),
        Row(
            "    the same to a cached one",
            _get("parked", "yuqing", "decision_cached", "p50_ms"),
            _get("parked", "bare", "decision_cached", "p50_ms"),
            "ms",
        ),
        Row(
            "    cache misses among the evicted ones' decisions (all, if evicted)",
            _get("parked", "yuqing", "decision_evicted", "cache_misses"),
            _get("parked", "bare", "decision_evicted", "cache_misses"),
            "",
        ),
        Row(
            "  intake while parking, per second",
            _get("parked", "yuqing", "intake_per_s"),
            _get("parked", "bare", "intake_per_s"),
            "/s",
        ),
        Row(
            "`yuqing --help`, wall",
            _get("tools", "help", "wall_s"),
            None,
            "s",
            0.4,
            absolute=True,
        ),
        *_tool_rows("audit", f"`yuqing audit`, {settings.get('lines')} lines", 1.0),
        *_tool_rows(
            "replay", "`yuqing audit --replay` vs `bench.bare_replay`", 1.5, bare="bare_replay"
        ),
    ]


def _tool_rows(name: str, label: str, target: float, *, bare: str | None = None) -> list[Row]:
    """A command's wall time (the target), its CPU, and how busy the stack was meanwhile;
    beside the bare command's, if it has one."""

    def of_bare(figure: str) -> Callable[[Run], float | None] | None:
        return None if bare is None else _get("tools", bare, figure)

    return [
        Row(
            f"{label}, wall",
            _get("tools", name, "wall_s"),
            of_bare("wall_s"),
            "s",
            target,
            absolute=True,
        ),
        Row("  CPU of the command", _get("tools", name, "cpu_s"), of_bare("cpu_s"), "s"),
        Row(
            "  the stack's own CPU meanwhile, in cores (2 = the machine busy)",
            _get("tools", name, "stack_cores"),
            None,
            "",
        ),
    ]


def _median(values: list[float]) -> tuple[float | None, str]:
    values = [v for v in values if v is not None and not math.isnan(v)]
    if not values:
        return None, ""
    middle = statistics.median(values)
    spread = f" ({_num(min(values))}–{_num(max(values))})" if len(values) > 1 else ""
    return middle, spread


def _num(value: float) -> str:
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def table(runs: list[Run], settings: dict[str, Any]) -> str:
    lines = [
        "| | Yuqing | bare | ratio | target |",
        "|---|---|---|---|---|",
    ]
    for row in rows(settings):
        yuqing, yuqing_spread = _median([row.yuqing(run) for run in runs])  # type: ignore[misc]
        if yuqing is None:
            continue
        bare_text, ratio_text = "", ""
        ratio: float | None = None
        if row.bare is not None:
            bare, bare_spread = _median([row.bare(run) for run in runs])  # type: ignore[misc]
            if bare is not None:
                bare_text = f"{_num(bare)} {row.unit}{bare_spread}"
                ratios = [
                    y / b
                    for y, b in ((row.yuqing(run), row.bare(run)) for run in runs)
                    if y is not None and b
                ]
                ratio, ratio_spread = _median(ratios)
                if ratio is not None:
                    ratio_text = f"{ratio:.2f}{ratio_spread}"
        target_text = ""
        if row.target is not None:
            if row.absolute:
                ok = yuqing <= row.target
                target_text = f"≤ {_num(row.target)} {row.unit}: {'met' if ok else 'NOT met'}"
            elif ratio is not None:
                ok = ratio >= row.target if row.higher_is_better else ratio <= row.target
                sign = "≥" if row.higher_is_better else "≤"
                target_text = f"{sign} {row.target} × bare: {'met' if ok else 'NOT met'}"
        lines.append(
            f"| {row.label} | {_num(yuqing)} {row.unit}{yuqing_spread} | {bare_text} |"
            f" {ratio_text} | {target_text} |"
        )
    return "\n".join(lines)
