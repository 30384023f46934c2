"""The service's own processes under the stack: each started from its real entry point with its
settings in the environment, as a container would start it, and stopped with SIGTERM."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import httpx
import structlog

from yuqing.settings import PROJECT_ROOT
from yuqing.stack.common import StackError, die_with_parent

log = structlog.get_logger("yuqing.stack")

READY_TIMEOUT = 120.0


@dataclass
class Child:
    """One process of the service: its name, command, environment and readiness URL."""

    name: str
    command: Sequence[str]
    env: Mapping[str, str]
    ready_url: str | None
    ports: dict[str, int] = field(default_factory=dict)
    process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            *self.command,
            cwd=PROJECT_ROOT,
            env=dict(self.env),
            stdin=subprocess.DEVNULL,
            # Its lines go where the stack's go, each naming its logger (yuqing.worker, ...).
            stdout=None,
            stderr=None,
            # Its own session: a terminal's Ctrl-C reaches the stack, which stops it in order.
            start_new_session=True,
            preexec_fn=die_with_parent(),
        )
        log.debug("started", process=self.name, pid=self.process.pid)

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    @property
    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    async def until_ready(self, patience: float = READY_TIMEOUT) -> None:
        """Wait until its readiness probe answers 200; fail if it exits first."""
        assert self.process is not None
        if self.ready_url is None:
            return
        deadline = time.monotonic() + patience
        last = "no answer yet"
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                if self.process.returncode is not None:
                    raise StackError(
                        f"the {self.name} exited with code {self.process.returncode} while"
                        " starting (its lines above say why)"
                    )
                try:
                    answer = await http.get(self.ready_url)
                    if answer.status_code == 200:
                        return
                    last = f"{answer.status_code} {answer.text[:300]}"
                except httpx.HTTPError as err:
                    last = str(err) or type(err).__name__
                if time.monotonic() > deadline:
                    raise StackError(
                        f"the {self.name} is not ready after {patience:.0f} s ({self.ready_url}:"
                        f" {last})"
                    )
                await asyncio.sleep(0.2)

    async def wait(self) -> int:
        assert self.process is not None
        return await self.process.wait()

    async def stop(self, grace: float) -> None:
        """SIGTERM (it drains), then SIGKILL after `grace` seconds. Safe to call twice."""
        process = self.process
        if process is None or process.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            process.terminate()
        try:
            await asyncio.wait_for(process.wait(), grace)
        except TimeoutError:
            log.warning("did not stop in time; killing it", process=self.name, grace_s=grace)
            with contextlib.suppress(ProcessLookupError):
                process.kill()
            await process.wait()


def python_command(*args: str) -> list[str]:
    """The entry point run by this interpreter (what `yuqing-worker` etc. run in a container)."""
    return [sys.executable, *args]
