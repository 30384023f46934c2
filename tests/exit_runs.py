"""Run a tool's command many times, each run a process of its own that ends as the tool ends.

    python tests/exit_runs.py RUNS yuqing status demo-1
    python tests/exit_runs.py RUNS starter state demo-1

This process imports the tool's modules once, then forks one child per run; each child runs
the command's entry point (`yuqing.cli.main`, or what `python -m starter` runs) and its
interpreter ends the way the tool's does, with the SDK's threads alive, which is where the
abort at exit happened (`yuqing.tool`). Forking saves each run the second of imports a fresh
interpreter spends; nothing has started a thread before the fork. Prints one JSON line: the
exit code of every run, and standard error of the first runs that did not exit 0.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

# What each command imports as it runs, imported once here; no more, since the modules a
# process holds are what its finalization (where the abort came) has to take down.
PRELOADS = {
    ("yuqing", "status"): ["urllib.request", "typer._adapters"],
    ("yuqing", "audit"): [
        "typer._adapters",
        "temporalio.client",
        "yuqing.client",
        "yuqing.audit.history",
        "yuqing.audit.timeline",
    ],
    ("starter", "state"): ["temporalio.client", "yuqing.client"],
}


def entry(tool: str, args: list[str]) -> Callable[[], object]:
    import importlib

    for module in PRELOADS.get((tool, args[0] if args else ""), []):
        importlib.import_module(module)
    if tool == "yuqing":
        from yuqing.cli import app

        return lambda: app(args=args, prog_name="yuqing")
    if tool == "starter":
        import starter.__main__ as starter_main
        from yuqing import tool as ending

        return lambda: ending.end(lambda: ending.run(starter_main.main(args)))
    raise SystemExit(f"unknown tool {tool!r}")


def main() -> None:
    runs, tool, args = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    command = entry(tool, args)
    logs = Path(tempfile.mkdtemp(prefix="yuqing-exit-runs-"))
    codes: list[int] = []
    failed: list[str] = []
    for run in range(runs):
        err = logs / f"{run}.err"
        pid = os.fork()
        if pid == 0:
            # The child: the command's output goes nowhere, its errors to a file; then it
            # runs and ends exactly as the tool does (SystemExit, then finalization).
            null = os.open(os.devnull, os.O_WRONLY)
            os.dup2(null, 1)
            os.dup2(os.open(err, os.O_WRONLY | os.O_CREAT | os.O_TRUNC), 2)
            command()
            sys.exit(0)
        _, status = os.waitpid(pid, 0)
        code = os.waitstatus_to_exitcode(status)
        codes.append(code if code >= 0 else 128 - code)
        if codes[-1] != 0 and len(failed) < 3:
            failed.append(err.read_text(encoding="utf-8", errors="replace"))
    sys.stdout.write(json.dumps({"codes": codes, "failed": failed}) + "\n")


if __name__ == "__main__":
    main()
