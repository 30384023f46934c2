"""(tools) `yuqing audit --replay`'s replay in processes of its own, the runs at once.

A replay is Python on one core: the SDK's worker and today's workflows to import (half a
second), then every workflow task of every run. In one process, the import competes for the
GIL with the reading of the histories, and the runs with each other. Here a process is forked
as the audit begins, before anything has started a thread (the SDK's Rust runtime among them:
a fork after it would copy its locks, not its threads); it imports the replayer while the
audit reads the histories, then forks one more process for each other core (the imports
shared, copy-on-write), and each replays its share of the runs (a run's history holds all it needs:
see `_replay_runs`). What each reached comes back as trail lines (no models: the audit
itself need not import them). Every run is replayed, every time, as `history.replay` would.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from yuqing.audit.history import TrailLine

if TYPE_CHECKING:
    from temporalio.converter import DataConverter

    from yuqing.audit.history import AnyRun


@dataclass(frozen=True)
class RunReplayed:
    """What replaying one run reached, as its process hands it back."""

    lines: list[TrailLine]
    error: str | None
    reached: bool  # whether the replay reached the workflow's state at all
    grade: str | None


@dataclass(frozen=True)
class ReplayedTrail:
    """What today's code makes of a workflow's runs, as `history.replay`'s `Replayed` says it
    (its `trail`, `error` and `grade`)."""

    trail: list[TrailLine]
    error: str | None
    grade: str | None


class ReplayFailed(Exception):
    """A replaying process failed (not the replay: that is an `error` of its result)."""


def joined(runs: list[RunReplayed]) -> ReplayedTrail:
    """A workflow's runs, oldest first, joined as `history.replay` joins them: the first
    earlier run that could not replay is the answer; else the last, with every earlier run's
    lines before its own (a later run's line of the same seq wins)."""
    for run in runs[:-1]:
        if run.error is not None or not run.reached:
            return ReplayedTrail(run.lines, run.error, run.grade)
    lines = {line.seq: line for run in runs for line in run.lines}
    last = runs[-1]
    return ReplayedTrail([lines[seq] for seq in sorted(lines)], last.error, last.grade)


class ReplayProcess:
    """The forked replayer: `start` it before any thread exists, hand it the histories once
    with `replay` (or `close` it unused)."""

    def __init__(self, pid: int, jobs: int, results: int) -> None:
        self._pid = pid
        self._jobs: int | None = jobs
        self._results = results

    @classmethod
    def start(cls, converter: Callable[[], DataConverter]) -> ReplayProcess | None:
        """Fork the replayer, which replays with `converter()` (made in it); None where this
        system cannot fork, or this process has a thread besides its own (a fork would not
        have it; the caller then replays in its own process)."""
        if not hasattr(os, "fork") or _threads() != 1:
            return None
        jobs_read, jobs_write = os.pipe()
        results_read, results_write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(jobs_write)
            os.close(results_read)
            _serve(jobs_read, results_write, converter)
        os.close(jobs_read)
        os.close(results_write)
        return cls(pid, jobs_write, results_read)

    async def replay(self, histories: dict[str, list[AnyRun]]) -> dict[str, ReplayedTrail]:
        """Each workflow's runs (decoded, oldest first) replayed; what each workflow reached."""
        return await self.begin(histories)

    def begin(self, histories: dict[str, list[AnyRun]]) -> Awaitable[dict[str, ReplayedTrail]]:
        """`replay`, handed over now: the replayer starts at once, while the caller goes on
        (with the timeline, say) until it awaits what the replay reached."""
        import asyncio

        from temporalio.api.history.v1 import History

        jobs = [
            (workflow_id, index, History(events=run.events).SerializeToString())
            for workflow_id, runs in histories.items()
            for index, run in enumerate(runs)
        ]
        loop = asyncio.get_running_loop()
        answer = loop.run_in_executor(None, self._exchange, pickle.dumps(jobs))

        async def reached() -> dict[str, ReplayedTrail]:
            return dict(_answer(await answer))

        # A task, so that an audit that fails before it awaits this leaves nothing unawaited.
        return asyncio.ensure_future(reached())

    def close(self) -> None:
        """End the replayer if it was never handed the histories (the audit failed first):
        at once, rather than after its imports."""
        if self._jobs is not None:
            import signal

            os.close(self._jobs)
            self._jobs = None
            os.close(self._results)
            os.kill(self._pid, signal.SIGKILL)
            os.waitpid(self._pid, 0)

    def _exchange(self, message: bytes) -> bytes:
        assert self._jobs is not None, "a replayer replays once"
        jobs, self._jobs = self._jobs, None
        try:
            with os.fdopen(jobs, "wb") as out:
                out.write(message)
            with os.fdopen(self._results, "rb") as back:
                return back.read()
        finally:
            os.waitpid(self._pid, 0)


def _threads() -> int:
    """The threads of this process, native ones too where the system says (Linux)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _answer(message: bytes) -> Any:
    """What a replaying process handed back; ReplayFailed if it failed, or died unheard."""
    if not message:
        raise ReplayFailed("the replaying process ended without an answer")
    kind, found = pickle.loads(message)
    if kind != "replayed":
        raise ReplayFailed(found)
    return found


def _serve(jobs: int, results: int, converter: Callable[[], DataConverter]) -> NoReturn:
    """The forked replayer: import, wait for the histories, replay them, answer, exit (never
    returning into the caller's code, nor running its exit handlers)."""
    try:
        try:
            from yuqing.audit.history import import_replayer

            import_replayer()
            with os.fdopen(jobs, "rb") as given:
                message = given.read()
            if not message:  # closed unused
                os._exit(0)
            answer: tuple[str, Any] = ("replayed", _replay_all(pickle.loads(message), converter))
        except BaseException as error:  # handed back, said by the audit
            answer = ("failed", f"{type(error).__name__}: {error}")
        with os.fdopen(results, "wb") as out:
            out.write(pickle.dumps(answer))
    finally:
        os._exit(0)


def _replay_all(
    jobs: list[tuple[str, int, bytes]], converter: Callable[[], DataConverter]
) -> dict[str, ReplayedTrail]:
    """Every run, each in a process of its own (this one replays the first share)."""
    import gc

    shares = _shares(jobs, _cores())
    # What was imported stays as it is: the collector need not look at it again in each
    # replaying process (each look writes to pages the processes would otherwise share).
    gc.freeze()
    forked = []
    for share in shares[1:]:
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            os.close(read)
            try:
                try:
                    answer: tuple[str, Any] = ("replayed", _replay_here(share, converter))
                except BaseException as error:  # handed back
                    answer = ("failed", f"{type(error).__name__}: {error}")
                with os.fdopen(write, "wb") as out:
                    out.write(pickle.dumps(answer))
            finally:
                os._exit(0)
        os.close(write)
        forked.append((pid, read))
    reached = _replay_here(shares[0], converter)
    for pid, read in forked:
        with os.fdopen(read, "rb") as back:
            message = back.read()
        os.waitpid(pid, 0)
        reached.update(_answer(message))
    runs: dict[str, list[tuple[int, RunReplayed]]] = {}
    for (workflow_id, index), run in reached.items():
        runs.setdefault(workflow_id, []).append((index, run))
    return {wf: joined([run for _, run in sorted(found)]) for wf, found in runs.items()}


def _cores() -> int:
    """The cores this process may run on: as many replaying processes (measured: one more,
    for three runs on two cores, cost more CPU and was no sooner done)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on every system
        return os.cpu_count() or 1


def _shares(jobs: list[tuple[str, int, bytes]], most: int) -> list[list[tuple[str, int, bytes]]]:
    """The runs in at most `most` shares of about the same size, the largest runs first (a
    run's replay costs about its history's size)."""
    shares: list[list[tuple[str, int, bytes]]] = [[] for _ in range(max(1, min(most, len(jobs))))]
    sizes = [0] * len(shares)
    for job in sorted(jobs, key=lambda job: len(job[2]), reverse=True):
        smallest = sizes.index(min(sizes))
        shares[smallest].append(job)
        sizes[smallest] += len(job[2])
    return shares


def _replay_here(
    share: list[tuple[str, int, bytes]], converter: Callable[[], DataConverter]
) -> dict[tuple[str, int], RunReplayed]:
    import asyncio

    from temporalio.api.history.v1 import History
    from temporalio.client import WorkflowHistory

    from yuqing.audit.history import _replay_runs

    runs = [WorkflowHistory(wf, list(History.FromString(data).events)) for wf, _, data in share]
    replayed = asyncio.run(_replay_runs(runs, converter()))
    return {
        (wf, index): RunReplayed(
            lines=run.trail,
            error=run.error,
            reached=run.state is not None,
            grade=run.grade,
        )
        for (wf, index, _), run in zip(share, replayed, strict=True)
    }
