"""What an incident shows in lists without being asked: its memo, and the light of each clock.

The incident keeps a small memo current in Temporal's visibility store (the `console` memo
key), so the list of incidents and each person's work ("待办") are one visibility call, not
one query per incident. The memo holds no person's identity: roles, units, versions, times,
the title and a returned draft's reason, each bounded in size. Pure code: the workflow builds
the memo, the API reads it back.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from typing import Any

from pydantic import BaseModel, Field

from yuqing.chain import missing_steps
from yuqing.policy import Policy
from yuqing.state import Deadline, DeadlineStatus, DraftStatus, IncidentState

MEMO_KEY = "console"
MEMO_VERSION = 1
TITLE_LIMIT = 200
REASON_LIMIT = 300
POSTS_LIMIT = 20


class Light(StrEnum):
    """A clock as a traffic light: breached (or late), inside its reminder window, on time."""

    red = "red"
    yellow = "yellow"
    green = "green"
    done = "done"  # met in time: nothing more to watch
    waived = "waived"


class ClockMemo(BaseModel):
    key: str
    title: str
    clock: str
    due_at: datetime
    # The first reminder: from then on the clock is inside its reminder window.
    remind_from: datetime | None = None
    status: DeadlineStatus
    met_at: datetime | None = None

    def light(self, now: datetime) -> Light:
        if self.status is DeadlineStatus.waived:
            return Light.waived
        if self.status is DeadlineStatus.breached:
            return Light.red
        if self.status is DeadlineStatus.met:
            return Light.red if self.met_at and self.met_at > self.due_at else Light.done
        if now >= self.due_at:
            return Light.red
        if self.remind_from is not None and now >= self.remind_from:
            return Light.yellow
        return Light.green


class PostMemo(BaseModel):
    post_id: str
    status: str
    clocks: list[ClockMemo] = Field(default_factory=list)


class IncidentMemo(BaseModel):
    """The `console` memo of an incident (version 1)."""

    v: int = MEMO_VERSION
    title: str
    stage: str
    grade: str | None
    unit: str
    sensitivity: str
    discovered_at: datetime
    clocks: list[ClockMemo] = Field(default_factory=list)
    draft_version: int | None = None
    draft_status: str | None = None
    returned_reason: str | None = None
    # The roles of the chain's next step for the current draft, when it awaits approval.
    awaiting: list[str] = Field(default_factory=list)
    posts: list[PostMemo] = Field(default_factory=list)
    posts_open: int = 0


def clock_of(deadline: Deadline, *, whole_seconds: bool = False) -> ClockMemo:
    at = _second if whole_seconds else _same
    return ClockMemo(
        key=deadline.key,
        title=_cut(deadline.title, TITLE_LIMIT) or "",
        clock=deadline.clock,
        due_at=at(deadline.due_at),
        remind_from=at(min(deadline.reminders_at, default=None)),
        status=deadline.status,
        met_at=at(deadline.met_at),
    )


def _same(moment: Any) -> Any:
    return moment


def _second(moment: Any) -> Any:
    """(hist) A time to the second: the console shows minutes, and the memo, upserted again at
    every change, costs its microseconds each time. A clock met within the same second as its
    due time then shows as met in time (its trail line and deadline_outcomes keep the exact
    times)."""
    return moment.replace(microsecond=0) if isinstance(moment, datetime) else moment


def _cut(text: str | None, limit: int) -> str | None:
    if text is None or len(text) <= limit:
        return text
    return text[: limit - 1] + "…"


def _clock_inputs(deadline: Deadline) -> tuple[Any, ...]:
    return (
        deadline.key,
        deadline.title,
        deadline.clock,
        deadline.due_at,
        tuple(deadline.reminders_at),
        deadline.status,
        deadline.met_at,
    )


def memo_inputs(state: IncidentState, policy: Policy) -> tuple[Any, ...]:
    """(replay) Everything `incident_memo` (and the incident's search attributes) is built from,
    as values that stay as they are when the state changes: equal inputs, equal memo. The
    workflow builds the memo (a dozen models, validated and dumped) only when these changed:
    most decisions (a new reading of the figures, a refusal) change nothing the lists show,
    and a replay of a long run paid for the memo at each of them. Kept wide rather than
    narrow: an input missed here would leave the memo stale; one too many only builds it
    again for nothing. The policy is kept as the object (compared by identity first: the
    incident's never changes)."""
    draft = state.current_draft
    return (
        policy,
        state.title,
        state.stage,
        state.grade,
        state.unit,
        state.sensitivity,
        state.discovered_at,
        tuple(_clock_inputs(d) for d in state.deadlines),
        None if draft is None else (draft.version, draft.status, draft.returned_reason),
        # What `missing_steps` reads of each approval (the awaiting roles).
        tuple((a.signal, a.draft_version, a.decision, a.void) for a in state.approvals),
        tuple(
            (p.post_id, p.status, tuple(_clock_inputs(d) for d in p.deadlines)) for p in state.posts
        ),
    )


def incident_memo(
    state: IncidentState, policy: Policy, *, whole_seconds: bool = False
) -> dict[str, Any]:
    """The memo as JSON, built from the state alone (deterministic: the workflow calls it);
    `whole_seconds`: its times to the second (runs under patch hist-leaner-history)."""
    at = _second if whole_seconds else _same
    draft = state.current_draft
    awaiting: list[str] = []
    if draft is not None and draft.status is DraftStatus.in_review and state.grade is not None:
        missing = missing_steps(policy, state.grade, state.approvals, draft.version)
        if missing:
            awaiting = [missing[0].role.value]
    open_posts = [p for p in state.posts if p.open]
    memo = IncidentMemo(
        title=_cut(state.title, TITLE_LIMIT) or "",
        stage=state.stage.value,
        grade=state.grade.value if state.grade else None,
        unit=state.unit,
        sensitivity=state.sensitivity.value,
        discovered_at=at(state.discovered_at),
        clocks=[clock_of(d, whole_seconds=whole_seconds) for d in state.deadlines],
        draft_version=draft.version if draft else None,
        draft_status=draft.status.value if draft else None,
        returned_reason=_cut(draft.returned_reason, REASON_LIMIT) if draft else None,
        awaiting=awaiting,
        posts=[
            PostMemo(
                post_id=p.post_id,
                status=p.status.value,
                clocks=[
                    clock_of(d, whole_seconds=whole_seconds)
                    for d in p.deadlines
                    if d.status is DeadlineStatus.pending
                ],
            )
            for p in open_posts[:POSTS_LIMIT]
        ],
        posts_open=len(open_posts),
    )
    return memo.model_dump(mode="json")


# -- hist (issue 9): the memo in parts (version 2) ----------------------------------------------
# Upserted whole at every change, the memo was an incident's largest repeated payload (12 of them
# in a general incident's history). Runs under patch hist-leaner-history keep it under four
# keys, and upsert only the keys whose part changed (Temporal merges a memo's keys): `console`
# (`v: 2` and what never changes: title, unit, sensitivity, discovery), `console.state`
# (stage, grade, draft, awaiting), `console.clocks`, `console.posts`. `memo_of` reads either
# version. (During a rolling upgrade an API of the release before reads a version 2 memo as no
# memo: the incident is listed by its id until that API is replaced.)
MEMO_PARTS_VERSION = 2
STATE_KEY = f"{MEMO_KEY}.state"
CLOCKS_KEY = f"{MEMO_KEY}.clocks"
POSTS_KEY = f"{MEMO_KEY}.posts"
_FIXED_FIELDS = ("title", "unit", "sensitivity", "discovered_at")
_POSTS_FIELDS = ("posts", "posts_open")


def memo_parts(memo: Mapping[str, Any]) -> dict[str, Any]:
    """A memo as `incident_memo` makes it, in version 2's parts (keyed as upserted)."""
    kept = {"v", "clocks", *_FIXED_FIELDS, *_POSTS_FIELDS}
    return {
        MEMO_KEY: {"v": MEMO_PARTS_VERSION, **{k: memo[k] for k in _FIXED_FIELDS}},
        STATE_KEY: {k: value for k, value in memo.items() if k not in kept},
        CLOCKS_KEY: memo["clocks"],
        POSTS_KEY: {k: memo[k] for k in _POSTS_FIELDS},
    }


def memo_of(fields: Mapping[str, Any]) -> IncidentMemo | None:
    """The memo from an incident's memo fields (version 1 whole, or 2 in parts), or None."""
    head = fields.get(MEMO_KEY)
    if not isinstance(head, dict) or head.get("v") != MEMO_PARTS_VERSION:
        return read_memo(head)
    state, clocks, posts = fields.get(STATE_KEY), fields.get(CLOCKS_KEY), fields.get(POSTS_KEY)
    if not isinstance(state, dict) or not isinstance(clocks, list) or not isinstance(posts, dict):
        return None
    return read_memo({**state, **posts, **head, "clocks": clocks, "v": MEMO_VERSION})


def read_memo(value: Any) -> IncidentMemo | None:
    """The memo as the workflow wrote it, or None for an incident that began without one."""
    if not isinstance(value, dict) or value.get("v") != MEMO_VERSION:
        return None
    try:
        return IncidentMemo.model_validate(value)
    except ValueError:
        return None
