"""Drills (§5.3): every line of a drill's trail, and every notice, is marked 演练."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from yuqing.decider import Decider, S
from yuqing.outcomes import Outcome, Refused

DRILL_MARK = "[演练]"


class DrillMarking(Decider[S]):
    """A decider whose lines and notices carry the drill's mark once `mark_drill` is called."""

    drill_mark = ""

    def mark_drill(self) -> None:
        self.drill_mark = f"{DRILL_MARK} "
        self.label = f"{DRILL_MARK} {self.label}"

    def record(
        self,
        at: datetime,
        kind: str,
        detail: str,
        *,
        actor: str | None = None,
        role: str | None = None,
        signal: str | None = None,
        source: str | None = None,
        message: dict[str, Any] | None = None,
    ) -> None:
        super().record(
            at,
            kind,
            self.drill_mark + detail,
            actor=actor,
            role=role,
            signal=signal,
            source=source,
            message=message,
        )

    def _refuse(
        self, signal: str, raw: Any, at: datetime, refusal: Refused, **who: str | None
    ) -> Outcome:
        outcome = super()._refuse(signal, raw, at, refusal, **who)
        if self.drill_mark:
            entry = self.state.trail[-1]
            entry.detail = self.drill_mark + entry.detail
        return outcome
