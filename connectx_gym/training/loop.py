"""One training run from a validated config to its final model: ``run``, and the ``TrainResult`` it returns.

``run`` writes the config into the run directory, builds the run state, the vec env and the model (new,
or the checkpoint being resumed) of the trainer ``train.algorithm`` names (:func:`trainer_of`: PPO or
AlphaZero's loop, the only part of a run that differs), trains with the callbacks of ``make_callbacks`` and saves a last
checkpoint and the final model. Ctrl-C (and SIGTERM and SIGHUP, which the train command turns into
:class:`~connectx_gym.runtime.stopping.Stopped`) saves a checkpoint and returns a result that names
the signal; a failed env worker saves one and raises
``TrainingFailed``. Both the train command and the tuner's trials call it.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from connectx_gym.config import Config, save_config
from connectx_gym.errors import TrainingFailed, WorkerError
from connectx_gym.runtime.checkpoints import save_model
from connectx_gym.runtime.stopping import Stopped, announce, as_stopped
from connectx_gym.training.builders import (
    build_board_env,
    build_model,
    build_network_model,
    build_vec_env,
    make_logger,
)
from connectx_gym.training.layout import CONFIG_NAME, FINAL_MODEL_NAME
from connectx_gym.training.run_state import RunState, save_checkpoint
from connectx_gym.training.setup import check_writable


@dataclass(frozen=True)
class TrainResult:
    """How a run ended.

    :param run_dir: the run directory
    :param steps: the model's step count at the end (the start step if no model was built)
    :param checkpoint: the last checkpoint saved (None if none was)
    :param final_model: ``final_model.zip`` (None when interrupted)
    :param stopped_by: the signal that stopped it (SIGINT for Ctrl-C), None when it ran to the end
    """

    run_dir: Path
    steps: int
    checkpoint: Path | None
    final_model: Path | None
    stopped_by: int | None = None

    @property
    def interrupted(self) -> bool:
        """Whether a signal stopped the run before its last step."""
        return self.stopped_by is not None

    @property
    def exit_code(self) -> int:
        """The train command's exit status: 0 when done, else the shell's code for the signal (130 for Ctrl-C)."""
        return 0 if self.stopped_by is None else Stopped(self.stopped_by).exit_code


def run(
    config: Config,
    run_dir: Path,
    resume: tuple[int, Path] | None,
    report: Callable[[dict[str, Any]], Any] | None = None,
) -> TrainResult:
    """Train ``config`` in ``run_dir``.

    :param resume: the ``(step, checkpoint)`` to continue from, or None for a new run
    :param report: called with metrics after every evaluation, see
        :class:`~connectx_gym.training.callbacks.EvaluationCallback`
    :raises TrainingFailed: an env worker failed; its message says what failed and where the
        model was saved
    :raises UserError: the run directory cannot be written, or the checkpoint cannot be loaded
    """
    # deferred: stable-baselines3 and torch take seconds to import, and the command's argument checks come first
    from connectx_gym.runtime.quiet import quiet_import_sb3

    quiet_import_sb3()
    from connectx_gym.training.progress import close_progress_bars
    from connectx_gym.training.run_callbacks import make_callbacks

    check_writable(run_dir)
    start_step = resume[0] if resume else 0
    trainer = trainer_of(config.train.algorithm)
    state = trainer.state(config, run_dir, resume)
    save_config(config, run_dir / CONFIG_NAME)
    print(f"run directory: {run_dir}", file=sys.stderr)
    venv = trainer.envs(config, config.train.seed + start_step, state)
    model = callbacks = None
    try:
        if resume:
            print(f"resuming from {resume[1]} (step {start_step})", file=sys.stderr)
        model = trainer.model(config, venv, resume)
        model.set_logger(make_logger(config, run_dir, resuming=bool(resume)))
        callbacks = make_callbacks(config, run_dir, start_step, state, report)
        remaining = config.train.total_timesteps - start_step
        started = time.perf_counter()
        trainer.learn(model, config, state, remaining, callbacks)
        elapsed = time.perf_counter() - started
        checkpoint = save_checkpoint(model, run_dir, state)
        final_model = run_dir / FINAL_MODEL_NAME
        save_model(model, final_model)
        steps = model.num_timesteps - start_step
        print(
            f"done: {model.num_timesteps} steps ({steps / max(elapsed, 1e-9):,.0f} steps/s); final model {final_model}",
            file=sys.stderr,
        )
        return TrainResult(run_dir, model.num_timesteps, checkpoint, final_model)
    except KeyboardInterrupt as error:
        stop = as_stopped(error)
        close_progress_bars(callbacks)
        if model is None:
            announce(f"\n{stop.reason} before training started: nothing to save")
            return TrainResult(run_dir, start_step, None, None, stopped_by=stop.signum)
        path = save_checkpoint(model, run_dir, state)
        announce(f"\n{stop.reason}: saved {path}; continue with --resume {run_dir}")
        return TrainResult(run_dir, model.num_timesteps, path, None, stopped_by=stop.signum)
    except WorkerError as error:
        close_progress_bars(callbacks)
        raise _failed(error, model, run_dir, state) from error
    finally:
        venv.close()


@dataclass(frozen=True)
class Trainer:
    """What :func:`run` needs of one kind of trainer (``train.algorithm``); the rest of a run (the run directory,
    logger, callbacks, checkpoints, stopping and resuming) is shared.

    :param state: ``(config, run_dir, resume) ->`` what the run carries besides the model, restored when resuming
    :param envs: ``(config, seed, state) ->`` the vec env the model is built on
    :param model: ``(config, venv, resume) ->`` the model, new or loaded
    :param learn: ``(model, config, state, remaining steps, callbacks)``: train (a no-op with nothing left to do)
    """

    state: Callable[..., Any]
    envs: Callable[..., Any]
    model: Callable[..., Any]
    learn: Callable[..., None]


def trainer_of(algorithm: str) -> Trainer:
    """The trainer of ``train.algorithm``: MaskablePPO (``ppo``) or AlphaZero's loop (``alphazero``)."""
    if algorithm == "alphazero":
        # deferred: the loop's module imports torch, and run() imports SB3 first, quietly
        from connectx_gym.training.alphazero import AlphaZeroState, AlphaZeroTrainer

        return Trainer(
            state=AlphaZeroState,
            envs=lambda config, seed, state: build_board_env(config, seed),
            model=build_network_model,
            learn=lambda model, config, state, remaining, callbacks: AlphaZeroTrainer(model, config, state).learn(
                remaining, callbacks
            ),
        )
    return Trainer(
        state=RunState,
        envs=lambda config, seed, state: build_vec_env(config, seed, opponent=state.opponent),
        model=build_model,
        learn=_learn_ppo,
    )


def _learn_ppo(model: Any, config: Config, state: RunState, remaining: int, callbacks: Any) -> None:
    if remaining > 0:
        model.learn(remaining, callback=callbacks, reset_num_timesteps=False)


def _failed(error: WorkerError, model: Any, run_dir: Path, state: Any) -> TrainingFailed:
    """Save what was trained (if anything) and say so in the error the caller reports."""
    # ends the line the progress bar was drawing, so the error starts on a line of its own
    print(file=sys.stderr)
    message = str(error)
    if model is not None:
        path = save_checkpoint(model, run_dir, state)
        message += f"\nsaved {path}; continue with --resume {run_dir}"
    return TrainingFailed(message, getattr(error, "worker_traceback", ""))
