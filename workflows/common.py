"""Timeouts, retry policies and the deadline wait that both workflows use."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy

QUICK = timedelta(seconds=30)
# A notice or a publication must not be lost while a channel is down: retry without end,
# backing off to one attempt every five minutes; the UI shows the pending activity meanwhile.
DELIVERY_RETRY = RetryPolicy(
    initial_interval=timedelta(seconds=2),
    backoff_coefficient=2.0,
    maximum_interval=timedelta(minutes=5),
    non_retryable_error_types=["ApprovalChainIncomplete"],
)
# A malformed policy, roster or calendar file waits for someone to mend it; a try a minute.
CONFIG_RETRY = RetryPolicy(maximum_interval=timedelta(minutes=1))


async def settled_by(moment: datetime, settled: Callable[[], bool], summary: str) -> bool:
    """Wait until `settled()` holds or `moment` comes; True if it held in time."""
    remaining = moment - workflow.now()
    if remaining <= timedelta(0):
        return settled()
    try:
        await workflow.wait_condition(settled, timeout=remaining, timeout_summary=summary)
    except TimeoutError:
        return settled()
    return True
