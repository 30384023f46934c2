"""`yuqing`: the command line of the HTTP API (`api/`), for officials and for scripts.

Every command talks to the API at YUQING_API_URL (or --api-url) with the token in
YUQING_TOKEN (or --token), which says who you are. Files are checked against the same models
the API uses before anything is sent. --json prints the API's answer as it came. The audit
commands read Temporal and PostgreSQL directly.

Exit codes: 0 done; 1 refused (the reason is printed); 2 bad input (the file or field is
named); 3 the API, or Temporal behind it, cannot be reached.

One module per command group: `incidents` (reporting and the plan's steps), `posts`, `audit`
(the decision trail and compliance), `tokens`, `keys` (signing for the `temporal` CLI);
`api_client`, `options` and `output` are shared by all of them. A new group is a module
with its own `typer.Typer()`, added below.
"""

from __future__ import annotations

import typer

from yuqing.cli import audit, incidents, keys, plan, posts, tokens

app = typer.Typer(
    name="yuqing",
    help="Report, approve, publish, close and review public-opinion incidents through the "
    "Yuqing HTTP API. The token (YUQING_TOKEN or --token) says who you are. Exit codes: "
    "1 refused, 2 bad input, 3 API unreachable.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)

# In this order in --help.
for group in (incidents, posts, plan, audit, tokens, keys):
    app.add_typer(group.app)


def main() -> None:
    app()
