"""`yuqing`: the command line of the HTTP API (`api/`), for officials and for scripts.

Every command but the audit ones talks to the API at YUQING_API_URL (or --api-url) with the
token in YUQING_TOKEN (or --token), which says who you are; the API checks each file against
the models the incident uses and names the field that is wrong. --json prints the API's answer
as it came. The audit commands read Temporal and PostgreSQL directly. How every command ends,
and its exit codes, are in `yuqing.tool`.

One module per command group: `incidents` (reporting and the plan's steps), `posts`, `audit`
(the decision trail and compliance), `record` (keeping the record: notary, migrations,
payload keys, archive), `tokens`, `keys` (signing for the `temporal` CLI);
`api_client`, `options` and `output` are shared by them, `group` ends every command. A new
group is a module with its own `app = options.commands()`, added below. Modules import what a
command needs inside the command, so `yuqing --help` and every command start at once.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import typer

    app: typer.Typer


def _app() -> typer.Typer:
    """The command line, built when first asked for (`app`): `main` forks first."""
    import typer

    from yuqing.cli import audit, incidents, keys, plan, posts, record, tokens
    from yuqing.cli.group import YuqingGroup

    built = typer.Typer(
        name="yuqing",
        help="Report, approve, publish, close and review public-opinion incidents through the "
        "Yuqing HTTP API, and audit their decision trails. The token (YUQING_TOKEN or --token) "
        "says who you are. Exit codes: 0 done, 1 refused, 2 bad input, 3 a service unreachable "
        "(named), 4 a bug. Language: Chinese by default, YUQING_LANG=en (or LANG=en_*) for "
        "English.",
        cls=YuqingGroup,
        no_args_is_help=True,
        rich_markup_mode=None,
        pretty_exceptions_enable=False,
    )
    # In this order in --help.
    for group in (incidents, posts, plan, audit, record, tokens, keys):
        built.add_typer(group.app)
    globals()["app"] = built
    return built


def __getattr__(name: str) -> Any:
    # `from yuqing.cli import app` (the tests) builds it.
    if name == "app":
        return _app()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def main() -> None:
    """The `yuqing` command (and `python -m yuqing.cli`)."""
    # (tools) `yuqing audit ID --replay` forks its replayer before anything is imported here
    # (yuqing.audit.forked.start_early): the replayer's imports, the longest wait before the
    # replay can begin, then overlap this process's own and its reading of the histories.
    from yuqing.audit import forked

    if "audit" in sys.argv[1:]:
        from yuqing.malloc import tune_malloc

        tune_malloc()  # before the fork: the replayers open payloads too, and inherit it
    try:
        forked.start_early(sys.argv[1:])
    except Exception:  # the audit then forks (or replays) by itself
        forked.close_early()
    try:
        _app()()
    finally:
        forked.close_early()
        # (tools) The process ends here: what it holds (histories read, every module) goes
        # back to the system whole, and need not be walked by the collector on the way out
        # (a tenth of a second after `yuqing audit` of a thousand lines, more with --replay).
        # Here, not in the commands: the tests run those inside their own process.
        import gc

        gc.freeze()
