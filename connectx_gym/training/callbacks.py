"""The trainer's SB3 callbacks, one job each: ``EpisodeStatsCallback`` counts finished episodes (win
rates, opponent errors) and logs them; ``OpponentScheduleCallback`` runs the curriculum and the
self-play pool; ``CheckpointCallback`` saves atomic checkpoints with the run state. The progress bar
is :mod:`connectx_gym.training.progress`, the evaluation :mod:`connectx_gym.training.evaluation_callback`,
and :mod:`connectx_gym.training.run_callbacks` joins them all. What they share (the run state, the
episode statistics the bar shows, the evaluation results the bar shows) is handed to their
constructors, so each can be tested alone. This module imports stable-baselines3; the train command
imports it only once training starts.
"""

from __future__ import annotations

import collections
import math
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import connectx_gym.runtime.quiet  # noqa: F401 - first: no legacy gym banner when SB3 loads

from stable_baselines3.common.callbacks import BaseCallback

from connectx_gym.agents.specs import make_opponent
from connectx_gym.inference.numpy_policy import from_sb3_model
from connectx_gym.runtime.checkpoints import prune_checkpoints
from connectx_gym.training.run_state import RunState, save_checkpoint

#: episodes the progress bar's win rate is averaged over
WIN_RATE_WINDOW = 200


def next_multiple(step: int, every: int) -> float:
    """The first multiple of ``every`` after ``step`` (never, for ``every`` 0)."""
    return (step // every + 1) * every if every else math.inf


class Interval:
    """Fires once each time the step count reaches the next multiple of ``every`` after ``start_step``.

    Steps advance by the number of envs, so a multiple is usually passed, not hit: it fires at the
    first step at or past it, and then waits for the multiple after that step.
    """

    def __init__(self, every: int, start_step: int) -> None:
        self.every = every
        self.next = next_multiple(start_step, every)

    def due(self, step: int) -> bool:
        if step < self.next:
            return False
        self.next = next_multiple(step, self.every)
        return True


def win_rate(outcomes: Sequence[str | None]) -> float:
    """The share of ``"win"`` outcomes (NaN for none)."""
    if not outcomes:
        return math.nan
    return sum(1 for outcome in outcomes if outcome == "win") / len(outcomes)


def finished_episodes(locals_: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """The info dicts of the episodes that ended in the step SB3 just took."""
    for done, info in zip(locals_["dones"], locals_["infos"]):
        if done:
            yield info


def print_to_stderr(text: str) -> None:
    print(text, file=sys.stderr)


class EpisodeStatsCallback(BaseCallback):
    """Outcomes of finished episodes: the win rate over the last ``window`` of them, per opponent
    kind too, and opponent errors (forfeits), logged as ``rollout/...`` at each rollout's end.

    :param window: episodes the win rates are averaged over
    """

    def __init__(self, window: int = WIN_RATE_WINDOW) -> None:
        super().__init__()
        self.window = window
        self.outcomes: collections.deque = collections.deque(maxlen=window)
        self.by_opponent: dict[str, collections.deque] = {}
        self.opponent_errors = 0

    @property
    def win_rate(self) -> float:
        return win_rate(self.outcomes)

    def _on_step(self) -> bool:
        for info in finished_episodes(self.locals):
            self.record(info)
        return True

    def record(self, info: Mapping[str, Any]) -> None:
        """Count one finished episode from its final info dict."""
        outcome, label = info.get("outcome"), info.get("opponent")
        self.outcomes.append(outcome)
        if label:
            # every snapshot is a different label; the rate against self-play as a whole is what tells
            kind = label.split(":", 1)[0] if label.startswith("selfplay:") else label
            self.by_opponent.setdefault(kind, collections.deque(maxlen=self.window)).append(outcome)
        if "opponent_error" in info:
            self.opponent_errors += 1

    def _on_rollout_end(self) -> None:
        rate = self.win_rate
        if not math.isnan(rate):
            self.logger.record("rollout/win_rate", rate)
        for kind, outcomes in self.by_opponent.items():
            self.logger.record(f"rollout/win_rate_vs/{kind}", win_rate(outcomes))
        self.logger.record("rollout/opponent_errors", self.opponent_errors)


class OpponentScheduleCallback(BaseCallback):
    """Who the envs play: curriculum promotions, and the self-play pool's snapshots and results.

    :param state: the run's curriculum and pool (saved with checkpoints by ``CheckpointCallback``)
    :param snapshot_every: steps between self-play snapshots (0: only the first one)
    :param start_step: the step training starts (or resumes) at
    :param say: prints a line (the progress bar's ``write`` while there is one)
    """

    def __init__(
        self, state: RunState, snapshot_every: int, start_step: int, say: Callable[[str], None] = print_to_stderr
    ) -> None:
        super().__init__()
        self.state = state
        self.snapshots = Interval(snapshot_every, start_step)
        self.say = say

    def _on_training_start(self) -> None:
        pool = self.state.pool
        if pool is not None:
            if not pool.snapshots:  # a fresh run faces its own initial policy first
                self.snapshot()
            else:
                pool.send_to(self.training_env)

    def _on_step(self) -> bool:
        curriculum, pool = self.state.curriculum, self.state.pool
        for info in finished_episodes(self.locals):
            outcome = info.get("outcome")
            if pool is not None:
                pool.record(info.get("opponent"), outcome)
            if curriculum.record(outcome):
                self.training_env.env_method("set_opponent", make_opponent(curriculum.opponent))
                self.say(
                    f"curriculum: stage {curriculum.stage} at step {self.model.num_timesteps}, "
                    f"opponent {curriculum.opponent}"
                )
        if self.snapshots.due(self.model.num_timesteps) and pool is not None:
            self.snapshot()
        return True

    def snapshot(self) -> None:
        """Freeze the current policy into the pool and ship it to every env's process."""
        step = self.model.num_timesteps
        self.state.pool.add(step, from_sb3_model(self.model).to_bytes())
        self.state.pool.send_to(self.training_env, [step])

    def _on_rollout_end(self) -> None:
        if self.state.curriculum.active:
            self.logger.record("curriculum/stage", self.state.curriculum.stage)
        pool = self.state.pool
        if pool is not None:
            self.logger.record("selfplay/pool_size", len(pool.snapshots))
            if pool.prioritized:
                self.training_env.env_method("set_snapshot_weights", pool.weights())


class CheckpointCallback(BaseCallback):
    """Every ``every`` steps, an atomic checkpoint (with the run state first); keeps the newest ``keep``.

    :param state: saved right before each checkpoint (None: the model alone)
    """

    def __init__(self, run_dir: Path, every: int, keep: int, state: RunState | None, start_step: int) -> None:
        super().__init__()
        self.run_dir = run_dir
        self.keep = keep
        self.state = state
        self.interval = Interval(every, start_step)
        self.last_path: Path | None = None

    def _on_step(self) -> bool:
        if self.interval.due(self.model.num_timesteps):
            self.save()
        return True

    def save(self) -> Path:
        self.last_path = save_checkpoint(self.model, self.run_dir, self.state)
        prune_checkpoints(self.run_dir, self.keep)
        return self.last_path
