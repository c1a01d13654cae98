"""The progress bar of a training run: ``ProgressBarCallback`` draws a tqdm bar on stderr with the
steps done, the ETA, the recent win rate, the curriculum stage and the last evaluation; any trainer
that drives SB3 callbacks can show it.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Mapping
from typing import TYPE_CHECKING

import connectx_gym.runtime.quiet  # noqa: F401 - first: no legacy gym banner when SB3 loads

from stable_baselines3.common.callbacks import BaseCallback, CallbackList
from tqdm import tqdm

from connectx_gym.training.callbacks import print_to_stderr
from connectx_gym.training.curriculum import Curriculum

if TYPE_CHECKING:
    from connectx_gym.training.callbacks import EpisodeStatsCallback


#: the progress bar's statistics are refreshed every this many vec env steps
POSTFIX_EVERY = 20


class ProgressBarCallback(BaseCallback):
    """A tqdm bar on stderr: steps done, the recent win rate, the curriculum stage, the last evaluation.

    :param stats: whose win rate the bar shows (None: none)
    :param curriculum: whose stage the bar shows (None or inactive: none)
    """

    def __init__(
        self,
        total_timesteps: int,
        start_step: int,
        stats: EpisodeStatsCallback | None = None,
        curriculum: Curriculum | None = None,
    ) -> None:
        super().__init__()
        self.total_timesteps = total_timesteps
        self.start_step = start_step
        self.stats = stats
        self.curriculum = curriculum
        self.last_eval: dict[str, float] = {}
        self.bar = None

    def _on_training_start(self) -> None:
        self.bar = tqdm(
            total=self.total_timesteps,
            initial=min(self.start_step, self.total_timesteps),
            unit="step",
            unit_scale=True,
            dynamic_ncols=True,
            desc="train",
            file=sys.stderr,
            mininterval=1.0,
            smoothing=0,  # ETA from the run's average rate: evaluation pauses would make a recent rate swing
        )

    def _on_step(self) -> bool:
        if self.bar is not None:
            self.bar.update(min(self.model.num_timesteps, self.total_timesteps) - self.bar.n)
            if self.n_calls % POSTFIX_EVERY == 0:
                self.bar.set_postfix_str(self.postfix(), refresh=False)
        return True

    def postfix(self) -> str:
        parts = []
        rate = self.stats.win_rate if self.stats is not None else math.nan
        if not math.isnan(rate):
            parts.append(f"win {rate:.0%}")
        if self.curriculum is not None and self.curriculum.active:
            parts.append(f"stage {self.curriculum.stage}")
        parts.extend(f"{name} {value:.0%}" for name, value in self.last_eval.items())
        return " ".join(parts)

    def show_evaluation(self, results: Mapping[str, float]) -> None:
        """Show the latest evaluation win rates next to the bar (an ``EvaluationCallback.after_eval``)."""
        self.last_eval.update(results)
        if self.bar is not None:
            self.bar.set_postfix_str(self.postfix())

    def write(self, text: str) -> None:
        """Print a line to stderr without breaking the bar."""
        if self.bar is not None:
            self.bar.write(text, file=sys.stderr)
        else:
            print_to_stderr(text)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()

    def _on_training_end(self) -> None:
        self.close()


def close_progress_bars(callbacks: CallbackList | None) -> None:
    """Close any progress bar in ``callbacks``, so a message after an interruption starts on a clean line."""
    for callback in callbacks.callbacks if callbacks is not None else ():
        if isinstance(callback, ProgressBarCallback):
            callback.close()
