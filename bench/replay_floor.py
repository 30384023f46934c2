"""`python -m bench.replay_floor`: what replaying a 1,000-line incident costs beside replaying a
bare workflow of as many decisions, on a stack of the bench's own.

`yuqing audit ID --replay` is held to a wall time (issue 9: ≤ 1.5 s at 1,000 lines); this says
how much of that the SDK itself needs. The incident is the tools section's (`long_trail`: the
figures updated one by one, each a signed `decide` update, runs of 1,000 events). The bare
workflow takes as many `decide` updates, each running one do-nothing activity, and continues
as new every `--per-run` of them (100: about the incident's decisions per run). Both are
replayed run by run in this one process, with what `yuqing audit --replay` gives its
replayers (its converter, unsandboxed, no deadlock timer, a named build id, the payload passes
that change nothing skipped, the imports frozen for the collector), once the stack is quiet,
after one untimed replay of each, in interleaved rounds; CPU is this process's own (the SDK's
core threads included). `--replay` replays the runs at once on every core: its replay's wall
time is about this CPU over the cores, beside the imports and the read of the histories.

    .venv/bin/python -m bench.replay_floor                 # 1,000 lines, 3 rounds
    .venv/bin/python -m bench.replay_floor --lines 300 --rounds 5

(`.venv` is the one `./dev bench` or `./dev test` makes.)
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import statistics
import sys
from pathlib import Path
from typing import Any

from temporalio.client import WorkflowHistory

from bench import bare_trail, sections
from bench.drive import Drivers
from bench.stack import bench_stack
from yuqing import payload_passes
from yuqing.audit import history
from yuqing.client import plain_data_converter
from yuqing.settings import PROJECT_ROOT


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


async def _replay_bare(runs: list[Any], workflow_id: str) -> None:
    replayer = bare_trail.replayer()
    for run in runs:
        await replayer.replay_workflow(WorkflowHistory(workflow_id, list(run.events)))


async def _replay_yuqing(runs: list[Any], workflow_id: str) -> None:
    converter = plain_data_converter()  # `yuqing audit --replay`'s
    for run in runs:
        replayed = await history.replay(WorkflowHistory(workflow_id, list(run.events)), converter)
        if replayed.error is not None:
            raise RuntimeError(f"{workflow_id}: the replay failed: {replayed.error}")


async def main(args: argparse.Namespace) -> None:
    async with bench_stack(args.data_dir) as stack:
        await stack.start_worker()
        drivers = await Drivers.of(stack)
        bare = drivers.bare
        tag = sections.new_tag()
        say(f"bench: an incident of {args.lines} lines")
        incident = await sections.long_trail(drivers, f"{tag}-floor", args.lines)
        say(f"bench: a bare workflow of {args.lines} decisions")
        bare_id = f"{tag}-bare-trail"
        await bare_trail.drive(bare, bare_id, args.lines, args.per_run)
        yuqing_runs = await history.load_runs(drivers.yuqing, incident)
        bare_runs = await history.load_runs(bare, bare_id)
        history.import_replayer()
        payload_passes.install()
        # As `yuqing audit --replay` replays: what is imported left out of the collector's
        # looks (yuqing.audit.forked), the stack quiet (its last projections, archiving).
        gc.freeze()
        await sections.quiesce(stack.pids(), patience=120.0)
        # One untimed replay of each first: the first of a process builds what it then keeps
        # (pydantic's validators, the SDK's lazy imports), a cost `yuqing audit` pays in its
        # imports, not per decision.
        await _replay_yuqing(yuqing_runs, incident)
        await _replay_bare(bare_runs, bare_id)
        sides: dict[str, list[float]] = {"yuqing": [], "bare": []}
        for number in range(args.rounds):
            # ABBA: neither side always goes first.
            order = ["yuqing", "bare"] if number % 2 == 0 else ["bare", "yuqing"]
            for side in order:
                began = _cpu()
                if side == "yuqing":
                    await _replay_yuqing(yuqing_runs, incident)
                else:
                    await _replay_bare(bare_runs, bare_id)
                sides[side].append(_cpu() - began)
            say(
                f"bench: round {number + 1}: Yuqing {sides['yuqing'][-1]:.2f} s, "
                f"bare {sides['bare'][-1]:.2f} s of CPU"
            )
    events = {
        "yuqing": sum(len(run.events) for run in yuqing_runs),
        "bare": sum(len(run.events) for run in bare_runs),
    }
    runs = {"yuqing": len(yuqing_runs), "bare": len(bare_runs)}
    yuqing, plain = statistics.median(sides["yuqing"]), statistics.median(sides["bare"])
    lines = [
        f"replay of {args.lines} decisions, run by run in one process, median of {args.rounds}",
        "| | Yuqing | bare | ratio |",
        "|---|---|---|---|",
        f"| runs | {runs['yuqing']} | {runs['bare']} | |",
        f"| events | {events['yuqing']} | {events['bare']} | |",
        f"| CPU, s | {yuqing:.2f} ({min(sides['yuqing']):.2f}–{max(sides['yuqing']):.2f}) "
        f"| {plain:.2f} ({min(sides['bare']):.2f}–{max(sides['bare']):.2f}) "
        f"| {yuqing / plain:.2f} |",
        f"| CPU per decision, ms | {yuqing / args.lines * 1e3:.2f} "
        f"| {plain / args.lines * 1e3:.2f} | |",
    ]
    sys.stdout.write("\n".join(lines) + "\n")


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)  # noqa: T201


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench.replay_floor",
        description=__doc__,
        formatter_class=argparse.RawTextHelpFormatter,
    )
    parser.add_argument("--lines", type=int, default=1000, help="decisions of each side")
    parser.add_argument(
        "--per-run", type=int, default=bare_trail.PER_RUN, help="bare decisions per run"
    )
    parser.add_argument("--rounds", type=int, default=3, help="interleaved replays of each")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=PROJECT_ROOT / ".data" / "bench-replay",
        help="the stack's own (wiped at start, removed at the end)",
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    asyncio.run(main(parse()))
