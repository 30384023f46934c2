"""The command line of the stack: `./dev serve`, `yuqing-stack`, `python -m yuqing.stack`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from datetime import timedelta
from pathlib import Path

import structlog

from yuqing.log import configure as configure_logging
from yuqing.process import ProcessSettings
from yuqing.settings import PROJECT_ROOT, Settings
from yuqing.stack.common import StackError
from yuqing.stack.serve import Ports, serve
from yuqing.stack.temporal import DEFAULT_RETENTION

log = structlog.get_logger("yuqing.stack")


def _positive(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive whole number")
    return int(text)


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
            "  - a Temporal dev server on 127.0.0.1 (gRPC --port, web UI --ui-port, HTTP API\n"
            "    --http-port, server metrics --metrics-port; the namespace's retention\n"
            "    --retention-days), unless TEMPORAL_ADDRESS is set;\n"
            "  - the HTTP API on 127.0.0.1 (--api-port; docs at /docs, probes at /health/live and\n"
            "    /health/ready, Prometheus at /metrics), its own process (python -m api.server);\n"
            "  - --workers incident workers, each its own process (python worker.py), with\n"
            "    probes and /metrics on --ops-port, --ops-port+1, ...;\n"
            "  - the SMTP intake (python -m yuqing.smtp_intake) when YUQING_SMTP_INTAKE_PORT is\n"
            "    set, its probes on the next ops port.\n"
            "Port 0 picks a free port; every port opened is logged in the 'stack ready' line.\n"
            "\n"
            "All state lives in the data directory (postgres/, temporal.sqlite, temporal.log),\n"
            "so stopping and starting again resumes every incident; one stack per data\n"
            "directory (a second one refuses and leaves the first alone). Ctrl-C stops the\n"
            "API, the workers and the intake (they drain), then Temporal, then PostgreSQL;\n"
            "a second Ctrl-C hurries it."
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
    parser.add_argument(
        "--http-port", type=int, default=7243, help="Temporal HTTP API port (default: %(default)s)"
    )
    parser.add_argument(
        "--metrics-port",
        type=int,
        default=7244,
        help="Temporal server's /metrics port (default: %(default)s)",
    )
    parser.add_argument("--headless", action="store_true", help="do not serve the Temporal web UI")
    parser.add_argument(
        "--api-port",
        type=int,
        default=None,
        help="HTTP API port (default: $YUQING_API_PORT or 8000)",
    )
    parser.add_argument(
        "--workers", type=_positive, default=1, help="worker processes (default: %(default)s)"
    )
    parser.add_argument(
        "--ops-port",
        type=int,
        default=8001,
        help="first port of the workers' (then the SMTP intake's) probes and /metrics"
        " (default: %(default)s)",
    )
    parser.add_argument(
        "--retention-days",
        type=_positive,
        default=int(DEFAULT_RETENTION / timedelta(days=1)),
        help="how long Temporal keeps a closed incident's history (default: %(default)s)",
    )
    args = parser.parse_args()
    for name in ("port", "ui_port", "http_port", "metrics_port", "api_port", "ops_port"):
        value = getattr(args, name)
        if value is not None and not 0 <= value <= 65535:
            parser.error(f"--{name.replace('_', '-')} {value} is not a port number (0-65535)")
    try:
        Settings.from_env()
        ProcessSettings.from_env()
    except ValueError as err:  # e.g. a YUQING_API_PORT that is not a port
        parser.error(str(err))

    configure_logging()
    # Its readiness polls of the processes it starts would fill the terminal.
    logging.getLogger("httpx").setLevel(logging.WARNING)
    try:
        asyncio.run(
            serve(
                args.data_dir,
                port=args.port,
                ui_port=args.ui_port,
                headless=args.headless,
                ports=Ports(
                    temporal=args.port,
                    ui=args.ui_port,
                    temporal_http=args.http_port,
                    temporal_metrics=args.metrics_port,
                    api=args.api_port,
                    ops=args.ops_port,
                ),
                workers=args.workers,
                retention=timedelta(days=args.retention_days),
            )
        )
    except StackError as err:
        log.error("could not start the stack", error=str(err))
        sys.exit(1)
    except (KeyboardInterrupt, asyncio.CancelledError):
        sys.exit(130)
