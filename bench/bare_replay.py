"""`python -m bench.bare_replay WORKFLOW_ID`: the bare counterpart of `yuqing audit ID --replay`,
timed beside it by the tools section. It replays a bare trail (`bench.bare_trail`) of as many
decisions as the incident has lines, the way `--replay` replays: the SDK's worker imported,
one process forked per core (kept to its core, the collector's view frozen) while this one
reads the runs from Temporal (newest first, each naming the one before), then each process
replays its share of the runs. It reads, checks and prints nothing else: what is left is the
floor any tool that replays those runs on this machine stands on. Its read is a plain one, run
after run (about 0.3 s for 11 runs here), where `--replay`'s overlaps its imports. Temporal's
address and namespace come from TEMPORAL_ADDRESS and TEMPORAL_NAMESPACE, as for `yuqing`."""

from __future__ import annotations

import asyncio
import gc
import os
import pickle
import sys

from temporalio.api.history.v1 import History
from temporalio.client import Client, WorkflowHistory

from bench import bare_trail


async def _runs(client: Client, workflow_id: str) -> list[bytes]:
    """Each run's history, oldest first, serialized (as a forked process is handed it)."""
    runs: list[bytes] = []
    run_id: str | None = None
    while True:
        history = await client.get_workflow_handle(workflow_id, run_id=run_id).fetch_history()
        runs.append(History(events=history.events).SerializeToString())
        started = history.events[0].workflow_execution_started_event_attributes
        run_id = started.continued_execution_run_id or None
        if run_id is None:
            return runs[::-1]


async def _replay(workflow_id: str, share: list[bytes]) -> None:
    replayer = bare_trail.replayer()
    for data in share:
        events = list(History.FromString(data).events)
        await replayer.replay_workflow(WorkflowHistory(workflow_id, events))


def main(workflow_id: str) -> int:
    # The replaying processes forked before any runtime exists (the SDK's runtime does not
    # cross a fork), one per core, each waiting for its share; then the runs read and handed.
    cores = sorted(os.sched_getaffinity(0))
    gc.freeze()
    children: list[tuple[int, int]] = []
    for core in cores:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:
            # Only this process's own pipe: an earlier one's write end kept open here would
            # keep that process waiting for ever if the parent died before handing it its share.
            for other in (write_end, *(end for _, end in children)):
                os.close(other)
            os._exit(_serve(workflow_id, core, read_end))
        os.close(read_end)
        children.append((pid, write_end))

    async def read() -> list[bytes]:
        client = await Client.connect(
            os.environ.get("TEMPORAL_ADDRESS", "127.0.0.1:7233"),
            namespace=os.environ.get("TEMPORAL_NAMESPACE", "default"),
        )
        return await _runs(client, workflow_id)

    runs = asyncio.run(read())
    for number, (_, write_end) in enumerate(children):
        with os.fdopen(write_end, "wb") as pipe:
            pickle.dump(runs[number :: len(children)], pipe)
    failures = sum(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]) != 0 for pid, _ in children)
    return 1 if failures else 0


def _serve(workflow_id: str, core: int, read_end: int) -> int:
    """In a forked process: wait for the share, replay it on `core`; the exit code."""
    try:
        os.sched_setaffinity(0, {core})
        with os.fdopen(read_end, "rb") as pipe:
            share = pickle.load(pipe)
        if share:
            asyncio.run(_replay(workflow_id, share))
    except BaseException as failed:  # said, and the exit code tells the bench
        sys.stderr.write(f"bench.bare_replay: {failed!r}\n")
        return 1
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    sys.exit(main(sys.argv[1]))
