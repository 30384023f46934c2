"""`python -m bench` (or `./dev bench`): issue 9's table, Yuqing beside a bare Temporal workflow
of the same shape, measured in one run on a stack of the bench's own. See bench/README.md.

    ./dev bench                      # N=1000 at C=50, two interleaved runs, 10,000 parked
    ./dev bench --smoke              # a few of each: checks the bench works, measures nothing
    ./dev bench --sections lifecycle,approvals --count 200 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import compileall
import json
import os
import platform
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
from google.protobuf import json_format

from bench import sections
from bench.anatomy import anatomy
from bench.drive import Drivers, history_of
from bench.proc import load_average
from bench.report import table
from bench.shape import shape_of
from bench.stack import BenchStack, bench_stack
from yuqing.client import payload_keys
from yuqing.codec import EncryptionCodec
from yuqing.malloc import tune_malloc
from yuqing.settings import PROJECT_ROOT

SECTIONS = ("lifecycle", "approvals", "intake", "tools", "parked")


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--count", type=int, default=1000, help="lifecycles of each kind (N)")
    parser.add_argument("--concurrency", type=int, default=50, help="lifecycles at once (C)")
    parser.add_argument("--runs", type=int, default=2, help="interleaved runs (medians over them)")
    # Ten, not four: with ~100 lifecycles a part, a slow minute of the machine weighs on both
    # kinds alike (bench/README.md, "Reading it on a noisy machine").
    parser.add_argument(
        "--chunks", type=int, default=10, help="ABBA parts of each lifecycle run (default 10)"
    )
    parser.add_argument("--parked", type=int, default=10_000, help="parked incidents of each kind")
    parser.add_argument(
        "--parked-cache",
        type=int,
        default=None,
        help="sticky cache of both parked workers (default: Yuqing's own sizing; bare: all)",
    )
    parser.add_argument("--lines", type=int, default=1000, help="trail lines for `yuqing audit`")
    parser.add_argument("--samples", type=int, default=40, help="approvals/reports per round")
    parser.add_argument(
        "--sections", default=",".join(SECTIONS), help=f"comma-separated, of {', '.join(SECTIONS)}"
    )
    parser.add_argument("--smoke", action="store_true", help="tiny N: the bench works, no figures")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=PROJECT_ROOT / ".data" / "bench",
        help="the bench's own stack (wiped at start; removed at the end unless --keep)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the data directory")
    parser.add_argument(
        "--persist",
        action="store_true",
        help="Temporal on SQLite in the data directory, as ./dev serve (default: in memory)",
    )
    parser.add_argument("--json", type=Path, help="also write every figure here, as JSON")
    parser.add_argument(
        "--profile",
        default="",
        help="comma-separated processes (worker, api, bare) to run under py-spy (pip install"
        " py-spy): raw stacks in the data directory; the figures then count the sampler too",
    )
    args = parser.parse_args(argv)
    if args.smoke:
        args.count, args.concurrency, args.runs, args.chunks = 4, 2, 1, 2
        args.parked, args.lines, args.samples = 10, 20, 2
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        parser.error(f"unknown section(s) {', '.join(sorted(unknown))}")
    return args


def say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)  # noqa: T201 - the bench's progress lines


def commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + (" (with uncommitted changes)" if dirty else "")


async def calibrate(stack: BenchStack, drivers: Drivers, tag: str) -> Path:
    """One Yuqing lifecycle; its history's shape is the bare workflow's (bench.shape)."""
    incident_id = f"{tag}-shape"
    await drivers.yuqing_lifecycle(incident_id)
    history = await history_of(drivers.yuqing, drivers.workflow_id("yuqing", incident_id))
    shape = shape_of(history)
    (stack.data_dir / "history.json").write_text(
        json_format.MessageToJson(history), encoding="utf-8"
    )  # the one whose anatomy is printed: `python -m bench.anatomy` reads it again (--keep)
    path = stack.data_dir / "shape.json"
    path.write_text(shape.to_json(), encoding="utf-8")
    say(f"bench: the general lifecycle's shape: {shape.describe()}")
    codec = EncryptionCodec(payload_keys(stack.settings))
    say(f"bench: where its history's bytes go: {anatomy(history, codec).describe()}")
    return path


def compile_modules() -> None:
    """Bytecode for the project's modules and the bench's, as ./dev makes it: the sandbox
    imports each workflow module afresh for every run, and compiling it each time (no bytecode
    is written here) would be counted, on both sides."""
    names = ["worker.py", "yuqing", "workflows", "activities", "api", "starter", "bench"]
    for name in names:
        path = PROJECT_ROOT / name
        if path.is_dir():
            compileall.compile_dir(path, quiet=1, workers=0)
        else:
            compileall.compile_file(path, quiet=1)


async def main(args: argparse.Namespace) -> list[dict[str, Any]]:
    chosen = set(args.sections.split(","))
    tag = sections.new_tag()
    say(f"bench: starting its stack in {args.data_dir}")
    async with bench_stack(
        args.data_dir, keep=args.keep or bool(args.profile), persist=args.persist
    ) as stack:
        stack.profile = frozenset(filter(None, args.profile.split(",")))
        await stack.start_worker()
        await stack.start_api()
        drivers = await Drivers.of(stack)
        shape_file = await calibrate(stack, drivers, tag)
        await stack.start_bare_worker(shape_file)
        await drivers.bare_lifecycle(f"{tag}-shape")
        bare_history = await history_of(drivers.bare, f"bare-{tag}-shape")
        (stack.data_dir / "bare-history.json").write_text(
            json_format.MessageToJson(bare_history), encoding="utf-8"
        )
        say(f"bench: the bare copy: {shape_of(bare_history).describe()}")
        say(f"bench: where the bare history's bytes go: {anatomy(bare_history).describe()}")
        runs: list[dict[str, Any]] = []
        # The HTTP rows' client: aiohttp, not httpx. The bench's own client runs on the cores the
        # stack uses, inside each timed call: httpx costs ~1.0 ms of CPU per request here (and
        # sends headers and body in two writes), aiohttp ~0.2 ms (bench/README.md).
        async with aiohttp.ClientSession(
            stack.api_url,
            connector=aiohttp.TCPConnector(limit=64),
            timeout=aiohttp.ClientTimeout(total=120),
        ) as http:
            for number in range(args.runs):
                run: dict[str, Any] = {"load_before": load_average()}
                first = number % 2
                run_tag = f"{tag}-{number}"
                if "lifecycle" in chosen:
                    say(
                        f"bench: run {number + 1}: {args.count} lifecycles of each,"
                        f" C={args.concurrency}"
                    )
                    run["lifecycle"] = await sections.lifecycles(
                        stack,
                        drivers,
                        count=args.count,
                        concurrency=args.concurrency,
                        chunks=args.chunks,
                        tag=run_tag,
                        first=first,
                    )
                if "approvals" in chosen:
                    for concurrency in (1, 10):
                        say(f"bench: run {number + 1}: approvals at C={concurrency}")
                        run[f"approval_c{concurrency}"] = await sections.approvals(
                            stack,
                            drivers,
                            http,
                            concurrency=concurrency,
                            rounds=2,
                            per_round=max(1, args.samples // concurrency),
                            tag=run_tag,
                            first=first,
                        )
                if "intake" in chosen:
                    say(f"bench: run {number + 1}: reports at C=1")
                    run["intake_c1"] = await sections.intakes(
                        stack,
                        drivers,
                        http,
                        concurrency=1,
                        rounds=2,
                        per_round=args.samples,
                        tag=run_tag,
                        first=first,
                    )
                if "tools" in chosen:
                    say(f"bench: run {number + 1}: yuqing audit of {args.lines} lines")
                    run["tools"] = await sections.tools(
                        stack, drivers, lines=args.lines, tag=run_tag, repeat=3
                    )
                if "parked" in chosen:
                    say(f"bench: run {number + 1}: {args.parked} parked incidents of each")
                    run["parked"] = await sections.parked(
                        stack,
                        drivers,
                        count=args.parked,
                        concurrency=args.concurrency,
                        tag=run_tag,
                        bare_shape=shape_file,
                        max_cached=args.parked_cache or args.parked + 1000,
                        yuqing_cache=args.parked_cache,
                    )
                    # Back to the worker the other sections use (an empty cache).
                    await stack.start_worker()
                    await stack.start_bare_worker(shape_file)
                run["load_after"] = load_average()
                runs.append(run)
                if args.json:  # each run as it ends: a bench cut short keeps what it measured
                    args.json.write_text(json.dumps({"runs": runs}, indent=1), encoding="utf-8")
    return runs


def cli(argv: list[str] | None = None) -> None:
    args = parse(argv)
    started = time.monotonic()
    # The drivers seal and open Yuqing's payloads as the API does (the bare's are plain): tuned
    # as the API's process is (yuqing.process.run), so the drivers cost what the API would.
    tune_malloc()
    compile_modules()
    runs = asyncio.run(main(args))
    settings = {
        "count": args.count,
        "concurrency": args.concurrency,
        "parked": args.parked,
        "parked_cache": args.parked_cache,
        "lines": args.lines,
    }
    loads = [run["load_before"][0] for run in runs] + [run["load_after"][0] for run in runs]
    header = (
        f"commit {commit()}, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {os.cpu_count()} cores,"
        f" Python {platform.python_version()}; {len(runs)} run(s) in"
        f" {time.monotonic() - started:.0f} s;"
        f" load average (1 min) {min(loads):.1f}–{max(loads):.1f}"
    )
    print(header)  # noqa: T201 - the bench's output is this table
    print(table(runs, settings))  # noqa: T201
    if args.json:
        args.json.write_text(
            json.dumps({"header": header, "settings": settings, "runs": runs}, indent=1),
            encoding="utf-8",
        )


if __name__ == "__main__":
    cli()
