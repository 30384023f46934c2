"""Logging through structlog, as structlog's documentation sets it up: the console renderer
when standard error is a terminal (a person is reading), JSON lines elsewhere (a log collector
is), `YUQING_LOG_FORMAT=console` or `json` to choose. The standard library's records (the
Temporal SDK's, uvicorn's, `workflow.logger`'s) go through the same processors, so every line of
a process has one shape.

What to log: one line per unit of work (a request answered, a decision taken, an activity's
effect), with the incident id bound; what a unit did step by step (each trail line recorded,
each delivery attempt) is debug.
"""

from __future__ import annotations

import logging
import os
import sys

import structlog

_SHARED: list[structlog.types.Processor] = [
    structlog.contextvars.merge_contextvars,
    structlog.stdlib.add_log_level,
    structlog.stdlib.add_logger_name,
    structlog.processors.TimeStamper(fmt="iso", utc=True),
]


def wants_json(stream: object = None) -> bool:
    """JSON unless `stream` (standard error) is a terminal; YUQING_LOG_FORMAT decides first."""
    chosen = os.environ.get("YUQING_LOG_FORMAT", "").strip().lower()
    if chosen in ("json", "console"):
        return chosen == "json"
    stream = sys.stderr if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return not (isatty is not None and isatty())


def configure(level: str = "INFO", *, json: bool | None = None) -> None:
    """Configure structlog and the standard library once, for the whole process."""
    as_json = wants_json() if json is None else json
    renderers: list[structlog.types.Processor] = (
        [
            structlog.processors.dict_tracebacks,
            structlog.processors.JSONRenderer(ensure_ascii=False),
        ]
        if as_json
        # It renders exceptions itself, readably.
        else [structlog.dev.ConsoleRenderer()]
    )
    structlog.configure(
        processors=[
            # perf (issue 9): a call below the level is dropped before the processors run (the
            # standard library dropped it only after them: each debug line of an activity, the
            # trail's among them, still cost its timestamp and context). What is logged is
            # the same: the level is the standard library's, read from the same logger.
            structlog.stdlib.filter_by_level,
            *_SHARED,
            structlog.processors.StackInfoRenderer(),
            structlog.stdlib.ProcessorFormatter.wrap_for_formatter,
        ],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        structlog.stdlib.ProcessorFormatter(
            foreign_pre_chain=[*_SHARED, structlog.stdlib.ExtraAdder()],
            processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, *renderers],
        )
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
