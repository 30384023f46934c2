"""`python -m starter`: report an incident, send it signals, read its state.

    python -m starter report demo/01-incident.json
    python -m starter signal demo-1 submit_report demo/02-report.json
    python -m starter state demo-1

Connection settings come from TEMPORAL_ADDRESS, TEMPORAL_NAMESPACE and YUQING_TASK_QUEUE.
It ends as every Yuqing tool does (`yuqing.tool`): exit 0 done, 1 refused, 2 bad input, 3
Temporal (or a worker) cannot be reached, each failure one line on standard error.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from yuqing import tool


def _read_json(path: str) -> Any:
    name = "standard input" if path == "-" else path
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text(encoding="utf-8")
    except OSError as err:
        raise tool.bad_input(f"cannot read {name}: {err.strerror or err}") from err
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise tool.bad_input(f"{name} is not JSON: {err}") from err


def _out(text: str) -> None:
    sys.stdout.write(text + "\n")


async def main(argv: list[str] | None = None, client: Any = None) -> int:
    """The command, on an event loop; failures are raised as `yuqing.tool.ToolFailure`."""
    from temporalio.exceptions import WorkflowAlreadyStartedError
    from temporalio.service import RPCError

    from starter import InvalidInput, parse_report, parse_signal, report_incident, signal_and_wait
    from yuqing import incident_workflow_id
    from yuqing.settings import Settings

    args = _parser().parse_args(argv)
    settings = Settings.from_env()
    address = settings.temporal_address
    try:
        if args.command == "report":
            report = parse_report(_read_json(args.file))
            incident_id = report.incident_id
        elif args.command == "signal":
            payload = parse_signal(args.signal, _read_json(args.file))
            incident_id = args.incident_id
        else:
            incident_id = args.incident_id
    except InvalidInput as err:
        raise tool.bad_input(str(err)) from err
    client = client or await tool.connect_temporal(settings)
    try:
        if args.command == "report":
            answer = await tool.waiting(
                f"incident {incident_id} to start (a worker must be running)",
                report_incident(client, report, settings.task_queue),
            )
            if answer.refused:
                _out(f"refused: {answer.detail}")
                return tool.REFUSED
            how = "started" if answer.kind == "discovered" else "joined"
            _out(f"{how} {incident_workflow_id(report.incident_id)}")
        elif args.command == "signal":
            entry = await tool.waiting(
                f"incident {incident_id} to decide (a worker must be running)",
                signal_and_wait(client, incident_id, args.signal, payload),
            )
            if entry.refused:
                _out(f"refused: {entry.detail}")
                return tool.REFUSED
            _out(f"accepted: {entry.detail}")
        else:
            handle = client.get_workflow_handle(incident_workflow_id(incident_id))
            # By name, as any client may: the answer is the state's JSON as the workflow sent it.
            state = await tool.waiting(
                f"incident {incident_id} to answer (a worker must be running)",
                handle.query("state", rpc_timeout=tool.call_deadline()),
            )
            _out(json.dumps(state, ensure_ascii=False, indent=2))
    except WorkflowAlreadyStartedError as err:
        raise tool.refused(
            f"an incident with the id {incident_id} already exists: an incident id is used "
            "once, ever; give the report another incident_id"
        ) from err
    except TimeoutError as err:  # the signal was delivered, but no decision came
        raise tool.unreachable(str(err)) from err
    except (RPCError, RuntimeError) as err:
        raise tool.temporal_failure(err, address, incident_id, asks_worker=True) from err
    return tool.DONE


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> Any:  # one line, as every failure of the tools
        raise tool.bad_input(f"{message}; `{self.prog} --help` says what it takes")


def _parser() -> argparse.ArgumentParser:
    from yuqing.models import SIGNAL_PAYLOADS

    parser = _Parser(
        prog="python -m starter",
        description="Report an incident, send it signals and read its state. Inputs are "
        "validated before anything is sent; a signal waits for the incident's decision. "
        "Exit codes: 0 done, 1 refused, 2 bad input, 3 Temporal or a worker unreachable.",
    )
    sub = parser.add_subparsers(
        dest="command", required=True, metavar="COMMAND", parser_class=_Parser
    )
    report = sub.add_parser(
        "report", help="start an incident from an IncidentReport JSON file (or join its story's)"
    )
    report.add_argument("file", metavar="FILE", help="the JSON file, or - for standard input")
    signal = sub.add_parser("signal", help="send a signal and print whether it was accepted")
    signal.add_argument("incident_id", metavar="INCIDENT_ID")
    signal.add_argument(
        "signal",
        choices=sorted(SIGNAL_PAYLOADS),
        metavar="SIGNAL",
        help=f"one of: {', '.join(SIGNAL_PAYLOADS)}",
    )
    signal.add_argument(
        "file", metavar="FILE", help="the payload JSON file, or - for standard input"
    )
    state = sub.add_parser("state", help="print the incident's state as JSON")
    state.add_argument("incident_id", metavar="INCIDENT_ID")
    return parser


if __name__ == "__main__":
    tool.end(lambda: tool.run(main()))
