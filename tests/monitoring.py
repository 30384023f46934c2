"""The queries of deploy/'s dashboard and alert rules, and the metric names each one reads."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import promql_parser
import yaml

from yuqing.settings import PROJECT_ROOT

MONITORING = PROJECT_ROOT / "deploy" / "monitoring"
DASHBOARD = MONITORING / "grafana" / "dashboards" / "yuqing.json"
ALERTS = MONITORING / "prometheus" / "alerts.yml"
# Made by Prometheus itself for each target, not exported by a process.
SYNTHESIZED = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})


def dashboard_queries(path: Path = DASHBOARD) -> list[tuple[str, str]]:
    """(panel title, expression) for every target of every panel."""
    found = []
    for panel in json.loads(path.read_text(encoding="utf-8"))["panels"]:
        for target in panel.get("targets", []):
            found.append((panel["title"], target["expr"]))
    return found


def alert_queries(path: Path = ALERTS) -> list[tuple[str, str]]:
    """(alert name, expression) for every rule."""
    rules = yaml.safe_load(path.read_text(encoding="utf-8"))
    return [
        (rule.get("alert") or rule.get("record"), rule["expr"])
        for group in rules["groups"]
        for rule in group["rules"]
    ]


def metric_names(expr: str) -> set[str]:
    """The metric names a PromQL expression selects (parsed, not guessed with a pattern)."""
    return set(_selectors(promql_parser.parse(expr)))


def _selectors(node: Any) -> Iterator[str]:
    name = getattr(node, "name", None)
    if type(node).__name__ == "VectorSelector":
        if name:
            yield name
        return
    for field in ("expr", "lhs", "rhs", "vector_selector", "param"):
        child = getattr(node, field, None)
        if child is not None and not isinstance(child, (str, int, float)):
            yield from _selectors(child)
    for child in getattr(node, "args", None) or []:
        yield from _selectors(child)


def family_names(exposition: str) -> set[str]:
    """Every series name a `/metrics` page can be queried by (histograms' _bucket, _sum and
    _count, counters' _total), from its # TYPE lines and samples."""
    names: set[str] = set()
    for line in exposition.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split(None, 3)
            names.add(name)
            if kind.strip() == "histogram":
                names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
        elif line and not line.startswith("#"):
            names.add(line.split("{", 1)[0].split(" ", 1)[0])
    return names
