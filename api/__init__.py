"""Yuqing's HTTP API: intake, signals that answer at once, the state, the statements pages.

`create_app(client, pool, settings)` builds it against any Temporal client and database, so the
tests run it on the time-skipping server; `yuqing.stack.serve` runs it beside the worker.
"""

from api.app import create_app

__all__ = ["create_app"]
