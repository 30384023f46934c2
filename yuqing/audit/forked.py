"""(tools) `yuqing audit --replay`'s replay in processes of its own, the runs at once.

A replay is Python on one core: the SDK's worker and today's workflows to import (half a
second), then every workflow task of every run. In one process, the import competes for the
GIL with the reading of the histories, and the runs with each other. Here a process is forked
as `yuqing` begins (`start_early`; as the audit begins when not run from there), before
anything has started a thread (the SDK's Rust runtime among them:
a fork after it would copy its locks, not its threads); it imports the replayer while the
audit reads the histories, then forks one more process for each other core (the imports
shared, copy-on-write), and each replays its share of the runs (a run's history holds all it needs:
see `_replay_runs`). What each reached comes back as trail lines (no models: the audit
itself need not import them). Every run is replayed, every time, as `history.replay` would.
"""

from __future__ import annotations

import os
import pickle
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

# (tools) Nothing heavy at module level: `yuqing`'s entry point forks the replayer from here
# before it imports anything else (`start_early`).
if TYPE_CHECKING:
    import asyncio

    from temporalio.converter import DataConverter

    from yuqing.audit.history import AnyRun, Replayed, TrailLine


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
        self._reaped = False
        self._answered = False

    @classmethod
    def start(cls, converter: Callable[[], DataConverter]) -> ReplayProcess | None:
        """Fork the replayer, which replays with `converter()` (made in it); None where this
        system cannot fork, or this process has a thread besides its own (a fork would not
        have it; the caller then replays in its own process)."""
        if not hasattr(os, "fork") or _threads() != 1:
            return None
        jobs_read, jobs_write = os.pipe()
        results_read, results_write = os.pipe()
        parent = os.getpid()
        pid = os.fork()
        if pid == 0:
            os.close(jobs_write)
            os.close(results_read)
            _serve(jobs_read, results_write, converter, parent)
        os.close(jobs_read)
        os.close(results_write)
        return cls(pid, jobs_write, results_read)

    async def replay(self, histories: dict[str, list[AnyRun]]) -> dict[str, ReplayedTrail]:
        """Each workflow's runs (decoded, oldest first) replayed; what each workflow reached."""
        return await self.begin(histories)

    def begin(self, histories: dict[str, list[AnyRun]]) -> asyncio.Future[dict[str, ReplayedTrail]]:
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
        answered: asyncio.Future[Any] = loop.create_future()
        loop.run_in_executor(None, self._exchange, pickle.dumps(jobs), loop, answered)

        async def reached() -> dict[str, ReplayedTrail]:
            return dict(await answered)

        # A task, so that an audit that fails before it awaits this leaves nothing unawaited.
        return asyncio.ensure_future(reached())

    def close(self) -> None:
        """End the replayer at once unless its answer is in: the audit failed (or was
        stopped) before it needed the replay. Before the hand-over this also reaps it; after,
        the thread waiting for its answer sees the pipe close and reaps it (as it does one
        that answered, which ends by itself)."""
        if self._reaped or self._answered:
            return
        import signal

        try:
            # Its own replaying processes die with it (`_die_with_parent`).
            os.kill(self._pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        if self._jobs is not None:
            os.close(self._jobs)
            self._jobs = None
            os.close(self._results)
            os.waitpid(self._pid, 0)
            self._reaped = True

    def _exchange(
        self, message: bytes, loop: asyncio.AbstractEventLoop, answered: asyncio.Future[Any]
    ) -> None:
        """In a thread: the histories handed over, the answer read and given to `answered`
        (or why there is none), the replayer reaped."""
        try:
            assert self._jobs is not None, "a replayer replays once"
            jobs, self._jobs = self._jobs, None
            try:
                with os.fdopen(jobs, "wb") as out:
                    out.write(message)
            except BrokenPipeError:
                pass  # it stopped before reading them (a failed import): its answer says why
            with os.fdopen(self._results, "rb") as back:
                found = _answer(back.read())
        except BaseException as error:
            self._reap()
            _settle(loop, answered, error=error)
            return
        # (tools) The answer is whole once the replayer closes its end, which it does before
        # it exits; the system then takes tens of milliseconds to tear that process down, so
        # the audit has the answer first and the reaping goes on meanwhile.
        self._answered = True
        _settle(loop, answered, found)
        self._reap()

    def _reap(self) -> None:
        try:
            os.waitpid(self._pid, 0)
        except ChildProcessError:
            pass
        self._reaped = True


def _settle(
    loop: asyncio.AbstractEventLoop,
    answered: asyncio.Future[Any],
    found: Any = None,
    error: BaseException | None = None,
) -> None:
    """`answered` given `found` (or `error`), from a thread; nothing if the audit has stopped
    waiting (its future cancelled, its loop closed)."""

    def settle() -> None:
        if answered.done():
            return
        if error is None:
            answered.set_result(found)
        else:
            answered.set_exception(error)

    try:
        loop.call_soon_threadsafe(settle)
    except RuntimeError:  # the loop is closed
        pass


_EARLY: list[ReplayProcess] = []


def start_early(args: list[str]) -> None:
    """(tools) At `yuqing`'s entry point, before it imports its commands: when the command
    line asks for `audit ... --replay`, the replayer is forked at once, so that its imports
    (the SDK's worker, today's workflows: the longest wait before a replay can begin) run
    while this process imports its own and reads the histories. The audit takes it with
    `take_early`; `close_early` ends one nobody took (a command line read otherwise)."""
    wanted = "audit" in args and "--replay" in args and not {"--help", "-h"} & set(args)
    if wanted and not _EARLY:
        # What both processes need (the SDK's protos, service and converters, pydantic) is
        # imported before the fork, once; the command line's own modules after it, here.
        import yuqing.audit.history  # noqa: F401
        from yuqing.client import plain_data_converter

        started = ReplayProcess.start(plain_data_converter)
        if started is not None:
            _EARLY.append(started)


def take_early() -> ReplayProcess | None:
    """The replayer `start_early` forked, if any, now the caller's (once)."""
    return _EARLY.pop() if _EARLY else None


def close_early() -> None:
    """End the replayer `start_early` forked if no command took it."""
    while _EARLY:
        _EARLY.pop().close()


def _threads() -> int:
    """The threads of this process, native ones too where the system says (Linux)."""
    try:
        return len(os.listdir("/proc/self/task"))
    except OSError:
        import threading

        return threading.active_count()


def _answer(message: bytes) -> Any:
    """What a replaying process handed back; ReplayFailed if it failed, or died unheard or
    mid-answer; KeyboardInterrupt if it was interrupted."""
    try:
        kind, found = pickle.loads(message)
    except (EOFError, pickle.UnpicklingError, ValueError) as error:
        raise ReplayFailed("the replaying process ended without an answer") from error
    if kind == "interrupted":
        raise KeyboardInterrupt
    if kind != "replayed":
        raise ReplayFailed(found)
    return found


def _failure(error: BaseException) -> tuple[str, Any]:
    """A replaying process's failure, as it hands it back."""
    if isinstance(error, KeyboardInterrupt):
        return ("interrupted", None)
    return ("failed", f"{type(error).__name__}: {error}")


def _die_with_parent(parent: int) -> None:
    """Be killed when the process that forked this one ends, however it ends (a killed audit
    leaves no replay running on every core); at once if it already has."""
    import sys

    if sys.platform.startswith("linux"):
        import ctypes
        import signal

        pr_set_pdeathsig = 1
        ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGKILL)
    if os.getppid() != parent:
        os._exit(1)


