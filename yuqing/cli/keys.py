"""Signing keys: sign a decision for the plain `temporal` CLI, make a new key.

    yuqing sign --key huang.wei-1.pem --workflow-id incident-demo-1 \\
        --signal unit_head_approval demo/05-unit-head-approval.json

prints the payload with its proof, for
`temporal workflow signal ... --name unit_head_approval --input "$(yuqing sign ...)"`.
"""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Annotated, Any

import typer

from yuqing import tool
from yuqing.cli.options import commands
from yuqing.cli.output import line

app = commands()

KeyOption = Annotated[
    Path,
    typer.Option(
        "--key",
        envvar="YUQING_KEY_FILE",
        metavar="FILE",
        help="Your private key (PEM, mode 600), as `yuqing new-key` wrote it.",
        show_default=False,
    ),
]


@app.command("sign")
def sign(
    file: Annotated[
        Path, typer.Argument(metavar="FILE", help="The payload, a JSON file, or - for stdin.")
    ],
    key: KeyOption,
    signal: Annotated[
        str,
        typer.Option(
            "--signal", metavar="SIGNAL", help="The signal (or update) the payload is sent as."
        ),
    ],
    workflow_id: Annotated[
        str,
        typer.Option(
            "--workflow-id",
            metavar="WORKFLOW_ID",
            help="Where it is sent: incident-<incident_id>, or a post's workflow id.",
        ),
    ],
    key_id: Annotated[
        str | None,
        typer.Option(
            "--key-id",
            metavar="KEY_ID",
            help="The key's id in the keys file; default: the file's name.",
        ),
    ] = None,
) -> None:
    """Sign a decision's payload with your key, for the plain `temporal` CLI.

    Prints the payload with its `proof` (one line of JSON). The proof holds only for this
    workflow, this signal and exactly this payload: change any of them and sign again.
    """
    from yuqing.signing import KeysError, Signer, load_private_key

    payload = _payload(file, signal)
    try:
        signer = Signer(key_id or key.name.removesuffix(".pem"), load_private_key(key))
    except KeysError as error:
        raise tool.bad_input(str(error)) from error
    signed = signer.sign(workflow_id, signal, payload)
    # Plain stdout, not the console: the line is for `--input "$(...)"`, byte for byte.
    sys.stdout.write(json.dumps(signed, ensure_ascii=False, separators=(",", ":")) + "\n")


def _payload(file: Path, signal: str) -> dict[str, Any]:
    from pydantic import ValidationError

    from yuqing.decider import describe
    from yuqing.models import POST_SIGNAL_PAYLOADS, SIGNAL_PAYLOADS

    name = "standard input" if str(file) == "-" else str(file)
    try:
        text = sys.stdin.read() if str(file) == "-" else file.read_text(encoding="utf-8")
        data = json.loads(text)
    except OSError as error:
        raise tool.bad_input(f"cannot read {name}: {error.strerror}") from error
    except json.JSONDecodeError as error:
        raise tool.bad_input(f"{name} is not JSON: {error}") from error
    if not isinstance(data, dict):
        raise tool.bad_input(f"{name} is not a JSON object")
    data.pop("proof", None)
    models = {**POST_SIGNAL_PAYLOADS, **SIGNAL_PAYLOADS}
    model = SIGNAL_PAYLOADS.get(signal) or POST_SIGNAL_PAYLOADS.get(signal)
    if model is None:
        known = ", ".join(sorted(models))
        raise tool.bad_input(f"unknown signal {signal!r}; one of: {known}")
    try:
        model.model_validate(data)
    except ValidationError as error:
        raise tool.bad_input(f"{name} is invalid for {signal}: {describe(error)}") from error
    # Signed as written: the workflow checks the proof against the JSON it receives.
    return data


@app.command("new-key")
def new_key(
    holder: Annotated[
        str,
        typer.Argument(
            metavar="HOLDER", help="The roster id of the key's holder (or the service's name)."
        ),
    ],
    service: Annotated[
        bool,
        typer.Option("--service", help="A service key (signs for the people it authenticates)."),
    ] = False,
    days: Annotated[
        int, typer.Option("--days", min=1, metavar="DAYS", help="How long it is valid.")
    ] = 365,
    directory: Annotated[
        Path, typer.Option("--dir", metavar="DIR", help="Where to write the private key.")
    ] = Path("."),
    key_id: Annotated[
        str | None,
        typer.Option("--key-id", metavar="KEY_ID", help="Default: HOLDER-YYYYMMDD (today)."),
    ] = None,
) -> None:
    """Make a key pair: the private key goes to DIR/KEY_ID.pem (mode 600, give it to its
    holder only); the entry printed goes into the keys file (YUQING_KEYS)."""
    from yuqing.signing import KeysError, key_entry_toml, new_key_pair

    now = datetime.now(UTC).replace(microsecond=0)
    chosen = key_id or f"{holder}-{now:%Y%m%d}"
    try:
        path, entry = new_key_pair(
            directory,
            chosen,
            valid_from=now,
            valid_until=now + timedelta(days=days),
            holder=None if service else holder,
            service=holder if service else None,
        )
    except (KeysError, ValueError) as error:
        raise tool.bad_input(str(error)) from error
    tool.say(f"private key written to {path} (mode 600): keep it with its holder only")
    tool.say("add to the keys file (YUQING_KEYS):")
    line(key_entry_toml(entry))
