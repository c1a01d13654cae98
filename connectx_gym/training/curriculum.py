"""Opponent curriculum: stages that advance when the training win rate passes their thresholds.

Each stage names an opponent (a spec or a ``{spec: weight}`` mixture), a ``promote_at`` win rate
and ``min_episodes``. The win rate is measured over the last ``window`` finished episodes of the
current stage; when the window is full, at least ``min_episodes`` have been played in the stage,
and the rate reaches ``promote_at``, the next stage begins. The last stage lasts to the end.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, Sequence
from typing import Any


class Curriculum:
    """Tracks the current stage and decides promotions.

    :param stages: the ``curriculum.stages`` config entries
    :param window: episodes over which a stage's win rate is measured
    :param stage: the stage to start in (a resumed run's saved stage)
    """

    def __init__(self, stages: Sequence[Mapping[str, Any]], window: int, stage: int = 0) -> None:
        self.stages = list(stages)
        self.window = window
        self.stage = min(stage, max(0, len(self.stages) - 1))
        self.outcomes: collections.deque = collections.deque(maxlen=window)
        self.episodes_in_stage = 0

    @property
    def active(self) -> bool:
        return bool(self.stages)

    @property
    def opponent(self) -> Any:
        return self.stages[self.stage]["opponent"]

    @property
    def win_rate(self) -> float | None:
        if not self.outcomes:
            return None
        return sum(outcome == "win" for outcome in self.outcomes) / len(self.outcomes)

    def record(self, outcome: str | None) -> bool:
        """Count one finished episode; returns True when this promoted to the next stage."""
        if not self.active or self.stage == len(self.stages) - 1:
            return False
        self.outcomes.append(outcome)
        self.episodes_in_stage += 1
        current = self.stages[self.stage]
        if (
            len(self.outcomes) == self.window
            and self.episodes_in_stage >= current.get("min_episodes", 0)
            and self.win_rate >= current["promote_at"]
        ):
            self.stage += 1
            self.outcomes.clear()
            self.episodes_in_stage = 0
            return True
        return False
