"""`python -m starter`: report an incident, send it signals, read its state.

    python -m starter report demo/01-incident.json
    python -m starter signal demo-1 submit_report demo/02-report.json
    python -m starter state demo-1

Connection settings come from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and YUQING_TASK_QUEUE.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.exceptions import WorkflowAlreadyStartedError
from temporalio.service import RPCError

from starter import InvalidInput, parse_report, parse_signal, report_incident, signal_and_wait
from workflows.incident import IncidentWorkflow
from yuqing import incident_workflow_id
from yuqing.client import connect
from yuqing.models import SIGNAL_PAYLOADS
from yuqing.settings import Settings


def _read_json(path: str) -> Any:
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
        return json.loads(text)
    except FileNotFoundError as err:
        raise InvalidInput(f"{path} does not exist") from err
    except json.JSONDecodeError as err:
        raise InvalidInput(f"{path} is not JSON: {err}") from err


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


async def main(argv: list[str] | None = None, client: Client | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    try:
        if args.command == "report":
            report = parse_report(_read_json(args.file))
        elif args.command == "signal":
            payload = parse_signal(args.signal, _read_json(args.file))
        client = client or await connect(settings)
        if args.command == "report":
            answer = await report_incident(client, report, settings.task_queue)
            if answer.refused:
                _out(f"refused: {answer.detail}")
                return 1
            how = "started" if answer.kind == "discovered" else "joined"
            _out(f"{how} {incident_workflow_id(report.incident_id)}")
        elif args.command == "signal":
            entry = await signal_and_wait(client, args.incident_id, args.signal, payload)
            if entry.refused:
                _out(f"refused: {entry.detail}")
                return 1
            _out(f"accepted: {entry.detail}")
        else:
            handle = client.get_workflow_handle(incident_workflow_id(args.incident_id))
            state = await handle.query(IncidentWorkflow.state)
            _out(state.model_dump_json(indent=2))
    except InvalidInput as err:
        sys.stderr.write(f"error: {err}\n")
        return 2
    except WorkflowAlreadyStartedError:
        sys.stderr.write("error: an incident with this incident_id already exists\n")
        return 1
    except RPCError as err:
        sys.stderr.write(f"error: Temporal at {settings.temporal_address} said: {err}\n")
        return 1
    return 0


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m starter",
        description="Report an incident, send it signals and read its state. Inputs are "
        "validated before anything is sent; a signal waits for the incident's decision.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    report = sub.add_parser(
        "report", help="start an incident from an IncidentReport JSON file (or join its story's)"
    )
    report.add_argument("file", help="the JSON file, or - for standard input")
    signal = sub.add_parser("signal", help="send a signal and print whether it was accepted")
    signal.add_argument("incident_id")
    signal.add_argument(
        "signal",
        choices=sorted(SIGNAL_PAYLOADS),
        metavar="signal",
        help=f"one of: {', '.join(SIGNAL_PAYLOADS)}",
    )
    signal.add_argument("file", help="the payload JSON file, or - for standard input")
    state = sub.add_parser("state", help="print the incident's state as JSON")
    state.add_argument("incident_id")
    return parser


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
