"""The bare worker process: `python -m bench.bare_worker --shape FILE ...`.

A Temporal worker with the SDK's defaults (sandboxed runner, default data converter), the bare
workflow (`bench.bare`) and its one do-nothing activity, and the SDK's Prometheus metrics on
a loopback port (sticky cache size and evictions, read by the bench). SIGTERM stops it.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from temporalio.client import Client
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.worker import Worker

from bench import shape
from bench.bare import BareLifecycle, bare_step


async def main(args: argparse.Namespace) -> None:
    shape.set_current(shape.Shape.load(Path(args.shape)))
    runtime = Runtime(
        telemetry=TelemetryConfig(
            metrics=PrometheusConfig(
                bind_address=f"127.0.0.1:{args.metrics_port}",
                counters_total_suffix=True,
                unit_suffix=True,
                durations_as_seconds=True,
            )
        )
    )
    client = await Client.connect(args.address, namespace=args.namespace, runtime=runtime)
    options: dict[str, int] = {}
    if args.max_cached_workflows:
        options["max_cached_workflows"] = args.max_cached_workflows
    worker = Worker(
        client,
        task_queue=args.task_queue,
        workflows=[BareLifecycle],
        activities=[bare_step],
        **options,  # type: ignore[arg-type]
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with worker:
        print("bare worker started", flush=True)  # noqa: T201 - the bench waits for this line
        await stop.wait()


def cli() -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.bare_worker")
    parser.add_argument("--address", required=True)
    parser.add_argument("--namespace", default="default")
    parser.add_argument("--task-queue", required=True)
    parser.add_argument("--shape", required=True)
    parser.add_argument("--metrics-port", type=int, required=True)
    parser.add_argument("--max-cached-workflows", type=int, default=0)
    asyncio.run(main(parser.parse_args()))


if __name__ == "__main__":
    cli()
