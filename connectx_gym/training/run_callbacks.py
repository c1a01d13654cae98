"""``make_callbacks``: the callbacks of a training run for its config, joined in one ``CallbackList``
(episode statistics, curriculum and self-play pool, progress bar, checkpoints, evaluation). A second
trainer builds the same list and drives it through SB3's callback protocol.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

import connectx_gym.runtime.quiet  # noqa: F401 - first: no legacy gym banner when SB3 loads

from stable_baselines3.common.callbacks import BaseCallback, CallbackList

from connectx_gym.config import Config
from connectx_gym.training.builders import env_kwargs
from connectx_gym.training.callbacks import (
    CheckpointCallback,
    EpisodeStatsCallback,
    OpponentScheduleCallback,
    print_to_stderr,
)
from connectx_gym.training.evaluation_callback import (
    EVAL_SEED_OFFSET,
    EvaluationCallback,
    accuracy_positions,
    evaluation_openings,
)
from connectx_gym.training.progress import ProgressBarCallback
from connectx_gym.training.run_state import RunState


def make_callbacks(
    config: Config,
    run_dir: Path,
    start_step: int,
    state: RunState | Any,
    report: Callable[[dict[str, Any]], Any] | None = None,
) -> CallbackList:
    """The trainer's callbacks for ``config``, in the order they run at every step (AlphaZero's loop: the
    progress bar, checkpoints and evaluation, after every chunk of self-play games).

    Episodes are counted before the curriculum may switch opponents; the bar moves before a
    checkpoint is saved and before an evaluation, which runs last and shows on the bar when done.

    :param report: see :class:`EvaluationCallback`
    """
    train = config.train
    ppo = train.algorithm == "ppo"  # AlphaZero's loop plays no episodes against opponents, has no curriculum
    stats = EpisodeStatsCallback() if ppo else None
    bar = None
    if config.logging.progress_bar:
        bar = ProgressBarCallback(train.total_timesteps, start_step, stats, state.curriculum if ppo else None)
    schedule = None
    if ppo:
        schedule = OpponentScheduleCallback(
            state, config.selfplay.snapshot_every, start_step, say=bar.write if bar is not None else print_to_stderr
        )
    checkpoints = CheckpointCallback(run_dir, train.checkpoint_every, train.keep_checkpoints, state, start_step)
    evaluation = EvaluationCallback(
        train.eval_opponents,
        train.eval_games,
        train.seed + EVAL_SEED_OFFSET,
        env_kwargs(config),
        train.eval_every,
        start_step,
        run_dir,
        report=report,
        after_eval=bar.show_evaluation if bar is not None else None,
        accuracy=accuracy_positions(config),
        openings=evaluation_openings(config),
    )
    chain: Iterable[BaseCallback | None] = (stats, schedule, bar, checkpoints, evaluation)
    return CallbackList([callback for callback in chain if callback is not None])