def _serve(
    jobs: int, results: int, converter: Callable[[], DataConverter], parent: int
) -> NoReturn:
    """The forked replayer: import, wait for the histories, replay them, answer, exit."""

    def replayed() -> dict[str, ReplayedTrail]:
        _die_with_parent(parent)
        # (replay) pydantic looks for plugins (reading every installed package's entry points)
        # as this process builds its first model: the replayer's imports build them all.
        # A replay observes nothing through them; a choice of the caller's own is kept.
        os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")
        from yuqing.audit.history import import_replayer

        import_replayer()
        with os.fdopen(jobs, "rb") as given:
            message = given.read()
        if not message:  # closed unused
            os._exit(0)
        return _replay_all(pickle.loads(message), converter, results)

    _hand_back(results, replayed)


def _hand_back(answer_to: int, work: Callable[[], Any]) -> NoReturn:
    """In a forked process: what `work` reached (or why it could not) written to `answer_to`,
    then exit (never returning into the caller's code, nor running its exit handlers)."""
    try:
        try:
            answer: tuple[str, Any] = ("replayed", work())
        except BaseException as error:  # handed back, said by the audit
            answer = _failure(error)
        with os.fdopen(answer_to, "wb") as out:
            out.write(pickle.dumps(answer))
    finally:
        os._exit(0)


