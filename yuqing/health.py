"""Health that tells the truth: each process checks what it really depends on.

Liveness says the process is running and should not be restarted; readiness says it can do its
work now: Temporal's frontend answers, PostgreSQL answers, and the process is not shutting down.
A check that does not answer within `timeout` counts as down, so a probe never hangs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import timedelta

import asyncpg
from temporalio.api.workflowservice.v1 import GetSystemInfoRequest
from temporalio.client import Client

Check = Callable[[], Awaitable[None]]

CHECK_TIMEOUT = 2.0
# How long a verdict on PostgreSQL is reused by calls that need it (not by the probe).
DATABASE_VERDICT_TTL = 1.0


def temporal_check(client: Client, timeout: float = CHECK_TIMEOUT) -> Check:
    async def check() -> None:
        # The cheapest call the frontend answers; no retries, so "down" is said at once.
        await client.workflow_service.get_system_info(
            GetSystemInfoRequest(), retry=False, timeout=timedelta(seconds=timeout)
        )

    return check


def database_check(pool: asyncpg.Pool, timeout: float = CHECK_TIMEOUT) -> Check:
    async def check() -> None:
        async with asyncio.timeout(timeout):
            await pool.fetchval("SELECT 1")

    return check


@dataclass
class Readiness:
    """Named checks, plus whether the process has been told to stop."""

    checks: Mapping[str, Check]
    timeout: float = CHECK_TIMEOUT
    stopping: bool = False
    _verdicts: dict[str, tuple[float, str | None]] = field(default_factory=dict)

    async def problems(self) -> dict[str, str]:
        """What is wrong now, by check name (empty: ready)."""
        found: dict[str, str] = {}
        if self.stopping:
            found["process"] = "shutting down"
        results = await asyncio.gather(*(self._run(name) for name in self.checks))
        for name, problem in zip(self.checks, results, strict=True):
            if problem is not None:
                found[name] = problem
        return found

    async def problem(self, name: str, *, max_age: float = DATABASE_VERDICT_TTL) -> str | None:
        """One check's verdict, reused for `max_age` seconds so a busy API checks at most once a
        second; a check that failed is run again each time (recovery is seen at once)."""
        verdict = self._verdicts.get(name)
        if verdict is not None and verdict[1] is None and time.monotonic() - verdict[0] < max_age:
            return None
        return await self._run(name)

    async def _run(self, name: str) -> str | None:
        problem: str | None
        try:
            async with asyncio.timeout(self.timeout + 0.5):
                await self.checks[name]()
            problem = None
        except TimeoutError:
            problem = f"no answer within {self.timeout:g} s"
        except Exception as err:
            problem = f"{type(err).__name__}: {err}".strip()[:300]
        self._verdicts[name] = (time.monotonic(), problem)
        return problem
