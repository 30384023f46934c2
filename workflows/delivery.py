"""Notices and statements delivered in bounded rounds, so the workflow sees what is waiting.

A workflow cannot see the attempts of an activity that Temporal is retrying: with one activity
retried without end, a notice waiting for a mail server that is down was nowhere in the state.
So each delivery runs as rounds. A round is one activity execution with a bounded number of
attempts (Temporal's own retries, which cost no history events); when it ends without the
notice or statement through, the workflow marks it `pending` with the round's last error and
starts the next round. The first round is a single attempt, so a channel that is down shows
within seconds; the next ones have 6, 12, 24, 48 and then 96 attempts, at most five minutes
apart, so a channel that comes back is used within five minutes while an outage costs few
events: about 6 a round, some 45 for a day and 150 for a week. Every round carries the same
idempotency key, and the ledger never sends a target what it already has.

A receiver that took a copy without answering in time may have it: the activity then asks for
a pause before the next copy (`ApplicationError.next_retry_delay`, see `hold_back`), which
Temporal keeps between the attempts of a round and the workflow keeps, on a durable timer,
between rounds.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any, TypeVar

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError, ApplicationError, FailureError, RetryState

with workflow.unsafe.imports_passed_through():
    from yuqing.state import IncidentState, Notification, Publication, Waiting

T = TypeVar("T")
Sent = TypeVar("Sent", Notification, Publication)

# Workflows that began before delivery rounds retry one activity without end (DELIVERY_RETRY).
DELIVERY_PATCH = "delivery-bounded-rounds"
# One attempt: each copy keeps to its channel's deadline (at most 20 s, see
# yuqing.channels.config) and the activity heartbeats after each from 3 s into the attempt on
# (yuqing.channels.pulse), so an attempt whose worker died is taken up again within the
# heartbeat timeout, and a long notice within two minutes.
DELIVERY_TIMEOUT = timedelta(minutes=2)
DELIVERY_HEARTBEAT = timedelta(seconds=30)
MAX_INTERVAL = timedelta(minutes=5)
MAX_ROUND_ATTEMPTS = 96
# What of a round's last error the state keeps: enough to tell what is wrong, and bounded.
ERROR_CHARS = 300


def round_policy(number: int) -> RetryPolicy:
    """The retry policy of round `number` (0, 1, …)."""
    if number == 0:
        return RetryPolicy(maximum_attempts=1)
    return RetryPolicy(
        initial_interval=timedelta(seconds=2),
        backoff_coefficient=2.0,
        maximum_interval=MAX_INTERVAL,
        maximum_attempts=min(6 * 2 ** (number - 1), MAX_ROUND_ATTEMPTS),
    )


Round = Callable[[RetryPolicy, str], Awaitable[T]]
OnWait = Callable[[Waiting, str | None], Awaitable[None]]


async def deliver(
    run_round: Round[T], *, summary: str, on_wait: OnWait, on_give_up: Callable[[], None]
) -> tuple[T, Waiting | None]:
    """Run rounds of `run_round(retry_policy, activity_summary)` until one succeeds.

    After each round that did not, `on_wait` hears how the delivery is faring (and, when the
    activity said, the channel it is waiting for); the result comes back with the last of
    these, or None if the first round went through. A failure that retrying cannot mend (an
    incomplete approval chain) ends it: `on_give_up` runs and the failure is raised.
    """
    waited: Waiting | None = None
    number = 0
    while True:
        policy = round_policy(number)
        label = summary if number == 0 else f"{summary} (round {number + 1}, still waiting)"
        try:
            return await run_round(policy, label), waited
        except ActivityError as err:
            if err.retry_state not in (
                RetryState.MAXIMUM_ATTEMPTS_REACHED,
                RetryState.TIMEOUT,
            ):
                on_give_up()
                raise
            cause = err.cause
            now = workflow.now()
            pause = cause.next_retry_delay if isinstance(cause, ApplicationError) else None
            error = cause.message if isinstance(cause, FailureError) else err.message
            waited = Waiting(
                waiting_since=waited.waiting_since if waited else now,
                attempts=(waited.attempts if waited else 0) + (policy.maximum_attempts or 1),
                last_error=_clip(error),
                last_attempt_at=now,
                retry_at=now + pause if pause else None,
            )
            await on_wait(waited, _channel(cause))
            if pause:
                await workflow.sleep(
                    pause, summary=f"{summary}: a receiver did not answer; pause before resending"
                )
            number += 1


def _clip(text: str) -> str:
    return text if len(text) <= ERROR_CHARS else text[: ERROR_CHARS - 1] + "…"


def _channel(cause: BaseException | None) -> str | None:
    if isinstance(cause, ApplicationError) and cause.details:
        first: Any = cause.details[0]
        if isinstance(first, dict) and isinstance(first.get("channel"), str):
            return str(first["channel"])
    return None


def pending_notice(
    request_key: str,
    kind: str,
    subject: str,
    recipients: list[str],
    waited: Waiting,
    channel: str | None,
) -> Notification:
    return Notification(
        idempotency_key=request_key,
        kind=kind,
        subject=subject,
        recipients=recipients,
        channel=channel or "",
        status="pending",
        result="waiting for a channel",
        **waited.model_dump(),
    )


def with_wait(record: Sent, waited: Waiting | None) -> Sent:
    """The notice or publication that went out, with the time it began to wait (if it did)."""
    if waited is None:
        return record
    return record.model_copy(update={"waiting_since": waited.waiting_since})


def forget(entries: list[Any], key: str) -> None:
    """Drop the pending entry of `key`: its delivery has ended (the failure is in the trail)."""
    entries[:] = [e for e in entries if e.idempotency_key != key or e.status != "pending"]


def waiting_lines(notices: list[Notification], publications: list[Publication]) -> list[str]:
    """What the Temporal UI's current details say about deliveries still waiting."""
    lines: list[str] = []
    for n in notices:
        if n.status == "pending":
            lines.append(f"- notice {n.kind} ({n.subject}): {_waiting(n)}")
    for p in publications:
        if p.status == "pending":
            lines.append(f"- statement v{p.draft_version} on {p.channel}: {_waiting(p)}")
    if lines:
        lines.insert(0, f"**Waiting for a channel** ({len(lines)}):")
    return lines


def incident_waiting_lines(state: IncidentState) -> list[str]:
    return waiting_lines(state.notifications, state.publications)


def _waiting(entry: Waiting) -> str:
    since = entry.waiting_since.isoformat(timespec="minutes") if entry.waiting_since else "?"
    text = f"pending since {since}, {entry.attempts} attempt(s); last error: {entry.last_error}"
    if entry.retry_at is not None:
        text += f"; next try after {entry.retry_at.isoformat(timespec='minutes')}"
    return text
