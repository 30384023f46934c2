"""The command line of the stack: `./dev serve`, `yuqing-stack`, `python -m yuqing.stack`."""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import structlog

from yuqing.log import configure as configure_logging
from yuqing.settings import PROJECT_ROOT, Settings
from yuqing.stack.common import StackError
from yuqing.stack.serve import serve

log = structlog.get_logger("yuqing.stack")


def _default_data_dir() -> Path:
    return Path(os.environ.get("YUQING_DATA_DIR") or PROJECT_ROOT / ".data")


def cli() -> None:
    prog = "yuqing-stack" if Path(sys.argv[0]).name == "yuqing-stack" else "./dev serve"
    parser = argparse.ArgumentParser(
        prog=prog,
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description=(
            "Run the whole Yuqing stack on this machine, in the foreground:\n"
            "  - PostgreSQL (embedded, unix socket only), unless DATABASE_URL is set;\n"
            "  - a Temporal dev server on 127.0.0.1 (gRPC --port, web UI --ui-port),\n"
            "    unless TEMPORAL_ADDRESS is set;\n"
            "  - the incident worker, in this process;\n"
            "  - the HTTP API on 127.0.0.1 (--api-port; its docs at /docs), in this process.\n"
            "\n"
            "All state lives in the data directory (postgres/, temporal.sqlite, temporal.log),\n"
            "so stopping and starting again resumes every incident. Ctrl-C stops the API and\n"
            "the worker, then Temporal, then PostgreSQL; a second Ctrl-C hurries it."
        ),
    )
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=_default_data_dir(),
        help="where state lives (default: $YUQING_DATA_DIR or <project>/.data; now %(default)s)",
    )
    parser.add_argument(
        "--port", type=int, default=7233, help="Temporal gRPC port (default: %(default)s)"
    )
    parser.add_argument(
        "--ui-port", type=int, default=8233, help="Temporal web UI port (default: %(default)s)"
    )
    parser.add_argument("--headless", action="store_true", help="do not serve the Temporal web UI")
    parser.add_argument(
        "--api-port",
        type=int,
        default=None,
        help="HTTP API port (default: $YUQING_API_PORT or 8000)",
    )
    args = parser.parse_args()
    try:
        Settings.from_env()
    except ValueError as err:  # e.g. a YUQING_API_PORT that is not a port
        parser.error(str(err))

    configure_logging()
    try:
        asyncio.run(
            serve(
                args.data_dir,
                port=args.port,
                ui_port=args.ui_port,
                headless=args.headless,
                api_port=args.api_port,
            )
        )
    except StackError as err:
        log.error("could not start the stack", error=str(err))
        sys.exit(1)
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(130)