def _replay_all(
    jobs: list[tuple[str, int, bytes]], converter: Callable[[], DataConverter], answer_to: int
) -> dict[str, ReplayedTrail]:
    """Every run, each in a process of its own (this one replays the first share; all of
    them here if a thread has appeared meanwhile: a fork would not have it)."""
    import gc

    shares = _shares(jobs, _cores() if _threads() == 1 else 1)
    places = _places(len(shares))
    # What was imported stays as it is: the collector need not look at it again in each
    # replaying process (each look writes to pages the processes would otherwise share).
    gc.freeze()
    forked: list[tuple[int, int]] = []
    parent = os.getpid()
    for number, share in enumerate(shares[1:], start=1):
        read, write = os.pipe()
        pid = os.fork()
        if pid == 0:
            # Only its own pipe stays open: the audit sees its answer's end (and each sibling
            # its own) when the process that owns it ends, not when the last of them does.
            for other in (read, answer_to, *(back for _, back in forked)):
                os.close(other)

            def replayed(share: list[tuple[str, int, bytes]] = share, number: int = number) -> Any:
                _die_with_parent(parent)
                _settle_on(places, number)
                return _replay_here(share, converter)

            _hand_back(write, replayed)
        os.close(write)
        forked.append((pid, read))
    _settle_on(places, 0)
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
    """The cores this process may run on, within its cgroup's CPU quota (a container limited
    to 2 CPUs on a 16-core node): as many replaying processes (measured: one more, for three
    runs on two cores, cost more CPU and was no sooner done)."""
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not on every system
        cores = os.cpu_count() or 1
    return max(1, min(cores, _quota()))


def _places(processes: int) -> list[int]:
    """(replay) The core each replaying process keeps to, when there are as many of them as
    cores this process may run on (the replay takes the machine whole); else none (the system
    places them, with cores to spare).

    A replay is a ping-pong between the process's Python thread and the SDK core's threads
    (each workflow activation goes to the core and back): kept on one core, each hand-over
    wakes a thread on the core it left, with its data in that core's caches, and neither
    process's threads are moved onto the other's. Measured on 2 cores, `yuqing audit --replay`
    of a 1,000-line incident (two replaying processes), interleaved runs: CPU 2.38 -> 2.18 s
    (median of 6; 2.41 -> 2.23 in another 8), and no slower with the machine busy besides."""
    try:
        allowed = sorted(os.sched_getaffinity(0))
    except AttributeError:  # not on every system
        return []
    return allowed if processes > 1 and processes == len(allowed) else []


def _settle_on(places: list[int], number: int) -> None:
    """Keep this process (and the threads it starts from now on) to its core, if it has one."""
    if number < len(places):
        try:
            os.sched_setaffinity(0, {places[number]})
        except OSError:  # a core taken away meanwhile: the system places it
            pass


def _quota(path: str = "/sys/fs/cgroup/cpu.max") -> int:
    """The CPUs cgroup v2 allows ("200000 100000": 2; "max 100000": no limit)."""
    import math

    try:
        with open(path, encoding="ascii") as limit:
            quota, period = limit.read().split()[:2]
        return max(1, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):  # no cgroup v2 here, or no limit ("max")
        return 1 << 16


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
    # (tools) The replay's task returns nothing, its answer kept aside: as asyncio.run ends it
    # asks whether its SIGINT handler is still in place, and Python 3.11's signal.getsignal
    # then formats that handler for an error it discards, the task with it, and with the task
    # its result: every state the replay reached (17 ms of each share at 1,000 lines).
    found: list[list[Replayed]] = []

    async def replay() -> None:
        found.append(await _replay_runs(runs, converter()))

    asyncio.run(replay())
    (replayed,) = found
    return {
        (wf, index): RunReplayed(
            lines=_plain_lines(run.trail),
            error=run.error,
            reached=run.state is not None,
            grade=run.grade,
        )
        for (wf, index, _), run in zip(share, replayed, strict=True)
    }


def _plain_lines(lines: list[TrailLine]) -> list[TrailLine]:
    """(tools) The lines with their message as JSON values, as a history holds it (and
    `TrailLine.read` reads it): a message's params keep the models' enums, and unpickling
    those made the audit import the models to read the answer (30 ms of its 33 there). Only how
    a line reads changes, which no comparison looks at (`TrailLine.message`)."""
    import dataclasses

    from pydantic_core import to_jsonable_python

    return [
        line
        if line.message is None
        else dataclasses.replace(line, message=to_jsonable_python(line.message))
        for line in lines
    ]
